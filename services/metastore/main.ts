/**
 * Entry point of the metastore: reads the environment, opens the Raft storage in DATA_DIR,
 * serves the etcd JSON API on PORT and the Raft transport on PEER_PORT.
 *
 * @module
 */

import {
  installGracefulShutdown,
  serveWithConnectionLimit,
  stdoutLogger,
} from "@deno-stores/shared/http";
import { ConfigError, startOrExit } from "@deno-stores/shared/config";
import { bootstrapPersistence, DurableStorage, HttpTransport } from "@deno-stores/shared/raft";
import { DenoFileSystem, dirname, type FileSystem, writeFileAtomic } from "@deno-stores/shared/wal";
import { Prng } from "@deno-stores/shared/sim";
import { createMetastoreApp } from "./app.ts";
import {
  joinedMemberId,
  loadMetastoreConfig,
  memberIdFor,
  type MetastoreConfig,
} from "./config.ts";
import { MetaCluster } from "./server/cluster.ts";
import type { MemberInfo } from "./server/state_machine.ts";

async function run(config: MetastoreConfig): Promise<void> {
  const { logger, flush } = stdoutLogger("metastore", config.LOG_LEVEL);
  const token = config.INITIAL_CLUSTER_TOKEN;
  const selfPeerUrl = config.ADVERTISE_PEER_URL ?? `http://${config.PEER_HOST}:${config.PEER_PORT}`;
  const selfClientUrl = config.ADVERTISE_CLIENT_URL ?? `http://${config.HOST}:${config.PORT}`;
  const initial = config.INITIAL_CLUSTER ?? [{ name: config.NAME, peerUrl: selfPeerUrl }];
  if (!initial.some((m) => m.name === config.NAME)) {
    throw new ConfigError([{
      variable: "NAME",
      message: `"${config.NAME}" is not in INITIAL_CLUSTER`,
    }]);
  }
  // The member id is kept in the data directory: chosen once (from the name for an initial
  // member, from the peer URL for one added with member/add), the same on every restart.
  const fs = new DenoFileSystem();
  const memberId = await loadMemberId(
    fs,
    `${config.DATA_DIR}/member.json`,
    () =>
      config.INITIAL_CLUSTER_STATE === "existing"
        ? joinedMemberId(token, selfPeerUrl)
        : memberIdFor(token, config.NAME),
  );
  const clusterId = String(memberIdFor(token, "\0cluster"));
  // The same on every member (as etcd's bootstrap); each publishes its client URLs once running.
  const members: MemberInfo[] = initial.map((m) => ({
    id: memberIdFor(token, m.name),
    name: m.name,
    peerURLs: [m.peerUrl],
    clientURLs: [],
    isLearner: false,
  }));

  const persistence = await DurableStorage.open(fs, `${config.DATA_DIR}/raft`, {
    logger: { warn: (msg, f) => logger.warn(msg, f), info: (msg, f) => logger.info(msg, f) },
  });
  const fresh = persistence.storage.lastIndex() === 0 && persistence.storage.hardState().term === 0;
  if (fresh && config.INITIAL_CLUSTER_STATE === "new") {
    await bootstrapPersistence(persistence, members.map((m) => m.id));
    logger.info("bootstrapped a new cluster", { members: members.map((m) => m.name) });
  }
  const transport = new HttpTransport({
    id: memberId,
    clusterId,
    logger: {
      debug: () => {},
      info: (m) => logger.info(m),
      warn: (m) => logger.warn(m),
      error: (m) => logger.error(m),
    },
  });
  // A joining member needs its peers before it has the member list (a new cluster's members
  // get them from MetaCluster, which also records them as members).
  if (config.INITIAL_CLUSTER_STATE === "existing") {
    for (const m of members) if (m.id !== memberId) transport.addPeer(m.id, m.peerURLs[0]);
  }
  const tickMs = config.HEARTBEAT_INTERVAL_MS;
  const seed = crypto.getRandomValues(new Uint32Array(1))[0];
  const cluster = new MetaCluster({
    memberId,
    clusterId,
    persistence,
    transport,
    rand: new Prng(seed),
    // A member joining an existing cluster learns the member list from the log or a snapshot.
    members: config.INITIAL_CLUSTER_STATE === "new" ? members : [],
    tickMs,
    electionTick: Math.round(config.ELECTION_TIMEOUT_MS / tickMs),
    snapshotEntries: config.SNAPSHOT_COUNT,
    requestTimeoutMs: config.REQUEST_TIMEOUT_MS,
    quotaBytes: config.QUOTA_BACKEND_BYTES,
    progressNotifyMs: config.WATCH_PROGRESS_NOTIFY_INTERVAL_MS,
    autoCompactionRetention: config.AUTO_COMPACTION_RETENTION,
    publish: { name: config.NAME, clientURLs: [selfClientUrl] },
    onFatal: (e) => {
      logger.error("raft stopped on a fatal error; exiting", { error: String(e) });
      flush();
      Deno.exit(1);
    },
  });
  const service = createMetastoreApp({
    cluster,
    logger,
    accessLog: config.ACCESS_LOG,
    maxRequestBytes: config.MAX_REQUEST_BYTES,
    maxInflightRequests: config.MAX_INFLIGHT_REQUESTS,
    minLeaseTtlS: Math.ceil((1.5 * config.ELECTION_TIMEOUT_MS) / 1000),
    maxStreams: config.MAX_STREAMS,
    newMemberId: (urls) => joinedMemberId(token, urls[0]),
    watchBufferBytes: config.WATCH_BUFFER_BYTES,
  });
  const peerServer = Deno.serve({
    hostname: config.PEER_HOST,
    port: config.PEER_PORT,
    onListen: (a) => logger.info("peer listening", { url: `http://${a.hostname}:${a.port}` }),
  }, config.FAULT_INJECTION ? withFaultInjection(transport, logger) : transport.handle);
  cluster.start();
  const onListen = (a: Deno.NetAddr) =>
    logger.info("listening", {
      url: `http://${a.hostname}:${a.port}`,
      port: a.port,
      member: config.NAME,
      memberId: String(memberId),
      maxConnections: config.MAX_CONNECTIONS || "no cap",
    });
  const server = config.MAX_CONNECTIONS > 0
    ? serveWithConnectionLimit({
      hostname: config.HOST,
      port: config.PORT,
      maxConnections: config.MAX_CONNECTIONS,
      onListen,
    }, (req) => service.fetch(req))
    : Deno.serve({ hostname: config.HOST, port: config.PORT, onListen }, service.fetch);
  service.lifecycle.markStarted();
  installGracefulShutdown({
    servers: [server, peerServer],
    lifecycle: service.lifecycle,
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    onShutdown: [() => cluster.close()],
    flush,
    exit: Deno.exit,
  });
}

