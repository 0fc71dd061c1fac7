import assert from "node:assert/strict";
import {
  killAll,
  leaderOf,
  type Member,
  post,
  start,
  threeMembers,
  until,
} from "./_testing/members.ts";

Deno.test({
  name:
    "metastore: a 3-member cluster keeps acknowledged writes through kill -9 of the leader and a restart",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "metastore-3-" });
    const { members, initial } = threeMembers(root);
    try {
      for (const m of members) start(m, initial);
      const leader = await leaderOf(members);
      const acked: string[] = [];
      const put = async (m: Member, k: string) => {
        const r = await post(m, "/v3/kv/put", { key: btoa(k), value: btoa(`v-${k}`) });
        if (r.status === 200) acked.push(k);
      };
      // Writes through every member (followers forward to the leader).
      for (let i = 0; i < 30; i++) await put(members[i % 3], `before-${i}`);
      assert.equal(acked.length, 30);
      leader.child!.kill("SIGKILL");
      await leader.child!.status;
      leader.child = undefined;
      const rest = members.filter((m) => m !== leader);
      await leaderOf(rest);
      for (let i = 0; i < 30; i++) {
        await put(rest[i % 2], `after-${i}`).catch(() => {});
      }
      assert.ok(acked.length > 40, `only ${acked.length} writes acknowledged`);
      start(leader, initial);
      // The restarted member catches up; a linearizable read there sees every acknowledged write.
      const kvs = await until(async () => {
        const r = await post(leader, "/v3/kv/range", { key: btoa("\0"), range_end: btoa("\0") });
        const got = (r.body.kvs as { key: string }[] | undefined ?? []).map((kv) => atob(kv.key));
        return acked.every((k) => got.includes(k)) ? got : undefined;
      }, "the restarted member to catch up");
      assert.ok(kvs.length >= acked.length);
      // Every member published its client URL through the log, so every member lists them all.
      const expected = members.map((m) => `${m.name} http://127.0.0.1:${m.port}`).sort();
      for (const m of members) {
        await until(async () => {
          const list = await post(m, "/v3/cluster/member/list", {});
          const got = (list.body.members as { name: string; clientURLs?: string[] }[])
            .map((x) => `${x.name} ${(x.clientURLs ?? []).join(",")}`).sort();
          return JSON.stringify(got) === JSON.stringify(expected) ? got : undefined;
        }, `${m.name} to list every member's client URL`);
      }
    } finally {
      await killAll(members);
      await Deno.remove(root, { recursive: true });
    }
  },
});
