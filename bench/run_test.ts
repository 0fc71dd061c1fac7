import assert from "node:assert/strict";
import {
  type Case,
  FLOOR_NS,
  gateImportMap,
  judge,
  type PairedCase,
  parseBenchJson,
  ratios,
  sameCode,
  workspaceImports,
} from "./run.ts";

const c = (group: string, name: string, minNs: number, baseline = false): Case => ({
  key: `f.ts::${group}::${name}`,
  file: "f.ts",
  group,
  name,
  baseline,
  avgNs: minNs * 1.2,
  minNs,
  p99Ns: minNs * 1.1,
});

Deno.test("bench run: deno bench JSON is found after whatever the bench files printed", () => {
  const doc = {
    version: 1,
    runtime: "Deno/2.9.6",
    cpu: "x",
    benches: [{
      origin: "file:///repo/a_bench.ts",
      group: "g",
      name: "n",
      baseline: true,
      results: [{ ok: { avg: 10, min: 8, p99: 11 } }],
    }],
  };
  const text = "a line printed by a bench file\n" + JSON.stringify(doc, null, 2);
  const r = parseBenchJson(text, "/repo/");
  assert.deepEqual(r.cases.map((x) => [x.key, x.minNs, x.p99Ns]), [["a_bench.ts::g::n", 8, 11]]);
  assert.throws(() => parseBenchJson("no json here", "/"), /no deno bench JSON/);
  const failed = { ...doc, benches: [{ ...doc.benches[0], results: [{ failed: "boom" }] }] };
  assert.throws(() => parseBenchJson(JSON.stringify(failed, null, 2), "/"), /bench failed/);
});

Deno.test("bench run: ratios are to the group's baseline in the same run", () => {
  const r = ratios([c("g", "base", 10, true), c("g", "ours", 25), c("", "alone", 5)]);
  assert.equal(r.get("f.ts::g::ours"), 2.5);
  assert.equal(r.get("f.ts::g::base"), undefined);
  assert.equal(r.get("f.ts::::alone"), undefined);
});

Deno.test("bench run: the gate judges each case by its pooled rounds and every process's median", () => {
  const pc = (key: string, current: number[], accepted: number[]): PairedCase => ({
    key,
    current,
    accepted,
  });
  const rounds = (x: number) => [x, x * 1.02, x * 0.98, x];
  const processes = [
    [
      pc("slow", rounds(1300), rounds(1000)),
      pc("split", rounds(1500), rounds(1000)),
      pc("fast", rounds(700), rounds(1000)),
      pc("same", rounds(1030), rounds(1000)),
      pc("tiny", rounds(90), rounds(40)),
      pc("new", rounds(100), rounds(100)),
    ],
    [
      pc("slow", rounds(1250), rounds(1000)),
      pc("split", rounds(1400), rounds(1000)),
      pc("fast", rounds(800), rounds(1000)),
      pc("same", rounds(980), rounds(1000)),
      pc("tiny", rounds(90), rounds(40)),
    ],
    [
      pc("slow", rounds(1200), rounds(1000)),
      // One process sees it faster: whatever bias one process had, it does not agree.
      pc("split", rounds(950), rounds(1000)),
      pc("fast", rounds(750), rounds(1000)),
      pc("same", rounds(1000), rounds(1000)),
      pc("tiny", rounds(90), rounds(40)),
    ],
  ];
  const v = new Map(judge(processes, 0.1).map((x) => [x.key, x]));
  assert.equal(v.get("slow")!.status, "regressed");
  assert.ok(Math.abs(v.get("slow")!.median - 1.25) < 0.03, String(v.get("slow")!.median));
  assert.equal(v.get("slow")!.processes.length, 3);
  assert.equal(v.get("split")!.status, "noisy");
  assert.equal(v.get("fast")!.status, "improved");
  assert.equal(v.get("same")!.status, "ok");
  // Past the threshold overall, but one process saw less than half of it: too noisy.
  const lukewarm = judge([
    [pc("k", rounds(1250), rounds(1000))],
    [pc("k", rounds(1200), rounds(1000))],
    [pc("k", rounds(1030), rounds(1000))],
  ], 0.1);
  assert.equal(lukewarm[0].status, "noisy");
  // Every process slower, but 1.2x to 2.4x: noise of the case itself, not a verdict.
  const wild = judge([
    [pc("k", rounds(1200), rounds(1000))],
    [pc("k", rounds(2400), rounds(1000))],
    [pc("k", rounds(1500), rounds(1000))],
  ], 0.1);
  assert.equal(wild[0].status, "noisy");
  assert.equal(v.has("tiny"), false, "cases under the floor are not judged");
  assert.equal(v.has("new"), false, "a case one process of three measured is not judged");
  assert.ok(FLOOR_NS > 40 && FLOOR_NS <= 100);
  // With one process, one is enough; within the threshold is ok whatever the direction.
  const one = judge(
    [[pc("a", rounds(1090), rounds(1000)), pc("b", rounds(1200), rounds(1000))]],
    0.1,
  );
  assert.deepEqual(one.map((x) => [x.key, x.status]), [["a", "ok"], ["b", "regressed"]]);
});

