import assert from "node:assert/strict";
import { type BenchDef, collect, measurePaired, normalizeBench, WARMUP_BATCHES } from "./gate.ts";

Deno.test("bench gate: every form of Deno.bench is read as deno bench reads it", () => {
  const f = () => {};
  function named() {}
  const forms: [unknown, unknown?, unknown?][] = [
    ["a", f],
    ["b", { group: "g", baseline: true }, f],
    [{ name: "c", group: "g", fn: f }],
    [named],
    [{ group: "h", ignore: true }, named],
    [{ name: "d", only: true }, f],
  ];
  const got = forms.map(([a, b, c]) => normalizeBench(a, b, c));
  assert.deepEqual(
    got.map((d) => [d.name, d.group, d.baseline, d.ignore, d.only]),
    [
      ["a", "", false, false, false],
      ["b", "g", true, false, false],
      ["c", "g", false, false, false],
      ["named", "", false, false, false],
      ["named", "h", false, true, false],
      ["d", "", false, false, true],
    ],
  );
  assert.throws(() => normalizeBench("x"), /no bench function/);
  assert.throws(() => normalizeBench({ group: "g" }, () => {}), /has no name/);
  assert.throws(() => normalizeBench(42), /no bench function/);
});

Deno.test("bench gate: a bench file is collected without running it, Deno.bench restored", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/x_bench.ts`;
    await Deno.writeTextFile(
      file,
      `globalThis.ran = 0;
Deno.bench("one", { group: "g", baseline: true }, () => { globalThis.ran++; });
Deno.bench("skipped", { ignore: true }, () => {});
Deno.bench({ name: "two", group: "g", fn: () => { globalThis.ran++; } });
`,
    );
    const before = Deno.bench;
    const defs = await collect(`file://${file}`);
    assert.equal(Deno.bench, before);
    assert.deepEqual(defs.map((d) => d.name), ["one", "two"]);
    assert.equal((globalThis as { ran?: number }).ran, 0, "collecting runs no bench");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bench gate: cases of both trees are paired by group and name, rounds interleaved", async () => {
  const order: string[] = [];
  const def = (tree: string, name: string, start?: boolean): BenchDef => ({
    name,
    group: "g",
    baseline: false,
    ignore: false,
    only: false,
    fn: start
      ? (b) => {
        b.start();
        b.end();
        order.push(`${tree}:${name}`);
      }
      : async () => {
        await Promise.resolve();
        order.push(`${tree}:${name}`);
      },
  });
  const cases = await measurePaired(
    [def("cur", "shared"), def("cur", "only current"), def("cur", "region", true)],
    [def("acc", "shared"), def("acc", "only accepted"), def("acc", "region", true)],
    { rounds: 3, batchMs: 0.01, origins: ["cur", "acc"], warmup: 1 },
  );
  assert.deepEqual(cases.map((c) => c.name), ["shared", "region"]);
  for (const c of cases) {
    assert.equal(c.current.length, 3);
    assert.equal(c.accepted.length, 3);
    assert.ok([...c.current, ...c.accepted].every((x) => Number.isFinite(x) && x >= 0));
  }
  // After calibration and one warm-up batch each, the rounds alternate who goes first.
  const shared = order.filter((x) => x.endsWith(":shared"));
  const changes = shared.filter((x, i) => i > 0 && x !== shared[i - 1]).length;
  assert.ok(changes >= 4, `batches alternate between trees: ${changes} changes`);
  // Calibration (accepted), warm-up (current, accepted), then rounds A B, B A, A B: the runs
  // of one tree's batches, in order.
  const runs = shared.filter((x, i) => i === 0 || x !== shared[i - 1]).map((x) => x.split(":")[0]);
  assert.deepEqual(runs, ["acc", "cur", "acc", "cur", "acc", "cur", "acc"]);
});

Deno.test("bench gate: both trees get the warm-up batches before a case's rounds", async () => {
  // Each batch of a tree's case records which tree ran it; a batch is one call here (batchMs 0:
  // calibration stops at one iteration).
  const order: string[] = [];
  const def = (tree: string): BenchDef => ({
    name: "c",
    group: "g",
    baseline: false,
    ignore: false,
    only: false,
    fn: () => {
      order.push(tree);
    },
  });
  const rounds = 4;
  await measurePaired([def("cur")], [def("acc")], {
    rounds,
    batchMs: 0,
    origins: ["cur", "acc"],
  });
  // Calibration (one accepted batch), the warm-up, then the measured rounds.
  const before = order.slice(1, order.length - 2 * rounds);
  assert.equal(before.length, 2 * WARMUP_BATCHES);
  // Alternating, this tree's first: cur acc cur acc ...
  assert.ok(before.every((t, i) => t === (i % 2 === 0 ? "cur" : "acc")), before.join(" "));
  assert.ok(WARMUP_BATCHES >= 10);
});