if (import.meta.main) {
  await startOrExit("metastore", () => run(loadMetastoreConfig(Deno.env.toObject())));
}

/**
 * The peer handler plus `POST /debug/fault` (FAULT_INJECTION=true only): `{"cut": "all"}` or
 * `{"cut": [memberIds]}` drops this member's Raft traffic with those peers; `{"heal": true}`
 * restores it.
 */
function withFaultInjection(
  transport: HttpTransport,
  logger: { warn(msg: string, fields?: Record<string, unknown>): void },
): (req: Request) => Promise<Response> {
  logger.warn("fault injection is on: POST /debug/fault on the peer listener can cut raft traffic");
  return async (req) => {
    if (new URL(req.url).pathname !== "/debug/fault") return transport.handle(req);
    if (req.method !== "POST") return Response.json({ error: "use POST" }, { status: 405 });
    let body: { cut?: unknown; heal?: unknown };
    try {
      body = await req.json();
    } catch {
      return Response.json({ error: "body is not JSON" }, { status: 400 });
    }
    if (body.heal === true) transport.heal();
    else if (body.cut === "all") transport.cut("all");
    else if (Array.isArray(body.cut) && body.cut.every((id) => Number.isSafeInteger(id))) {
      transport.cut(body.cut as number[]);
    } else {
      return Response.json({ error: 'expected {"cut": "all" | [ids]} or {"heal": true}' }, {
        status: 400,
      });
    }
    logger.warn("fault injection", { ...body });
    return Response.json({ ok: true });
  };
}

/** Reads this member's id from `path`, or picks one with `choose` and writes it durably. */
async function loadMemberId(
  fs: FileSystem,
  path: string,
  choose: () => number,
): Promise<number> {
  try {
    const o = JSON.parse(new TextDecoder().decode(await fs.readFile(path)));
    if (Number.isSafeInteger(o.id) && o.id > 0) return o.id;
    throw new Error(`${path}: no member id`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const id = choose();
  await fs.mkdir(dirname(path));
  await writeFileAtomic(fs, path, new TextEncoder().encode(JSON.stringify({ id }) + "\n"));
  return id;
}
