/**
 * The metastore's HTTP app: etcd's v3 JSON gateway (`/v3/...`, alias `/v3beta/...`) and a UTF-8
 * convenience API (`/api/kv/...`), over a {@link MetaCluster}.
 *
 * @module
 */

import type { Context } from "hono";
import {
  createServiceApp,
  type Logger,
  type ServiceApp,
  type ServiceEnv,
} from "@deno-stores/shared/http";
import type { MetaCluster } from "./server/cluster.ts";
import {
  asObject,
  bad,
  decodeDeleteRange,
  decodePut,
  decodeRange,
  decodeTxn,
  encodeDeleteBody,
  encodeEvent,
  encodeHeader,
  encodeKv,
  encodeRangeBody,
  encodeTxnBody,
  idField,
  intField,
} from "./api/codec.ts";
import { JsonObjectSplitter } from "./api/json_stream.ts";
import { EtcdError, GrpcCode } from "./mvcc/types.ts";
import type { CommandResult, MemberInfo } from "./server/state_machine.ts";
import type { WatchMessage, WatchSpec } from "./server/watch.ts";

/** The version reported by /v3/maintenance/status (etcd clients parse it for features). */
export const ETCD_API_VERSION = "3.4.0";
/** Largest lease TTL etcd accepts (seconds). */
export const MAX_LEASE_TTL_S = 9_000_000_000;

export interface MetastoreAppOptions {
  cluster: MetaCluster;
  logger: Logger;
  accessLog?: boolean;
  /** Largest request body (etcd's default 1.5 MiB). */
  maxRequestBytes?: number;
  maxInflightRequests?: number;
  /** Minimum lease TTL in seconds (etcd: 1.5 election timeouts, rounded up). */
  minLeaseTtlS?: number;
  /** Watch and lease keepalive streams open at once; more are refused with 503 (default 10,000). */
  maxStreams?: number;
  /**
   * Bytes of watch responses buffered for a client that does not read them; past it the stream's
   * watchers are canceled (with a reason) and the stream ends (default 16 MiB).
   */
  watchBufferBytes?: number;
  /** Raft id for a member added with `peerURLs` (default: random). */
  newMemberId?: (peerURLs: string[]) => number;
  /** Lease ids for grants without one (injected for determinism in tests). */
  newLeaseId?: () => bigint;
}

type Obj = Record<string, unknown>;

