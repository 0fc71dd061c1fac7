import assert from "node:assert/strict";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

interface Member {
  name: string;
  port: number;
  peerPort: number;
  dir: string;
  child?: Deno.ChildProcess;
}

function start(m: Member, initialCluster: string): void {
  m.child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./main.ts", import.meta.url).pathname],
    env: {
      NAME: m.name,
      PORT: String(m.port),
      PEER_PORT: String(m.peerPort),
      DATA_DIR: m.dir,
      INITIAL_CLUSTER: initialCluster,
      HEARTBEAT_INTERVAL_MS: "20",
      ELECTION_TIMEOUT_MS: "300",
      ACCESS_LOG: "false",
      LOG_LEVEL: "warn",
      REQUEST_TIMEOUT_MS: "2000",
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function post(
  m: Member,
  path: string,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${m.port}${path}`, {
    method: "POST",
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(3000),
  });
  return { status: res.status, body: await res.json() };
}

async function until<T>(fn: () => Promise<T | undefined>, what: string, ms = 20_000): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch { /* not up yet */ }
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function leaderOf(members: Member[]): Promise<Member> {
  return await until(async () => {
    for (const m of members) {
      if (!m.child) continue;
      const s = await post(m, "/v3/maintenance/status", {});
      if (s.body.leader && s.body.leader === (s.body.header as Record<string, string>).member_id) {
        return m;
      }
    }
    return undefined;
  }, "a leader");
}

Deno.test({
  name:
    "metastore: a 3-member cluster keeps acknowledged writes through kill -9 of the leader and a restart",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "metastore-3-" });
    const members: Member[] = ["m1", "m2", "m3"].map((name) => ({
      name,
      port: freePort(),
      peerPort: freePort(),
      dir: `${root}/${name}`,
    }));
    const initial = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(",");
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
      const list = await post(rest[0], "/v3/cluster/member/list", {});
      assert.equal((list.body.members as unknown[]).length, 3);
    } finally {
      for (const m of members) {
        if (m.child) {
          m.child.kill("SIGKILL");
          await m.child.status;
        }
      }
      await Deno.remove(root, { recursive: true });
    }
  },
});
