import assert from "node:assert/strict";
import { runSimulation } from "./cluster.ts";

// 200 seeds (3- and 5-node clusters alternately) on every `deno task test`; many more with
// `deno run -A shared/raft/sim/main.ts --seeds 10000`.
const SEEDS = 200;

Deno.test(`raft sim: ${SEEDS} randomized seeds (crashes, torn writes, partitions)`, async () => {
  const failures: string[] = [];
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = await runSimulation({ seed, nodes: seed % 2 === 0 ? 3 : 5 });
    if (!r.ok) failures.push(r.error!);
  }
  assert.deepEqual(failures, [], failures.join("\n\n"));
});

Deno.test("raft sim: a seed replays identically", async () => {
  const a = await runSimulation({ seed: 4242, nodes: 5 });
  const b = await runSimulation({ seed: 4242, nodes: 5 });
  assert.ok(a.ok, a.error);
  assert.deepEqual(a.stats, b.stats);
  assert.ok(a.stats.acked > 0 && a.stats.crashes > 0, JSON.stringify(a.stats));
});
