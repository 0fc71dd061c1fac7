/**
 * Starts etcd-API clusters on loopback for benchmarks and conformance tests: real etcd (the
 * `etcd` binary, 3.4 from Debian) or our metastore (`services/metastore/main.ts`), the same node
 * count, each member with its own data directory, both fsyncing every write.
 *
 * @module
 */
import { freePort } from "./process.ts";
import { METASTORE_V8_FLAGS } from "../../services/metastore/config.ts";

/** Which implementation a cluster runs. */
export type EtcdKind = "etcd" | "metastore";

/** One running member. */
export interface ClusterMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  child: Deno.ChildProcess;
}

/** A running cluster and how to stop it. */
export interface EtcdCluster {
  kind: EtcdKind;
  members: ClusterMember[];
  dataDir: string;
  /** Client URL of the current leader (asks the members). */
  leaderUrl(): Promise<string>;
  /** SIGTERM everything (SIGKILL after 10 s), remove the data directory. */
  stop(): Promise<void>;
}

const metastoreMain = new URL("../../services/metastore/main.ts", import.meta.url).pathname;

/** POSTs a JSON body to an etcd v3 JSON endpoint and returns the decoded answer. */
export async function etcdCall(
  url: string,
  path: string,
  body: unknown = {},
): Promise<Record<string, unknown>> {
  const res = await fetch(url + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${text}`);
  return JSON.parse(text);
}

/** Starts `nodes` members of `kind` and waits until they agree on a leader. */
export async function startEtcdCluster(
  kind: EtcdKind,
  nodes: number,
  options: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<EtcdCluster> {
  const dataDir = await Deno.makeTempDir({ prefix: `bench-${kind}-` });
  const specs = Array.from({ length: nodes }, (_, i) => ({
    name: `n${i + 1}`,
    port: freePort(),
    peerPort: freePort(),
  }));
  const initial = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(",");
  const members: ClusterMember[] = specs.map((s) => {
    const clientUrl = `http://127.0.0.1:${s.port}`;
    const peerUrl = `http://127.0.0.1:${s.peerPort}`;
    const dir = `${dataDir}/${s.name}`;
    const command = kind === "etcd"
      ? new Deno.Command("etcd", {
        args: [
          `--name=${s.name}`,
          `--data-dir=${dir}`,
          `--listen-client-urls=${clientUrl}`,
          `--advertise-client-urls=${clientUrl}`,
          `--listen-peer-urls=${peerUrl}`,
          `--initial-advertise-peer-urls=${peerUrl}`,
          `--initial-cluster=${initial}`,
          "--initial-cluster-state=new",
          "--initial-cluster-token=bench",
          "--log-level=error",
        ],
        env: options.env,
        stdout: "null",
        stderr: "null",
      })
      : new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", METASTORE_V8_FLAGS, metastoreMain],
        env: {
          NAME: s.name,
          HOST: "127.0.0.1",
          PORT: String(s.port),
          PEER_HOST: "127.0.0.1",
          PEER_PORT: String(s.peerPort),
          INITIAL_CLUSTER: initial,
          INITIAL_CLUSTER_TOKEN: "bench",
          DATA_DIR: dir,
          ACCESS_LOG: "false",
          LOG_LEVEL: "warn",
          ...options.env,
        },
        stdout: "null",
        stderr: "inherit",
      });
    return { name: s.name, clientUrl, peerUrl, child: command.spawn() };
  });

  const leaderUrl = async (): Promise<string> => {
    for (const m of members) {
      try {
        const st = await etcdCall(m.clientUrl, "/v3/maintenance/status");
        const header = st.header as Record<string, string>;
        if (st.leader !== undefined && st.leader === header.member_id) return m.clientUrl;
      } catch {
        // down or not ready
      }
    }
    throw new Error(`${kind}: no leader`);
  };

  const cluster: EtcdCluster = {
    kind,
    members,
    dataDir,
    leaderUrl,
    async stop() {
      await Promise.all(members.map(async (m) => {
        try {
          m.child.kill("SIGTERM");
        } catch {
          // already gone
        }
        const timer = setTimeout(() => {
          try {
            m.child.kill("SIGKILL");
          } catch {
            // gone
          }
        }, 10_000);
        await m.child.status;
        clearTimeout(timer);
      }));
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };

  const deadline = performance.now() + (options.timeoutMs ?? 30_000);
  while (true) {
    try {
      const url = await leaderUrl();
      // A linearizable read through the leader proves a quorum answers (and writes nothing, so
      // revisions start at 1 for what runs next).
      await etcdCall(url, "/v3/kv/range", { key: btoa("ready") });
      return cluster;
    } catch (e) {
      if (performance.now() > deadline) {
        await cluster.stop();
        throw new Error(`${kind} cluster of ${nodes} did not come up: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Lets the machine settle between clusters in a benchmark: flush what the last one left dirty (its
 * data directory was just deleted) and pause, so that one system's writeback does not land in the
 * other's measurement.
 */
export async function settle(): Promise<void> {
  await new Deno.Command("sync").output().catch(() => {});
  await new Promise((r) => setTimeout(r, 2000));
}
