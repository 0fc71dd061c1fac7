import assert from "node:assert/strict";
import { RaftNode, type StateMachine } from "./node.ts";
import { DurableStorage } from "./durable_storage.ts";
import { LocalNetwork } from "./transport.ts";
import { DenoFileSystem } from "../wal/fs.ts";
import { Prng } from "../sim/prng.ts";

const dec = new TextDecoder();
const quiet = { warn() {}, info() {} };

class Collect implements StateMachine<void> {
  seen = new Set<string>();
  apply(data: Uint8Array): void {
    this.seen.add(dec.decode(data));
  }
  restore(): void {}
  snapshot(): Uint8Array {
    return new Uint8Array(0);
  }
}

/** Starts the child, collects acknowledged sequence numbers until `acks`, then kills it (-9). */
async function runAndKill(dir: string, acks: number, seed: number): Promise<number[]> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./_testing/kill_child.ts", import.meta.url).pathname,
      dir,
      `${seed}`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const acked: number[] = [];
  let rest = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let killed = false;
  while (!killed) {
    const { done, value } = await reader.read();
    if (done) break;
    rest += value;
    const lines = rest.split("\n");
    rest = lines.pop()!;
    for (const l of lines) {
      if (l === "ready") continue;
      acked.push(Number(l));
      if (acked.length >= acks && !killed) {
        child.kill("SIGKILL");
        killed = true;
      }
    }
  }
  await reader.cancel().catch(() => {});
  const status = await child.status;
  assert.equal(status.success, false, "the child was killed, not finished");
  return acked;
}

Deno.test({
  name: "DurableStorage + RaftNode: every acknowledged proposal survives kill -9 (twice)",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "raft-kill-" });
    try {
      const first = await runAndKill(dir, 3000, 1);
      const second = await runAndKill(dir, 3000, 2);
      const persistence = await DurableStorage.open(new DenoFileSystem(), dir, { logger: quiet });
      const sm = new Collect();
      const node = new RaftNode<void>({
        id: 1,
        persistence,
        transport: new LocalNetwork().transport(1),
        stateMachine: sm,
        rand: new Prng(3),
        tickMs: 10,
      });
      node.start();
      const end = performance.now() + 20_000;
      while (!node.isLeader && performance.now() < end) await new Promise((r) => setTimeout(r, 5));
      await node.readIndex();
      await node.stop();
      await persistence.close();
      // The second run's sequence numbers restart at 1: their payloads repeat the first run's.
      for (const s of [...first, ...second]) assert.ok(sm.seen.has(`w${s}`), `w${s} lost`);
      assert.ok(sm.seen.size >= Math.max(...first), "at least the first run's entries applied");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
