/**
 * Child process of `durable_kill_test.ts`: a single-node RaftNode on DurableStorage in the
 * directory given as the first argument, proposing `w<seq>` entries (50 in flight) as fast as it
 * can and printing each acknowledged sequence number on its own line, until it is killed.
 *
 * @module
 */

import { RaftNode, type StateMachine } from "../node.ts";
import { DurableStorage } from "../durable_storage.ts";
import { bootstrapPersistence } from "../persistence.ts";
import { LocalNetwork } from "../transport.ts";
import { DenoFileSystem } from "../../wal/fs.ts";
import { Prng } from "../../sim/prng.ts";

const dir = Deno.args[0];
const enc = new TextEncoder();
const quiet = { warn() {}, info() {} };

class Sink implements StateMachine<void> {
  n = 0;
  apply(): void {
    this.n++;
  }
  restore(): void {}
  snapshot(): Uint8Array {
    return new Uint8Array(0);
  }
}

const persistence = await DurableStorage.open(new DenoFileSystem(), dir, { logger: quiet });
if (persistence.storage.lastIndex() === 0) await bootstrapPersistence(persistence, [1]);
const node = new RaftNode<void>({
  id: 1,
  persistence,
  transport: new LocalNetwork().transport(1),
  stateMachine: new Sink(),
  rand: new Prng(Number(Deno.args[1] ?? 1)),
  tickMs: 10,
  snapshotEntries: 0,
});
node.start();
while (!node.isLeader) await new Promise((r) => setTimeout(r, 5));
console.log("ready");
let seq = 0;
const out = Deno.stdout;
async function worker(): Promise<void> {
  for (;;) {
    const s = ++seq;
    await node.propose(enc.encode(`w${s}`));
    out.writeSync(enc.encode(`${s}\n`));
  }
}
await Promise.all(Array.from({ length: 50 }, worker));
