/**
 * Member processes of a metastore cluster on loopback for tests: start (`deno run main.ts` with
 * fast Raft timing), call the JSON API, wait for conditions, find the leader.
 *
 * @module
 */
import assert from "node:assert/strict";
import { freePort } from "../../../bench/lib/process.ts";

export { freePort };

/** One member: its ports, data directory and process (when running). */
export interface Member {
  name: string;
  port: number;
  peerPort: number;
  dir: string;
  child?: Deno.ChildProcess;
}

export function start(
  m: Member,
  initialCluster: string,
  extraEnv: Record<string, string> = {},
): void {
  m.child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname],
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
      FAULT_INJECTION: "true",
      ...extraEnv,
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
}

export async function post(
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

export async function until<T>(
  fn: () => Promise<T | undefined>,
  what: string,
  ms = 20_000,
): Promise<T> {
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

export async function leaderOf(members: Member[]): Promise<Member> {
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

/** Cuts a member's Raft transport off from every peer (`"all"`) or heals it (FAULT_INJECTION). */
export async function fault(m: Member, body: { cut: "all" } | { heal: true }): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${m.peerPort}/debug/fault`, {
    method: "POST",
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.text());
}

/** Three members (m1..m3) on free ports under `root`, and their INITIAL_CLUSTER. */
export function threeMembers(root: string): { members: Member[]; initial: string } {
  const members: Member[] = ["m1", "m2", "m3"].map((name) => ({
    name,
    port: freePort(),
    peerPort: freePort(),
    dir: `${root}/${name}`,
  }));
  const initial = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(",");
  return { members, initial };
}

/** SIGKILLs every running member. */
export async function killAll(members: Member[]): Promise<void> {
  for (const m of members) {
    if (m.child) {
      try {
        m.child.kill("SIGCONT");
        m.child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await m.child.status;
      m.child = undefined;
    }
  }
}
