/**
 * The metastore's environment, validated. Names follow etcd's flags where one exists
 * (`--name`, `--initial-cluster`, `--initial-cluster-state`, `--initial-cluster-token`,
 * `--data-dir`, `--snapshot-count`, `--heartbeat-interval`, `--election-timeout`).
 *
 * @module
 */

import { z } from "zod";
import { bool, host, httpEnvShape, int, parseEnv, port } from "@deno-stores/shared/config";
import type { Env } from "@deno-stores/shared/config";

/**
 * V8 flags the metastore runs with (`deno run` arguments). A small young generation keeps
 * scavenge pauses short: most of what a store allocates (history records, log entries) survives
 * and is copied out of it, and a long pause there delays every request in flight. Under the
 * PUT benchmark (bench/metastore_compare.ts) it lowers the p99 at the same throughput.
 */
export const METASTORE_V8_FLAGS = "--v8-flags=--max-semi-space-size=4";

/** Default client (etcd JSON API) port. */
export const METASTORE_PORT_DEFAULT = 2379;
/** Default peer (Raft transport) port. */
export const METASTORE_PEER_PORT_DEFAULT = 2380;

/** One `name=url` pair of INITIAL_CLUSTER. */
export interface InitialMember {
  name: string;
  peerUrl: string;
}

/** Parses `name=http://host:port,name2=...`. */
export function parseInitialCluster(s: string): InitialMember[] {
  const out: InitialMember[] = [];
  const seen = new Set<string>();
  for (const part of s.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new Error(`"${part}" is not name=url`);
    const name = part.slice(0, eq);
    const peerUrl = part.slice(eq + 1).replace(/\/+$/, "");
    let u: URL;
    try {
      u = new URL(peerUrl);
    } catch {
      throw new Error(`"${peerUrl}" is not a URL`);
    }
    if (u.protocol !== "http:") throw new Error(`"${peerUrl}": only http:// peer URLs`);
    if (seen.has(name)) throw new Error(`member "${name}" listed twice`);
    seen.add(name);
    out.push({ name, peerUrl });
  }
  if (out.length === 0) throw new Error("no members");
  return out;
}

const initialCluster = z.string().transform((s, ctx) => {
  try {
    return parseInitialCluster(s);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
    return z.NEVER;
  }
});

/** The metastore's configuration schema. */
export function metastoreConfigSchema() {
  return z.object({
    ...httpEnvShape(METASTORE_PORT_DEFAULT),
    /** This member's name (must appear in INITIAL_CLUSTER when starting a new cluster). */
    NAME: z.string().min(1).max(128).default("default"),
    PEER_HOST: host("127.0.0.1"),
    PEER_PORT: port(METASTORE_PEER_PORT_DEFAULT),
    /** URL other members reach this one at (default http://PEER_HOST:PEER_PORT). */
    ADVERTISE_PEER_URL: z.string().url().optional(),
    /** URL clients reach this member at (default http://HOST:PORT). */
    ADVERTISE_CLIENT_URL: z.string().url().optional(),
    /** `name=peerUrl,...`; default: this member alone. */
    INITIAL_CLUSTER: initialCluster.optional(),
    /** `new` bootstraps INITIAL_CLUSTER; `existing` joins a cluster that already added us. */
    INITIAL_CLUSTER_STATE: z.enum(["new", "existing"]).default("new"),
    INITIAL_CLUSTER_TOKEN: z.string().min(1).max(128).default("metastore-cluster"),
    DATA_DIR: z.string().min(1).default(".data/metastore"),
    /** Applied entries between snapshots (etcd --snapshot-count). */
    SNAPSHOT_COUNT: int(100_000, 100, 10_000_000),
    /** Raft tick (etcd --heartbeat-interval, ms). */
    HEARTBEAT_INTERVAL_MS: int(100, 5, 10_000),
    /** Election timeout in ms (etcd --election-timeout); a multiple of the heartbeat. */
    ELECTION_TIMEOUT_MS: int(1000, 50, 60_000),
    /** Largest request etcd accepts by default (1.5 MiB). */
    MAX_REQUEST_BYTES: int(1_572_864, 1024, 64 << 20),
    /** Backend quota: history bytes before writes are refused (etcd --quota-backend-bytes). */
    QUOTA_BACKEND_BYTES: int(2 * 1024 ** 3, 1 << 20, 2 ** 40),
    /** Deadline of a write or linearizable read (ms). */
    REQUEST_TIMEOUT_MS: int(5000, 100, 120_000),
    /**
     * Long-lived client streams (watch, lease keepalive) open at once; more are refused (503).
     * Short requests are bounded by MAX_INFLIGHT_REQUESTS.
     */
    MAX_STREAMS: int(10_000, 1, 1_000_000),
    /**
     * Client connections open at once (0 = no cap). With a cap the client port is served through
     * an accept loop that refuses connections over it with 503 (costs some throughput).
     */
    MAX_CONNECTIONS: int(0, 0, 1_000_000),
    /** Unread watch response bytes per stream before its watchers are canceled as too slow. */
    WATCH_BUFFER_BYTES: int(16 << 20, 64 << 10, 1 << 30),
    /** Interval of watch progress notifications (etcd: 10 minutes). */
    WATCH_PROGRESS_NOTIFY_INTERVAL_MS: int(600_000, 100, 86_400_000),
    /**
     * Automatic compaction (etcd --auto-compaction-retention in revision mode): keep this many
     * revisions of history, compacting every 5 minutes on the leader. 0 = off, as etcd.
     */
    AUTO_COMPACTION_RETENTION: int(0, 0, 1_000_000_000),
    /**
     * Serve `POST /debug/fault` on the peer listener (cut this member's Raft transport off from
     * some or all peers, or heal it). For fault tests only; off by default.
     */
    FAULT_INJECTION: bool(false),
  }).refine((c) => c.ELECTION_TIMEOUT_MS >= 5 * c.HEARTBEAT_INTERVAL_MS, {
    message: "ELECTION_TIMEOUT_MS must be at least 5x HEARTBEAT_INTERVAL_MS",
    path: ["ELECTION_TIMEOUT_MS"],
  });
}

/** Validated metastore configuration. */
export type MetastoreConfig = z.infer<ReturnType<typeof metastoreConfigSchema>>;

/** Parses the environment (throws ConfigError naming bad variables). */
export function loadMetastoreConfig(env: Env): MetastoreConfig {
  return parseEnv(metastoreConfigSchema(), env);
}

/**
 * Raft id of a member: a stable hash of the cluster token and the member's name, a positive
 * safe integer (Raft ids are JavaScript numbers), so every member derives the same ids from
 * INITIAL_CLUSTER without coordination.
 */
export function memberIdFor(token: string, name: string): number {
  // FNV-1a 64-bit over "token/name", folded to 52 bits.
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(`${token}/${name}`)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  const id = Number(h & 0xfffffffffffffn);
  return id === 0 ? 1 : id;
}

/**
 * Raft id of a member added at run time (`member/add`), from its first peer URL: the API computes
 * it when adding, and the new member computes the same when it starts with
 * INITIAL_CLUSTER_STATE=existing. Members of the initial cluster derive theirs from their names.
 */
export function joinedMemberId(token: string, peerUrl: string): number {
  return memberIdFor(token, `\0peer\0${peerUrl.replace(/\/+$/, "")}`);
}