/** HTTP status for a gRPC code, as etcd 3.4's gateway (grpc-gateway v1) maps them. */
export function httpStatusFor(code: number): number {
  switch (code) {
    case GrpcCode.InvalidArgument:
    case GrpcCode.OutOfRange:
      return 400;
    case GrpcCode.Unauthenticated:
      return 401;
    case GrpcCode.PermissionDenied:
      return 403;
    case GrpcCode.NotFound:
      return 404;
    case GrpcCode.Canceled:
      return 408;
    case GrpcCode.AlreadyExists:
    case GrpcCode.Aborted:
      return 409;
    case GrpcCode.FailedPrecondition:
      return 412;
    case GrpcCode.ResourceExhausted:
      return 429;
    case GrpcCode.Unimplemented:
      return 501;
    case GrpcCode.Unavailable:
      return 503;
    case GrpcCode.DeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

function errorResponse(e: EtcdError): Response {
  return new Response(JSON.stringify({ error: e.message, message: e.message, code: e.code }), {
    status: httpStatusFor(e.code),
    headers: { "content-type": "application/json" },
  });
}

function json(o: unknown): Response {
  return new Response(JSON.stringify(o), { headers: { "content-type": "application/json" } });
}

function randomLeaseId(): bigint {
  const b = new BigUint64Array(1);
  crypto.getRandomValues(b);
  return (b[0] & 0x7fffffffffffffffn) || 1n;
}

/** Builds the app. */
export function createMetastoreApp(options: MetastoreAppOptions): ServiceApp {
  const cluster = options.cluster;
  const maxRequestBytes = options.maxRequestBytes ?? 1_572_864;
  const minTtl = options.minLeaseTtlS ?? 2;
  const newLeaseId = options.newLeaseId ?? randomLeaseId;
  const maxStreams = options.maxStreams ?? 10_000;
  const watchBufferBytes = options.watchBufferBytes ?? 16 << 20;
  let openStreams = 0;
  /** Takes a stream slot; returns its (idempotent) release, or null when none is free. */
  const takeStreamSlot = (): (() => void) | null => {
    if (openStreams >= maxStreams) return null;
    openStreams++;
    let held = true;
    return () => {
      if (held) openStreams--;
      held = false;
    };
  };
  const tooManyStreams = () =>
    Promise.resolve(errorResponse(
      new EtcdError(
        GrpcCode.Unavailable,
        `etcdserver: too many open streams (limit ${maxStreams})`,
      ),
    ));
  const service = createServiceApp({
    service: "metastore",
    logger: options.logger,
    accessLog: options.accessLog,
    // The hard cap (413 above it); etcd's own limits are checked per request with its errors.
    bodyLimitBytes: maxRequestBytes * 3 + 4096,
    maxInflightRequests: options.maxInflightRequests,
  });
  const { app } = service;
  const sm = cluster.sm;
  const store = sm.store;
  const memberId = String(cluster.memberId);

  const header = (revision = store.revision): Obj =>
    encodeHeader({ clusterId: cluster.clusterId, memberId, revision, raftTerm: cluster.term });

  async function body(c: Context<ServiceEnv>): Promise<Obj> {
    const text = await c.req.text();
    checkRequestSize(text.length);
    if (text.trim() === "") return {};
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw bad((e as Error).message);
    }
    return asObject(v, "request");
  }

  /**
   * etcd measures requests as protobuf messages, where keys and values are raw bytes; here they
   * are base64 in JSON, so the message is about 3/4 of the text. Above the limit: etcd's
   * "request is too large"; above the limit plus gRPC's 512 KiB allowance: gRPC's own error.
   */
  function checkRequestSize(textLength: number): void {
    const size = Math.ceil(textLength * 0.75);
    const grpcMax = maxRequestBytes + 512 * 1024;
    if (size > grpcMax) {
      throw new EtcdError(
        GrpcCode.ResourceExhausted,
        `grpc: received message larger than max (${size} vs. ${grpcMax})`,
      );
    }
    if (size > maxRequestBytes) {
      throw new EtcdError(GrpcCode.InvalidArgument, "etcdserver: request is too large");
    }
  }

  /** Wraps a handler: etcd errors become etcd error responses. */
  const handle =
    (fn: (c: Context<ServiceEnv>) => Promise<Response>) => async (c: Context<ServiceEnv>) => {
      try {
        return await fn(c);
      } catch (e) {
        if (e instanceof EtcdError) return errorResponse(e);
        throw e;
      }
    };

  const routes: [string, (c: Context<ServiceEnv>) => Promise<Response>][] = [
    ["/kv/range", async (c) => {
      const req = decodeRange(await body(c));
      if (!req.serializable) await cluster.readBarrier();
      const r = store.range(req);
      return json(encodeRangeBody(r, header()));
    }],
    ["/kv/put", async (c) => {
      const req = decodePut(await body(c));
      const res = (await cluster.propose({ op: "put", req })) as Extract<
        CommandResult,
        { put: unknown }
      >;
      const o: Obj = { header: header(res.put.revision) };
      if (res.put.prevKv) o.prev_kv = encodeKv(res.put.prevKv);
      return json(o);
    }],
    ["/kv/deleterange", async (c) => {
      const req = decodeDeleteRange(await body(c));
      const res = (await cluster.propose({ op: "deleteRange", req })) as Extract<
        CommandResult,
        { deleteRange: unknown }
      >;
      return json(encodeDeleteBody(res.deleteRange, header(res.deleteRange.revision)));
    }],
    ["/kv/txn", async (c) => {
      const req = decodeTxn(await body(c));
      const res = (await cluster.propose({ op: "txn", req })) as Extract<
        CommandResult,
        { txn: unknown }
      >;
      return json(encodeTxnBody(res.txn, header(res.txn.revision)));
    }],
    ["/kv/compaction", async (c) => {
      const o = await body(c);
      const revision = intField(o, "revision");
      const res = (await cluster.propose({ op: "compact", revision })) as Extract<
        CommandResult,
        { compact: unknown }
      >;
      return json({ header: header(res.compact.revision) });
    }],
    ["/lease/grant", async (c) => {
      const o = await body(c);
      let ttl = intField(o, "TTL");
      if (ttl > MAX_LEASE_TTL_S) {
        throw new EtcdError(GrpcCode.OutOfRange, "etcdserver: too large lease TTL");
      }
      if (ttl < minTtl) ttl = minTtl;
      let id = idField(o, "ID");
      if (id === "0") id = newLeaseId().toString();
      if (id.startsWith("-")) throw bad("ID: lease ids are positive");
      const res = (await cluster.propose({ op: "leaseGrant", id, ttl })) as Extract<
        CommandResult,
        { lease: unknown }
      >;
      return json({
        header: header(res.lease.revision),
        ID: res.lease.id,
        TTL: String(res.lease.ttl),
      });
    }],
    ["/lease/revoke", async (c) => {
      const id = idField(await body(c), "ID");
      const res = (await cluster.propose({ op: "leaseRevoke", id })) as Extract<
        CommandResult,
        { lease: unknown }
      >;
      return json({ header: header(res.lease.revision) });
    }],
    ["/lease/keepalive", (c) =>
      streamRequests(c, async (o) => {
        const id = idField(o, "ID");
        const res = (await cluster.propose({ op: "leaseKeepAlive", id })) as Extract<
          CommandResult,
          { lease: unknown }
        >;
        const r: Obj = { header: header(res.lease.revision), ID: id };
        if (res.lease.ttl) r.TTL = String(res.lease.ttl);
        return r;
      })],
    ["/lease/timetolive", async (c) => {
      const o = await body(c);
      const id = idField(o, "ID");
      const withKeys = o.keys === true;
      await cluster.readBarrier();
      const lease = store.leases.get(id);
      if (!lease) return json({ header: header(), ID: id, TTL: "-1" });
      const r: Obj = {
        header: header(),
        ID: id,
        TTL: String(sm.lessor.remaining(id)),
        grantedTTL: String(lease.ttl),
      };
      if (withKeys && lease.keys.size > 0) r.keys = [...lease.keys].sort().map((k) => btoa(k));
      return json(r);
    }],
    ["/lease/leases", async (c) => {
      await body(c);
      await cluster.readBarrier();
      const leases = [...store.leases.keys()].map((ID) => ({ ID }));
      const r: Obj = { header: header() };
      if (leases.length > 0) r.leases = leases;
      return json(r);
    }],
    ["/maintenance/status", async (c) => {
      await body(c);
      const st = cluster.node.status();
      const r: Obj = {
        header: header(),
        version: ETCD_API_VERSION,
        dbSize: String(store.sizeBytes),
        leader: String(st.lead),
        raftIndex: String(st.commit),
        raftTerm: String(st.term),
        raftAppliedIndex: String(st.appliedToStateMachine),
        dbSizeInUse: String(store.sizeBytes),
      };
      if (st.lead === 0) r.errors = ["etcdserver: no leader"];
      return json(r);
    }],
    ["/cluster/member/list", async (c) => {
      await body(c);
      return json({ header: memberHeader(), members: cluster.members().map(encodeMember) });
    }],
    ["/cluster/member/add", async (c) => {
      const o = await body(c);
      const urls = o.peerURLs ?? o.peer_urls;
      if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === "string")) {
        throw bad("peerURLs: at least one peer URL is required");
      }
      const isLearner = o.isLearner === true || o.is_learner === true;
      const known = new Set(cluster.members().flatMap((m) => m.peerURLs));
      if ((urls as string[]).some((u) => known.has(u.replace(/\/+$/, "")) || known.has(u))) {
        throw new EtcdError(GrpcCode.FailedPrecondition, "etcdserver: Peer URLs already exists");
      }
      const id = options.newMemberId?.(urls as string[]) ??
        (Number(BigInt.asUintN(52, randomLeaseId())) || 1);
      const members = await cluster.memberAdd(id, urls as string[], isLearner);
      const added = members.find((m) => m.id === id)!;
      return json({
        header: memberHeader(),
        member: encodeMember(added),
        members: members.map(encodeMember),
      });
    }],
    ["/cluster/member/remove", async (c) => {
      const id = Number(idField(await body(c), "ID"));
      const members = await cluster.memberRemove(id);
      return json({ header: memberHeader(), members: members.map(encodeMember) });
    }],
    ["/cluster/member/promote", async (c) => {
      const id = Number(idField(await body(c), "ID"));
      const members = await cluster.memberPromote(id);
      return json({ header: memberHeader(), members: members.map(encodeMember) });
    }],
    ["/watch", (c) => watchStream(c)],
  ];

  function memberHeader(): Obj {
    const h = header();
    delete h.revision;
    return h;
  }

  for (const prefix of ["/v3", "/v3beta"]) {
    for (const [path, fn] of routes) {
      app.post(prefix + path, handle(fn));
      app.on(
        ["GET", "PUT", "DELETE", "PATCH"],
        prefix + path,
        () =>
          new Response("Method Not Allowed\n", {
            status: 405,
            headers: { "content-type": "text/plain; charset=utf-8" },
          }),
      );
    }
  }

  /** Streaming endpoint: each JSON object in the request body gets one `{"result": ...}` line. */
  function streamRequests(
    c: Context<ServiceEnv>,
    each: (o: Obj) => Promise<Obj>,
  ): Promise<Response> {
    const release = takeStreamSlot();
    if (release === null) return tooManyStreams();
    const reqBody = c.req.raw.body;
    const te = new TextEncoder();
    const stream = new ReadableStream<Uint8Array>({
      cancel: release,
      async start(ctrl) {
        const splitter = new JsonObjectSplitter(maxRequestBytes);
        try {
          if (reqBody) {
            for await (const chunk of reqBody.pipeThrough(new TextDecoderStream())) {
              for (const text of splitter.push(chunk)) {
                const r = await each(asObject(JSON.parse(text), "request"));
                ctrl.enqueue(te.encode(JSON.stringify({ result: r }) + "\n"));
              }
            }
          }
        } catch (e) {
          const err = e instanceof EtcdError ? e : bad((e as Error).message);
          ctrl.enqueue(
            te.encode(
              JSON.stringify({
                error: {
                  grpc_code: err.code,
                  http_code: httpStatusFor(err.code),
                  message: err.message,
                },
              }) + "\n",
            ),
          );
        }
        release();
        ctrl.close();
      },
    });
    return Promise.resolve(
      new Response(stream, { headers: { "content-type": "application/json" } }),
    );
  }

  function watchStream(c: Context<ServiceEnv>): Promise<Response> {
    const release = takeStreamSlot();
    if (release === null) return tooManyStreams();
    const reqBody = c.req.raw.body;
    const te = new TextEncoder();
    let ctrlRef: ReadableStreamDefaultController<Uint8Array> | null = null;
    let closed = false;
    let overflowed = false;
    const finish = () => {
      if (closed) return;
      closed = true;
      release();
      ws.close();
    };
    const emit = (r: Obj) => ctrlRef!.enqueue(te.encode(JSON.stringify({ result: r }) + "\n"));
    const send = (m: WatchMessage) => {
      if (closed || !ctrlRef) return;
      const r: Obj = { header: header(m.revision) };
      if (m.kind === "canceled" || m.kind === "created") {
        delete r.header;
        r.header = m.revision ? header(m.revision) : memberHeader();
      }
      if (m.watchId !== 0) r.watch_id = String(m.watchId);
      if (m.kind === "created") r.created = true;
      if (m.kind === "canceled") {
        r.canceled = true;
        if (m.compactRevision) r.compact_revision = String(m.compactRevision);
        if (m.reason) r.cancel_reason = m.reason;
      }
      if (m.kind !== "events") emit(r);
      else {
        const events = m.events.map((e) => encodeEvent(e, m.prevKv));
        if (!m.fragment) emit({ ...r, events });
        else {
          // Fragments under the request size limit (at least one event each); every fragment
          // but the last says `fragment: true`, so the client joins them.
          let part: Obj[] = [];
          let size = 0;
          for (const e of events) {
            const n = JSON.stringify(e).length + 1;
            if (part.length > 0 && size + n > maxRequestBytes) {
              emit({ ...r, events: part, fragment: true });
              part = [];
              size = 0;
            }
            part.push(e);
            size += n;
          }
          emit({ ...r, events: part });
        }
      }
      // A client that does not read: bound what is buffered for it. Its watchers are canceled
      // with a reason (those messages still go out) and the stream ends.
      if (!overflowed && (ctrlRef.desiredSize ?? 0) < 0) {
        overflowed = true;
        ws.cancelAll(
          `etcdserver: watch stream too slow: more than ${watchBufferBytes} bytes unread; ` +
            "watch again from the next revision",
        );
        finish();
        ctrlRef.close();
      }
    };
    const ws = cluster.watches.open(send);
    const stream = new ReadableStream<Uint8Array>({
      async start(ctrl) {
        ctrlRef = ctrl;
        const splitter = new JsonObjectSplitter(maxRequestBytes);
        try {
          if (reqBody) {
            for await (const chunk of reqBody.pipeThrough(new TextDecoderStream())) {
              for (const text of splitter.push(chunk)) {
                handleWatchRequest(ws, asObject(JSON.parse(text), "watch request"));
              }
            }
          }
        } catch (e) {
          if (closed) return;
          const err = e instanceof EtcdError ? e : bad((e as Error).message);
          ctrl.enqueue(
            te.encode(
              JSON.stringify({
                error: { grpc_code: err.code, http_code: 400, message: err.message },
              }) + "\n",
            ),
          );
          finish();
          ctrl.close();
        }
        // The request body ended: keep streaming events until the client goes away.
      },
      cancel: finish,
    }, { highWaterMark: watchBufferBytes, size: (chunk) => chunk.byteLength });
    return Promise.resolve(
      new Response(stream, { headers: { "content-type": "application/json" } }),
    );
  }

  function handleWatchRequest(ws: ReturnType<MetaCluster["watches"]["open"]>, o: Obj): void {
    const create = o.create_request ?? o.createRequest;
    if (create !== undefined) {
      const r = asObject(create, "create_request");
      const range = decodeRange({ key: r.key, range_end: r.range_end ?? r.rangeEnd });
      const filters = Array.isArray(r.filters) ? r.filters : [];
      const spec: WatchSpec = {
        key: range.key,
        rangeEnd: range.rangeEnd,
        startRevision: intField(r, "start_revision"),
        prevKv: r.prev_kv === true || r.prevKv === true,
        noPut: filters.includes("NOPUT") || filters.includes(0),
        noDelete: filters.includes("NODELETE") || filters.includes(1),
        progressNotify: r.progress_notify === true || r.progressNotify === true,
        fragment: r.fragment === true,
        watchId: intField(r, "watch_id"),
      };
      ws.create(spec);
      return;
    }
    const cancel = o.cancel_request ?? o.cancelRequest;
    if (cancel !== undefined) {
      ws.cancel(intField(asObject(cancel, "cancel_request"), "watch_id"));
      return;
    }
    if ((o.progress_request ?? o.progressRequest) !== undefined) {
      ws.progress();
      return;
    }
    throw bad("watch request: one of create_request, cancel_request, progress_request");
  }

  // -------------------------------------------------------------------------------------------
  // UTF-8 convenience API: /api/kv/<key> (GET, PUT body = value, DELETE); GET /api/kv?prefix=

  const utf8 = new TextEncoder();
  const toBin = (s: string) => {
    const b = utf8.encode(s);
    let out = "";
    for (let i = 0; i < b.length; i += 8192) {
      out += String.fromCharCode(...b.subarray(i, i + 8192));
    }
    return out;
  };
  const fromBin = (s: string) =>
    new TextDecoder().decode(Uint8Array.from(s, (ch) => ch.charCodeAt(0)));
  const plainKv = (
    kv: {
      key: string;
      value: string;
      createRevision: number;
      modRevision: number;
      version: number;
      lease: string;
    },
  ) => ({
    key: fromBin(kv.key),
    value: fromBin(kv.value),
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  });

  app.get(
    "/api/kv",
    handle(async (c) => {
      const prefix = toBin(c.req.query("prefix") ?? "");
      const limit = Number(c.req.query("limit") ?? "0");
      if (!Number.isSafeInteger(limit) || limit < 0) {
        throw bad("limit: expected a non-negative integer");
      }
      await cluster.readBarrier();
      const end = prefix === "" ? "\0" : prefixEnd(prefix);
      const r = store.range({ key: prefix === "" ? "\0" : prefix, rangeEnd: end, limit });
      return json({ revision: r.revision, count: r.count, more: r.more, kvs: r.kvs.map(plainKv) });
    }),
  );
  app.get(
    "/api/kv/:key{.+}",
    handle(async (c) => {
      const key = toBin(c.req.param("key") ?? "");
      await cluster.readBarrier();
      const r = store.range({ key });
      if (r.kvs.length === 0) throw new EtcdError(GrpcCode.NotFound, "key not found");
      return json({ revision: r.revision, ...plainKv(r.kvs[0]) });
    }),
  );
  app.put(
    "/api/kv/:key{.+}",
    handle(async (c) => {
      const key = toBin(c.req.param("key") ?? "");
      const value = await c.req.text();
      if (value.length > maxRequestBytes) {
        throw new EtcdError(GrpcCode.InvalidArgument, "etcdserver: request is too large");
      }
      const res = (await cluster.propose({
        op: "put",
        req: { key, value: toBin(value), prevKv: true },
      })) as Extract<
        CommandResult,
        { put: unknown }
      >;
      return json({
        revision: res.put.revision,
        prev: res.put.prevKv ? plainKv(res.put.prevKv) : null,
      });
    }),
  );
  app.delete(
    "/api/kv/:key{.+}",
    handle(async (c) => {
      const key = toBin(c.req.param("key") ?? "");
      const res = (await cluster.propose({ op: "deleteRange", req: { key } })) as Extract<
        CommandResult,
        { deleteRange: unknown }
      >;
      return json({ revision: res.deleteRange.revision, deleted: res.deleteRange.deleted });
    }),
  );

  return service;
}

function encodeMember(m: MemberInfo): Obj {
  const o: Obj = { ID: String(m.id) };
  if (m.name) o.name = m.name;
  if (m.peerURLs.length > 0) o.peerURLs = m.peerURLs;
  if (m.clientURLs.length > 0) o.clientURLs = m.clientURLs;
  if (m.isLearner) o.isLearner = true;
  return o;
}

/** The smallest key greater than every key with `prefix` (etcd's prefix range end). */
export function prefixEnd(prefix: string): string {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const c = prefix.charCodeAt(i);
    if (c < 0xff) return prefix.slice(0, i) + String.fromCharCode(c + 1);
  }
  return "\0";
}
