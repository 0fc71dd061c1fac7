import assert from "node:assert/strict";
import {
  checkBlob,
  decodeCounter,
  encodeCounter,
  type WorkerResult,
  type WorkerTask,
} from "./_test_worker.ts";
import { SharedShardTable } from "./shared_table.ts";

type Reply = { ok: true; result: WorkerResult } | { ok: false; error: string };

const WORKER_URL = new URL("./_test_worker.ts", import.meta.url).href;
/** `SHARD_STRESS=20 deno test -A shared/shard/shared_table_workers_test.ts` runs 20× the ops. */
const SCALE = Number(Deno.env.get("SHARD_STRESS") ?? "1") || 1;

async function hammer(workerCount: number, opsPerWorker: number, shardCount: number) {
  const table = SharedShardTable.create({
    shardCount,
    slotsPerShard: 256,
    arenaBytes: 16 * 2 ** 20,
    arenaInitialBytes: 64 * 1024, // grows while workers run
    maxBlockBytes: 4096,
  });
  const counters = 16;
  const blobs = 64;
  for (let c = 0; c < counters; c++) table.set(`ctr:${c}`, encodeCounter(0));
  const barrier = new Int32Array(new SharedArrayBuffer(8));
  const workers: Worker[] = [];
  try {
    const replies: Promise<Reply>[] = [];
    for (let w = 0; w < workerCount; w++) {
      const worker = new Worker(WORKER_URL, { type: "module" });
      workers.push(worker);
      replies.push(
        new Promise<Reply>((resolve, reject) => {
          worker.onmessage = (e: MessageEvent<Reply>) => resolve(e.data);
          worker.onerror = (e) => {
            e.preventDefault();
            reject(new Error(`worker ${w} failed: ${e.message}`));
          };
        }),
      );
      const task: WorkerTask = {
        handle: table.handle(),
        barrier: barrier.buffer as SharedArrayBuffer,
        workerId: w,
        seed: 1000 + w,
        ops: opsPerWorker,
        counters,
        blobs,
      };
      worker.postMessage(task);
    }
    // Start everyone at once, then read concurrently from this isolate too.
    while (Atomics.load(barrier, 0) < workerCount) {
      await new Promise((r) => setTimeout(r, 5));
    }
    Atomics.store(barrier, 1, 1);
    Atomics.notify(barrier, 1);
    let done = false;
    const all = Promise.all(replies).finally(() => (done = true));
    let parentIterations = 0;
    const problems: string[] = [];
    while (!done) {
      const seen = new Set<string>();
      let cursor: string | null = null;
      do {
        const page = table.page({ cursor, limit: 7 });
        for (const [k, v] of page.items) {
          if (seen.has(k)) problems.push(`parent page: ${k} twice`);
          seen.add(k);
          if (k.startsWith("blob:")) {
            const bad = checkBlob(v);
            if (bad !== null) problems.push(`parent page: ${bad}`);
          } else decodeCounter(v);
        }
        cursor = page.cursor;
        await new Promise((r) => setTimeout(r, 0));
      } while (cursor !== null);
      for (let c = 0; c < counters; c++) {
        if (!seen.has(`ctr:${c}`)) problems.push(`parent page missed ctr:${c}`);
      }
      parentIterations++;
    }
    const results = (await all).map((r) => {
      if (!r.ok) throw new Error(r.error);
      return r.result;
    });
    assert.deepEqual(problems, []);
    assert.ok(parentIterations >= 1);

    // Nothing lost: every counter equals the sum of the increments applied.
    for (const r of results) assert.deepEqual(r.problems, [], `worker ${r.workerId}`);
    let totalIncrements = 0;
    for (let c = 0; c < counters; c++) {
      const expected = results.reduce((acc, r) => acc + r.increments[c]!, 0);
      totalIncrements += expected;
      assert.equal(decodeCounter(table.get(`ctr:${c}`)!), expected, `ctr:${c}`);
    }
    assert.ok(totalIncrements > opsPerWorker * workerCount * 0.3);

    // Nothing torn: every blob left passes its checksum.
    let blobsLeft = 0;
    for (let b = 0; b < blobs; b++) {
      const v = table.get(`blob:${b}`);
      if (v === undefined) continue;
      blobsLeft++;
      assert.equal(checkBlob(v), null, `blob:${b}`);
    }

    // Sequences are unique across workers and dense from 1.
    const seqs = results.flatMap((r) => r.sequences).sort((a, b) => a - b);
    assert.ok(seqs.length > 0);
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1));

    // Counts agree with contents; the allocator balances.
    assert.equal(table.size, counters + blobsLeft);
    assert.equal(table.shardSizes().reduce((a, b) => a + b, 0), table.size);
    const stats = table.stats();
    assert.equal(stats.liveBlocks, table.size);
    assert.ok(stats.arenaBytes > 64 * 1024, "arena grew under concurrency");
    return results;
  } finally {
    for (const w of workers) w.terminate();
  }
}

Deno.test("SharedShardTable: 4 workers hammering 2 shards lose and tear nothing", async () => {
  const results = await hammer(4, 20_000 * SCALE, 2);
  assert.ok(results.every((r) => r.pages > 0));
});

Deno.test("SharedShardTable: 3 workers on 16 shards lose and tear nothing", async () => {
  await hammer(3, 15_000 * SCALE, 16);
});
