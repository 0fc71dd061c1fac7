/**
 * Fsynced 100-byte Raft entries per second through `DurableStorage` on the real disk, with group
 * commit (many entries per `save`). `deno run -A shared/raft/durable_throughput.ts [--seconds=3]
 * [--dir=...]`.
 *
 * @module
 */

import { DurableStorage } from "./durable_storage.ts";
import { type Entry, EntryType } from "./types.ts";
import { DenoFileSystem, joinPath } from "../wal/fs.ts";

const argv = Object.fromEntries(
  Deno.args.filter((a) => a.startsWith("--")).map((a) => a.slice(2).split("=")),
);
const seconds = Number(argv.seconds ?? 3);
const root = argv.dir ?? await Deno.makeTempDir({ prefix: "raft_durable_bench_" });

async function run(batch: number, concurrent: number): Promise<void> {
  const dir = joinPath(root, `b${batch}x${concurrent}`);
  const st = await DurableStorage.open(new DenoFileSystem(), dir, { logger: { warn() {} } });
  const payload = new Uint8Array(100).fill(7);
  let index = 0;
  let saves = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const lat: number[] = [];
  const worker = async () => {
    while (performance.now() < end) {
      const ents: Entry[] = [];
      for (let i = 0; i < batch; i++) {
        ents.push({ index: ++index, term: 1, type: EntryType.Normal, data: payload });
      }
      const s = performance.now();
      await st.save({ entries: ents, hardState: { term: 1, vote: 1, commit: index } });
      lat.push(performance.now() - s);
      saves++;
    }
  };
  await Promise.all(Array.from({ length: concurrent }, worker));
  const secs = (performance.now() - t0) / 1000;
  await st.close();
  lat.sort((a, b) => a - b);
  const p = (q: number) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))].toFixed(2);
  console.log(
    `batch ${String(batch).padStart(4)} x ${concurrent} concurrent: ` +
      `${Math.round(index / secs).toLocaleString("en-US").padStart(10)} entries/s, ` +
      `${Math.round(saves / secs)} saves/s, save p50 ${p(0.5)} ms, p99 ${p(0.99)} ms`,
  );
}

try {
  for (const [batch, conc] of [[1, 1], [10, 1], [100, 1], [1000, 1], [10, 10]]) {
    await run(batch, conc);
  }
} finally {
  if (argv.dir === undefined) await Deno.remove(root, { recursive: true });
}
