import assert from "node:assert/strict";
import { checkKvHistory, KvHistory, type KvValue, Prng } from "@deno-stores/shared/sim";
import {
  fault,
  killAll,
  leaderOf,
  type Member,
  post,
  start,
  threeMembers,
  until,
} from "./_testing/members.ts";

const KEYS = ["k0", "k1", "k2", "k3"];
const CLIENTS = 5;

/** Puts, linearizable gets, deletes and compare-and-swaps (txn) through the JSON API. */
async function clientLoop(
  id: number,
  members: Member[],
  history: KvHistory,
  running: () => boolean,
): Promise<number> {
  const rnd = new Prng(1000 + id);
  let n = 0;
  let acked = 0;
  while (running()) {
    const live = members.filter((m) => m.child !== undefined);
    if (live.length === 0) {
      await new Promise((r) => setTimeout(r, 20));
      continue;
    }
    const m = live[rnd.nextInt(live.length)];
    const key = KEYS[rnd.nextInt(KEYS.length)];
    const k = btoa(key);
    const roll = rnd.nextInt(100);
    const value = `c${id}-${n++}`;
    try {
      if (roll < 35) {
        const h = history.invoke(id, { kind: "put", key, value });
        const r = await post(m, "/v3/kv/put", { key: k, value: btoa(value) });
        if (r.status === 200) {
          history.ok(h);
          acked++;
        }
        // Any error may still have committed (a timeout after proposing): unknown outcome.
      } else if (roll < 75) {
        const h = history.invoke(id, { kind: "get", key });
        const r = await post(m, "/v3/kv/range", { key: k });
        if (r.status === 200) {
          const kvs = r.body.kvs as { value?: string }[] | undefined;
          history.ok(h, kvs && kvs.length > 0 ? atob(kvs[0].value ?? "") : null);
          acked++;
        } else history.fail(h); // a failed read has no effect
      } else if (roll < 85) {
        const h = history.invoke(id, { kind: "delete", key });
        const r = await post(m, "/v3/kv/deleterange", { key: k });
        if (r.status === 200) {
          history.ok(h);
          acked++;
        }
      } else {
        // Compare-and-swap on the value last seen by anyone is too clever; use a random
        // recent value of this client or "absent".
        const expected: KvValue | null = rnd.nextInt(3) === 0
          ? null
          : `c${rnd.nextInt(CLIENTS)}-${Math.max(0, n - 1 - rnd.nextInt(20))}`;
        const h = history.invoke(id, { kind: "cas", key, expected, value });
        const compare = expected === null
          ? { key: k, target: "CREATE", result: "EQUAL", create_revision: 0 }
          : { key: k, target: "VALUE", result: "EQUAL", value: btoa(String(expected)) };
        const r = await post(m, "/v3/kv/txn", {
          compare: [compare],
          success: [{ request_put: { key: k, value: btoa(value) } }],
        });
        if (r.status === 200) {
          history.ok(h, r.body.succeeded === true);
          acked++;
        }
      }
    } catch {
      // Connection refused, reset or timed out: the outcome stays unknown.
    }
  }
  return acked;
}

Deno.test({
  name:
    "metastore faults: kill -9 and restart, a paused leader (SIGSTOP), a leader with its transport cut, under load; the history is linearizable",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "metastore-fault-" });
    const { members, initial } = threeMembers(root);
    const history = new KvHistory();
    let running = true;
    try {
      for (const m of members) start(m, initial);
      await leaderOf(members);
      const clients = Array.from(
        { length: CLIENTS },
        (_, i) => clientLoop(i, members, history, () => running),
      );
      const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
      await pause(1500);

      // 1. kill -9 the leader under load, restart it from its data directory.
      const first = await leaderOf(members);
      first.child!.kill("SIGKILL");
      await first.child!.status;
      first.child = undefined;
      await leaderOf(members.filter((m) => m !== first));
      await pause(1000);
      start(first, initial);
      await pause(1500);

      // 2. Cut the leader off from peers and clients (SIGSTOP): the others elect a new leader;
      //    resumed, the old one must not serve stale reads or lose anything acknowledged.
      const second = await leaderOf(members.filter((m) => m.child !== undefined));
      second.child!.kill("SIGSTOP");
      await leaderOf(members.filter((m) => m !== second && m.child !== undefined));
      await pause(1500);
      second.child!.kill("SIGCONT");
      await pause(1500);

      // 3. Cut the current leader's Raft transport (it keeps running and serving clients):
      //    the others elect a leader; the cut one can neither commit nor confirm reads.
      const third = await leaderOf(members);
      await fault(third, { cut: "all" });
      await leaderOf(members.filter((m) => m !== third));
      await pause(1500);
      await fault(third, { heal: true });
      await pause(1500);

      running = false;
      const acked = (await Promise.all(clients)).reduce((s, n) => s + n, 0);
      assert.ok(acked > 100, `only ${acked} operations acknowledged`);

      // Final linearizable reads of every key join the history.
      await leaderOf(members);
      for (const key of KEYS) {
        const h = history.invoke("final", { kind: "get", key });
        const r = await until(async () => {
          const r = await post(members[0], "/v3/kv/range", { key: btoa(key) });
          return r.status === 200 ? r : undefined;
        }, `a final read of ${key}`);
        const kvs = r.body.kvs as { value?: string }[] | undefined;
        history.ok(h, kvs && kvs.length > 0 ? atob(kvs[0].value ?? "") : null);
      }
      const ops = history.operations();
      const result = checkKvHistory(ops, { maxStepsPerKey: 20_000_000 });
      assert.ok(result.ok, result.ok ? "" : result.info);
    } finally {
      running = false;
      await killAll(members);
      await Deno.remove(root, { recursive: true });
    }
  },
});
