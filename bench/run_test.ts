import assert from "node:assert/strict";
import { type Case, judge, parseBenchJson, ratios } from "./run.ts";

const c = (group: string, name: string, minNs: number, baseline = false): Case => ({
  key: `f.ts::${group}::${name}`,
  file: "f.ts",
  group,
  name,
  baseline,
  avgNs: minNs * 1.2,
  minNs,
  p75Ns: minNs * 1.1,
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
      results: [{ ok: { avg: 10, min: 8, p75: 11 } }],
    }],
  };
  const text = "a line printed by a bench file\n" + JSON.stringify(doc, null, 2);
  const r = parseBenchJson(text, "/repo/");
  assert.deepEqual(r.cases.map((x) => [x.key, x.minNs, x.p75Ns]), [["a_bench.ts::g::n", 8, 11]]);
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

Deno.test("bench run: the gate judges paired runs: regressed only when every pair agrees", () => {
  // Times in units of 100 ns (the gate does not judge cases under 100 ns).
  const run = (ours: number, other: number, lone: number) => [
    c("g", "base", 1000, true),
    c("g", "ours", ours * 100),
    c("g", "other", other * 100),
    c("", "lone", lone * 100),
  ];
  const accepted = [run(20, 20, 5), run(20, 20, 5), run(20, 20, 5)];
  // "ours" 30% slower in every pair; "other" slower in two pairs, faster in one.
  const current = [run(26, 30, 50), run(26, 30, 50), run(26, 15, 50)];
  const v = new Map(judge(current, accepted, 0.1).map((x) => [x.key, x]));
  assert.equal(v.get("f.ts::g::ours")!.status, "regressed");
  assert.ok(Math.abs(v.get("f.ts::g::ours")!.median - 1.3) < 1e-9);
  assert.equal(v.get("f.ts::g::other")!.status, "noisy");
  assert.equal(v.get("f.ts::g::base")!.status, "ok");
  assert.equal(v.has("f.ts::::lone"), false, "cases of groups without a baseline are not judged");
  // Cases of a few nanoseconds are not judged either, however far apart.
  const tiny = judge([[c("g", "base", 10, true), c("g", "t", 90)]], [[
    c("g", "base", 10, true),
    c("g", "t", 30),
  ]], 0.1);
  assert.equal(tiny.some((x) => x.key === "f.ts::g::t"), false);
  // A case over the floor in one run of three has one pair: not judged.
  const once = judge(
    [run(30, 20, 5), [c("g", "base", 1000, true), c("g", "ours", 50)], run(20, 20, 5)].slice(0, 2),
    [run(20, 20, 5), [c("g", "base", 1000, true), c("g", "ours", 50)]],
    0.1,
  );
  assert.equal(once.some((x) => x.key === "f.ts::g::ours"), false);
  // Faster in every pair: improved; within the threshold: ok.
  const faster = judge([run(15, 21, 5)], [run(20, 20, 5)], 0.1);
  assert.deepEqual(
    faster.map((x) => [x.key, x.status]),
    [["f.ts::g::base", "ok"], ["f.ts::g::other", "ok"], ["f.ts::g::ours", "improved"]],
  );
});
