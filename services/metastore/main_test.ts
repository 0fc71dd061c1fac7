import assert from "node:assert/strict";
import {
  freePort,
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
      // Writes through every member (followers forward to the leader). Under the whole suite's
      // load an election can come between them: a write refused then is tried again, as etcd
      // clients do (a few times, then the test fails).
      for (let i = 0; i < 30; i++) {
        for (let tries = 0; acked.length === i && tries < 20; tries++) {
          if (tries > 0) await new Promise((r) => setTimeout(r, 100));
          await put(members[i % 3], `before-${i}`).catch(() => {});
        }
      }
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

Deno.test({
  name:
    "metastore: member/add and a fourth process joining with INITIAL_CLUSTER_STATE=existing, then member/remove",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "metastore-join-" });
    const { members, initial } = threeMembers(root);
    const fourth: Member = {
      name: "m4",
      port: freePort(),
      peerPort: freePort(),
      dir: `${root}/m4`,
    };
    const all = [...members, fourth];
    try {
      for (const m of members) start(m, initial);
      const leader = await leaderOf(members);
      for (let i = 0; i < 20; i++) {
        const r = await post(members[i % 3], "/v3/kv/put", {
          key: btoa(`k${i}`),
          value: btoa("v"),
        });
        assert.equal(r.status, 200);
      }
      const peerUrl = `http://127.0.0.1:${fourth.peerPort}`;
      const added = await post(leader, "/v3/cluster/member/add", { peerURLs: [peerUrl] });
      assert.equal(added.status, 200, JSON.stringify(added.body));
      const id = (added.body.member as { ID: string }).ID;
      assert.equal((added.body.members as unknown[]).length, 4);
      const again = await post(leader, "/v3/cluster/member/add", { peerURLs: [peerUrl] });
      assert.deepEqual([again.status, again.body.code], [412, 9], "the same peer URL twice");

      start(fourth, `${initial},m4=${peerUrl}`, { INITIAL_CLUSTER_STATE: "existing" });
      // The new member catches up: a linearizable read through it sees every write.
      await until(async () => {
        const r = await post(fourth, "/v3/kv/range", {
          key: btoa("k"),
          range_end: btoa("l"),
          count_only: true,
        });
        return r.status === 200 && r.body.count === "20" ? true : undefined;
      }, "the fourth member to catch up");
      const st = await post(fourth, "/v3/maintenance/status", {});
      assert.equal(
        (st.body.header as { member_id: string }).member_id,
        id,
        "the id member/add chose",
      );
      await until(async () => {
        const list = await post(leader, "/v3/cluster/member/list", {});
        const m4 = (list.body.members as { ID: string; name?: string; clientURLs?: string[] }[])
          .find((m) => m.ID === id);
        return m4?.name === "m4" && m4.clientURLs?.[0] === `http://127.0.0.1:${fourth.port}`
          ? true
          : undefined;
      }, "m4 to publish its name and client URL");
      // Writes through the new member work too.
      assert.equal(
        (await post(fourth, "/v3/kv/put", { key: btoa("k-m4"), value: btoa("1") })).status,
        200,
      );

      const removed = await post(leader, "/v3/cluster/member/remove", { ID: id });
      assert.equal(removed.status, 200, JSON.stringify(removed.body));
      assert.equal((removed.body.members as unknown[]).length, 3);
      const unknown = await post(leader, "/v3/cluster/member/remove", { ID: id });
      assert.deepEqual([unknown.status, unknown.body.code], [404, 5]);
      const after = await post(leader, "/v3/kv/put", { key: btoa("k-after"), value: btoa("1") });
      assert.equal(after.status, 200, "three members still make a quorum");
    } finally {
      await killAll(all);
      await Deno.remove(root, { recursive: true });
    }
  },
});
