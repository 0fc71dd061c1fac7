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