Deno.test("bench run: a gate process resolves each tree's workspace packages inside that tree", async () => {
  const root = new URL("../", import.meta.url);
  const pkgs = await workspaceImports(root);
  assert.equal(pkgs["@deno-stores/shared/shard"], new URL("shared/shard/mod.ts", root).href);
  assert.equal(pkgs["@deno-stores/log"], new URL("services/log/mod.ts", root).href);
  // Here the "accepted tree" is this checkout itself: its scope maps to its own files.
  const map = await gateImportMap(root);
  assert.deepEqual(map.scopes[root.href], pkgs);
  assert.equal(map.imports["@deno-stores/shared/wal"], new URL("shared/wal/mod.ts", root).href);
  assert.equal(map.imports["zod"]?.startsWith("npm:"), true, "the root's own imports are kept");
});

Deno.test("bench run: a bench file is the same code only when its modules, deno.json files and lock are", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "same-code-" }));
  const at = new URL(`file://${dir}/`);
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", {
      args: ["-c", "user.name=t", "-c", "user.email=t@t", ...args],
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
  };
  const write = (path: string, text: string) => Deno.writeTextFile(`${dir}/${path}`, text);
  const bench = (imports: string) => `${imports}\nDeno.bench("x", () => {});\n`;
  const same = (file: string, rev = "HEAD", where = at) => sameCode(file, rev, where);
  try {
    await Deno.mkdir(`${dir}/lib`);
    await Deno.mkdir(`${dir}/out`);
    await write(".gitignore", "ignored/\nout/\n");
    await write("deno.json", "{}\n");
    await write("deno.lock", "{}\n");
    await write("lib/deno.json", "{}\n");
    // A module whose name needs escaping in a URL; a JSDoc example that starts a worker.
    await write(
      "lib/b c.ts",
      "/**\n * const w = new Worker(url); // an example\n */\nexport const b = 1;\n",
    );
    await write("a_bench.ts", bench('import { b } from "./lib/b c.ts";\nexport { b };'));
    await git("init", "-q");
    await git("add", "-A");
    await git("commit", "-q", "-m", "one");
    assert.equal(await same("a_bench.ts"), true);
    // A bench file outside the tree (here nothing is untracked): nothing of its graph compared.
    const outside = await Deno.makeTempFile({ suffix: "_bench.ts" });
    try {
      await Deno.writeTextFile(outside, bench(""));
      assert.equal(await same(outside), false);
    } finally {
      await Deno.remove(outside);
    }
    // Through a symlink to the tree: the same answers.
    const link = `${dir}-link`;
    await Deno.symlink(dir, link);
    try {
      assert.equal(await same("a_bench.ts", "HEAD", new URL(`file://${link}/`)), true);
      await write("lib/b c.ts", "export const b = 2;\n");
      assert.equal(await same("a_bench.ts", "HEAD", new URL(`file://${link}/`)), false);
    } finally {
      await Deno.remove(link);
    }
    // An imported module changed, not yet committed: not the same; committed: the same as HEAD.
    assert.equal(await same("a_bench.ts"), false);
    await git("commit", "-q", "-am", "two");
    assert.equal(await same("a_bench.ts"), true);
    assert.equal(await same("a_bench.ts", "HEAD~1"), false);
    // A file outside the graph, or an ignored deno.json (as under node_modules), changes nothing.
    await write("c.ts", "export const c = 2;\n");
    await write("out/deno.json", "{}\n");
    assert.equal(await same("a_bench.ts"), true);
    // The root's or a member's deno.json (import resolution), or the lock file, changed.
    const changed: [string, string][] = [
      ["deno.json", '{ "imports": {} }\n'],
      ["lib/deno.json", '{ "imports": {} }\n'],
      ["deno.lock", '{\n  "version": "5"\n}\n'],
    ];
    for (const [file, text] of changed) {
      await write(file, text);
      assert.equal(await same("a_bench.ts"), false, file);
      await git("checkout", "-q", "--", file);
    }
    // A new deno.json git does not track yet (a new member): not the same.
    await Deno.mkdir(`${dir}/lib2`);
    await write("lib2/deno.json", "{}\n");
    assert.equal(await same("a_bench.ts"), false);
    await Deno.remove(`${dir}/lib2`, { recursive: true });
    // A symlinked module: git would compare the link, not the file it points to.
    await write("lib/real.ts", "export const r = 1;\n");
    await Deno.symlink("real.ts", `${dir}/lib/linked.ts`);
    await write("s_bench.ts", bench('import { r } from "./lib/linked.ts";\nexport { r };'));
    await git("add", "-A");
    await git("commit", "-q", "-m", "symlink");
    assert.equal(await same("s_bench.ts"), false);
    // Modules git does not track: a new bench file; a module in an ignored folder.
    await write("n_bench.ts", bench('import { b } from "./lib/b c.ts";\nexport { b };'));
    assert.equal(await same("n_bench.ts"), false);
    await Deno.mkdir(`${dir}/ignored`);
    await write("ignored/d.ts", "export const d = 1;\n");
    await write("i_bench.ts", bench('import { d } from "./ignored/d.ts";\nexport { d };'));
    await git("add", "i_bench.ts");
    await git("commit", "-q", "-m", "three");
    assert.equal(await same("i_bench.ts"), false);
    // Code that may reach what the graph does not show is never the same.
    const reaching = [
      'const w = new Worker(new URL("./w.ts", import.meta.url).href, { type: "module" });',
      "const W = Worker;",
      "const w = new\n  Worker(url);",
      'await new Deno.Command("deno", { args: ["run", "x.ts"] }).output();',
      "const m = await import(name);",
      'const data = await Deno.readTextFile("data.json");',
      'const r = await fetch("file:///data.json");',
      "const { url } = import.meta;",
      "const here = import.meta;",
      'const p = Deno.run({ cmd: ["x"] });',
      'const f = await Deno.open("data.bin");',
      'await startDeno(["run", "x.ts"]);',
      "/**\n * an example\n */ new Worker(url);",
    ];
    for (const [i, code] of reaching.entries()) {
      await write(`r${i}_bench.ts`, bench(`const url = "", name = "";\n${code}`));
      await git("add", `r${i}_bench.ts`);
      await git("commit", "-q", "-m", `r${i}`);
      assert.equal(await same(`r${i}_bench.ts`), false, code);
    }
    await assert.rejects(same("a_bench.ts", "no-such-rev"), /git diff/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
