import assert from "node:assert/strict";
import { z } from "zod";
import { bool, ConfigError, httpEnvShape, int, parseEnv, port } from "./mod.ts";

Deno.test("parseEnv applies defaults for unset and empty variables", () => {
  const config = parseEnv(z.object(httpEnvShape(8001)), { PORT: "" });
  assert.equal(config.PORT, 8001);
  assert.equal(config.HOST, "127.0.0.1");
  assert.equal(config.ACCESS_LOG, true);
});

Deno.test("parseEnv coerces numbers and booleans", () => {
  const config = parseEnv(
    z.object({ PORT: port(1), WORKERS: int(2, 1, 64), FSYNC: bool(false) }),
    { PORT: "9000", WORKERS: "8", FSYNC: "yes" },
  );
  assert.deepEqual(config, { PORT: 9000, WORKERS: 8, FSYNC: true });
});

Deno.test("parseEnv names the variable with a bad value", () => {
  const schema = z.object({ PORT: port(1), MODE: z.enum(["a", "b"]).default("a") });
  assert.throws(
    () => parseEnv(schema, { PORT: "70000", MODE: "c" }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      const names = error.problems.map((p) => p.variable).sort();
      assert.deepEqual(names, ["MODE", "PORT"]);
      assert.match(error.message, /PORT: must be <= 65535/);
      return true;
    },
  );
});

Deno.test("parseEnv rejects non-numeric ports and unknown booleans", () => {
  assert.throws(() => parseEnv(z.object({ PORT: port(1) }), { PORT: "http" }), /PORT/);
  assert.throws(() => parseEnv(z.object({ X: bool(false) }), { X: "maybe" }), /X: must be one of/);
});

Deno.test("parseEnv ignores variables outside the schema", () => {
  const config = parseEnv(z.object({ PORT: port(1) }), { PORT: "2", OTHER: "x" });
  assert.deepEqual(config, { PORT: 2 });
});

Deno.test("startOrExit: a ConfigError prints the service and its message and exits with 2; other errors propagate", async () => {
  const mod = new URL("./config.ts", import.meta.url).href;
  const run = async (body: string) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", `import { ConfigError, startOrExit } from "${mod}";\n${body}`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  };
  const bad = await run(
    `await startOrExit("svc", async () => { throw new ConfigError([{ variable: "PORT", message: "too big" }]); });`,
  );
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim(), "svc: invalid configuration: PORT: too big");
  const other = await run(`await startOrExit("svc", () => { throw new RangeError("boom"); });`);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /RangeError: boom/);
  const fine = await run(`await startOrExit("svc", () => console.log("started"));`);
  assert.equal(fine.code, 0);
});
