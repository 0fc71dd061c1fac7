import assert from "node:assert/strict";
import { createLogger } from "@deno-stores/shared/http";
import { bootstrapPersistence, LocalNetwork, MemoryPersistence } from "@deno-stores/shared/raft";
import { Prng } from "@deno-stores/shared/sim";
import { createMetastoreApp, type MetastoreAppOptions, prefixEnd } from "./app.ts";
import { MetaCluster } from "./server/cluster.ts";

const b64 = (s: string) => btoa(s);
const quietLogger = createLogger({
  service: "metastore-test",
  level: "off",
  sink: () => {},
  now: () => 0,
});

async function startOne(
  now?: () => number,
  extra: {
    app?: Partial<MetastoreAppOptions>;
    cluster?: Partial<ConstructorParameters<typeof MetaCluster>[0]>;
  } = {},
) {
  const persistence = new MemoryPersistence();
  await bootstrapPersistence(persistence, [1]);
  const cluster = new MetaCluster({
    memberId: 1,
    clusterId: "42",
    persistence,
    transport: new LocalNetwork().transport(1),
    rand: new Prng(1),
    tickMs: 5,
    members: [{
      id: 1,
      name: "m1",
      peerURLs: ["http://127.0.0.1:1"],
      clientURLs: [],
      isLearner: false,
    }],
    leaseCheckMs: 20,
    now,
    ...extra.cluster,
  });
  cluster.start();
  while (!cluster.node.isLeader) await new Promise((r) => setTimeout(r, 5));
  let nextLease = 100n;
  const service = createMetastoreApp({
    cluster,
    logger: quietLogger,
    accessLog: false,
    newLeaseId: () => nextLease++,
    ...extra.app,
  });
  return { cluster, service };
}

type Service = Awaited<ReturnType<typeof startOne>>["service"];

/** A watch stream on the in-process app: send requests, read `result`s one by one. */
async function openWatch(service: Service) {
  const body = new TransformStream<Uint8Array, Uint8Array>();
  const writer = body.writable.getWriter();
  const res = await service.request(
    "/v3/watch",
    { method: "POST", body: body.readable, duplex: "half" } as RequestInit,
  );
  const reader = res.ok && res.body
    ? res.body.pipeThrough(new TextDecoderStream()).getReader()
    : null;
  let buf = "";
  const te = new TextEncoder();
  return {
    res,
    send: (o: unknown) => writer.write(te.encode(JSON.stringify(o))),
    /** The next result, or null when the stream ended. */
    async next() {
      while (!buf.includes("\n")) {
        const { value, done } = await reader!.read();
        if (done) return null;
        buf += value;
      }
      const i = buf.indexOf("\n");
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      return JSON.parse(line).result;
    },
    async close() {
      await writer.close().catch(() => {});
      await reader?.cancel();
    },
  };
}

async function call(
  service: { request: (p: string, i?: RequestInit) => Promise<Response> },
  path: string,
  body: unknown,
) {
  const res = await service.request(path, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

Deno.test("metastore app: kv, txn and compaction follow etcd's encoding and revisions", async () => {
  const { cluster, service } = await startOne();
  try {
    let r = await call(service, "/v3/kv/range", { key: b64("foo") });
    assert.deepEqual(r.body, {
      header: { cluster_id: "42", member_id: "1", revision: "1", raft_term: "2" },
    });
    r = await call(service, "/v3/kv/put", { key: b64("foo"), value: b64("bar") });
    assert.equal(r.body.header.revision, "2");
    r = await call(service, "/v3beta/kv/put", { key: b64("foo"), value: b64("baz"), prevKv: true });
    assert.deepEqual(r.body.prev_kv, {
      key: b64("foo"),
      create_revision: "2",
      mod_revision: "2",
      version: "1",
      value: b64("bar"),
    });
    r = await call(service, "/v3/kv/range", {
      key: b64("\0"),
      range_end: b64("\0"),
      count_only: true,
    });
    assert.equal(r.body.count, "1");
    assert.equal(r.body.kvs, undefined);
    r = await call(service, "/v3/kv/txn", {
      compare: [{ key: b64("foo"), target: "VALUE", result: "EQUAL", value: b64("baz") }],
      success: [{ request_put: { key: b64("a"), value: b64("1") } }, {
        requestRange: { key: b64("a") },
      }],
    });
    assert.equal(r.body.succeeded, true);
    assert.equal(r.body.header.revision, "4");
    assert.deepEqual(r.body.responses[0], { response_put: { header: { revision: "4" } } });
    assert.equal(r.body.responses[1].response_range.kvs[0].value, b64("1"));
    r = await call(service, "/v3/kv/deleterange", { key: b64("a"), prev_kv: true });
    assert.equal(r.body.deleted, "1");
    assert.equal(r.body.prev_kvs[0].key, b64("a"));
    r = await call(service, "/v3/kv/compaction", { revision: "3" });
    assert.equal(r.status, 200);
    r = await call(service, "/v3/kv/range", { key: b64("foo"), revision: 2 });
    assert.deepEqual([r.status, r.body.code], [400, 11]);
    assert.equal(r.body.error, "etcdserver: mvcc: required revision has been compacted");
    r = await call(service, "/v3/kv/txn", {
      success: [{ request_put: { key: b64("x") } }, { request_put: { key: b64("x") } }],
    });
    assert.deepEqual([r.status, r.body.code, r.body.message], [
      400,
      3,
      "etcdserver: duplicate key given in txn request",
    ]);
  } finally {
    await cluster.close();
  }
});

Deno.test("metastore app: hostile and malformed requests get etcd errors, never crash", async () => {
  const { cluster, service } = await startOne();
  try {
    const cases: [string, unknown, number, number][] = [
      ["/v3/kv/range", "garbage", 400, 3],
      ["/v3/kv/range", "[1,2]", 400, 3],
      ["/v3/kv/range", { key: "%%%not-base64" }, 400, 3],
      ["/v3/kv/range", { key: b64("a"), limit: "ten" }, 400, 3],
      ["/v3/kv/range", { key: b64("a"), revision: 1e300 }, 400, 3],
      ["/v3/kv/range", { key: b64("a"), sort_order: "SIDEWAYS" }, 400, 3],
      ["/v3/kv/range", { key: b64("a"), revision: 99 }, 400, 11],
      ["/v3/kv/put", { value: b64("v") }, 400, 3],
      ["/v3/kv/put", { key: b64("k"), lease: "12345" }, 404, 5],
      ["/v3/kv/put", { key: b64("k"), lease: "99999999999999999999999" }, 400, 3],
      ["/v3/kv/put", { key: b64("k"), ignore_value: true }, 400, 3],
      ["/v3/kv/txn", { success: [{ nothing: {} }] }, 400, 3],
      ["/v3/kv/txn", { compare: "x" }, 400, 3],
      ["/v3/lease/revoke", { ID: 7 }, 404, 5],
      ["/v3/lease/grant", { TTL: 9e9 + 1 }, 400, 11],
      ["/v3/kv/put", { key: b64("k"), value: "A".repeat(2_200_000) }, 400, 3],
      ["/v3/kv/put", { key: b64("k"), value: "A".repeat(3_000_000) }, 429, 8],
    ];
    for (const [path, body, status, code] of cases) {
      const r = await call(service, path, body);
      assert.equal(
        r.status,
        status,
        `${path} ${JSON.stringify(body).slice(0, 80)} → ${JSON.stringify(r.body)}`,
      );
      assert.equal(r.body.code, code);
      assert.equal(typeof r.body.message, "string");
    }
    // Deeply nested txns are refused, not a stack overflow.
    let txn: unknown = { success: [] };
    for (let i = 0; i < 100; i++) txn = { success: [{ request_txn: txn }] };
    assert.equal((await call(service, "/v3/kv/txn", txn)).status, 400);
    const get = await service.request("/v3/kv/range");
    assert.equal(get.status, 405);
    await get.body?.cancel();
    // Nothing above changed the store.
    assert.equal(cluster.sm.store.revision, 1);
  } finally {
    await cluster.close();
  }
});

Deno.test("metastore app: leases attach keys, keepalive streams, revoke and expiry delete them", async () => {
  let t = 0;
  const { cluster, service } = await startOne(() => t);
  try {
    let r = await call(service, "/v3/lease/grant", { TTL: 1 });
    assert.deepEqual([r.body.ID, r.body.TTL], ["100", "2"], "TTL raised to the minimum");
    r = await call(service, "/v3/lease/grant", { TTL: 60, ID: "9223372036854775807" });
    assert.equal(r.body.ID, "9223372036854775807", "int64 ids are exact");
    await call(service, "/v3/kv/put", { key: b64("a"), value: b64("1"), lease: "100" });
    await call(service, "/v3/kv/put", { key: b64("b"), value: b64("2"), lease: "100" });
    await call(service, "/v3/kv/put", {
      key: b64("c"),
      value: b64("3"),
      lease: "9223372036854775807",
    });
    r = await call(service, "/v3/lease/timetolive", { ID: "100", keys: true });
    assert.deepEqual(r.body.keys, [b64("a"), b64("b")]);
    assert.equal(r.body.grantedTTL, "2");
    const ka = await service.request("/v3/lease/keepalive", {
      method: "POST",
      body: '{"ID":"100"}\n{"ID":"555"}',
    });
    const lines = (await ka.text()).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines[0].result.TTL, "2");
    assert.equal(lines[1].result.TTL, undefined, "unknown lease: TTL 0 (omitted)");
    r = await call(service, "/v3/lease/leases", {});
    assert.deepEqual(r.body.leases.map((l: { ID: string }) => l.ID).sort(), [
      "100",
      "9223372036854775807",
    ]);
    const rev = Number(cluster.sm.store.revision);
    r = await call(service, "/v3/lease/revoke", { ID: "9223372036854775807" });
    assert.equal(r.body.header.revision, String(rev + 1));
    // Expiry: move the clock past the TTL; the leader revokes lease 100 and both keys go at once.
    t = 10_000;
    const end = performance.now() + 5000;
    while (cluster.sm.store.leases.has("100") && performance.now() < end) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(cluster.sm.store.leases.has("100"), false);
    r = await call(service, "/v3/kv/range", { key: b64("\0"), range_end: b64("\0") });
    assert.equal(r.body.kvs, undefined);
    assert.equal(r.body.header.revision, String(rev + 2));
  } finally {
    await cluster.close();
  }
});

Deno.test("metastore app: watch replays history, streams live events per txn, cancels on compaction", async () => {
  const { cluster, service } = await startOne();
  try {
    await call(service, "/v3/kv/put", { key: b64("w1"), value: b64("a") }); // 2
    await call(service, "/v3/kv/put", { key: b64("w2"), value: b64("b") }); // 3
    const body = new TransformStream<Uint8Array, Uint8Array>();
    const writer = body.writable.getWriter();
    const res = await service.request(
      "/v3/watch",
      { method: "POST", body: body.readable, duplex: "half" } as RequestInit,
    );
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    const next = async () => {
      while (!buf.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error("stream ended");
        buf += value;
      }
      const i = buf.indexOf("\n");
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      return JSON.parse(line).result;
    };
    const te = new TextEncoder();
    await writer.write(
      te.encode(
        JSON.stringify({
          create_request: {
            key: b64("w"),
            range_end: b64(prefixEnd("w")),
            start_revision: 2,
            prev_kv: true,
          },
        }),
      ),
    );
    assert.equal((await next()).created, true);
    const hist = await next();
    assert.deepEqual(hist.events.map((e: { kv: { key: string } }) => atob(e.kv.key)), ["w1", "w2"]);
    await call(service, "/v3/kv/txn", {
      success: [{ request_put: { key: b64("w1"), value: b64("c") } }, {
        request_delete_range: { key: b64("w2") },
      }],
    });
    const live = await next();
    assert.equal(live.header.revision, "4");
    assert.deepEqual(
      live.events.map((e: { type?: string }) => e.type ?? "PUT"),
      ["PUT", "DELETE"],
      "one response per txn",
    );
    assert.equal(atob(live.events[0].prev_kv.value), "a");
    await writer.write(te.encode(JSON.stringify({ create_request: { key: b64("other") } })));
    const second = await next();
    assert.deepEqual([second.created, second.watch_id], [true, "1"]);
    await writer.write(te.encode(JSON.stringify({ cancel_request: { watch_id: "1" } })));
    assert.deepEqual([(await next()).canceled, true], [true, true]);
    await call(service, "/v3/kv/compaction", { revision: 4 });
    await writer.write(
      te.encode(JSON.stringify({ create_request: { key: b64("w1"), start_revision: 2 } })),
    );
    assert.equal((await next()).created, true);
    const canceled = await next();
    assert.deepEqual([canceled.canceled, canceled.compact_revision], [true, "4"]);
    await writer.write(te.encode('{"progress_request":{}}'));
    assert.equal((await next()).watch_id, "-1");
    await writer.close();
    await reader.cancel();
    assert.equal(cluster.watches.watcherCount, 0, "closing the stream removes its watchers");
  } finally {
    await cluster.close();
  }
});

Deno.test("metastore app: the UTF-8 API reads and writes plain strings", async () => {
  const { cluster, service } = await startOne();
  try {
    let res = await service.request("/api/kv/config/wörld", { method: "PUT", body: "ünïcode ✓" });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    res = await service.request("/api/kv/config/wörld");
    const got = await res.json();
    assert.deepEqual([got.key, got.value, got.version], ["config/wörld", "ünïcode ✓", 1]);
    res = await service.request("/api/kv?prefix=config/");
    assert.equal((await res.json()).count, 1);
    res = await service.request("/api/kv/missing");
    assert.equal(res.status, 404);
    await res.body?.cancel();
    res = await service.request("/api/kv/config/wörld", { method: "DELETE" });
    assert.equal((await res.json()).deleted, 1);
  } finally {
    await cluster.close();
  }
});

Deno.test("metastore app: progress notifications, fragments, a stream cap and a bound on slow readers", async () => {
  const { cluster, service } = await startOne(undefined, {
    app: { maxRequestBytes: 4096, maxStreams: 2, watchBufferBytes: 64 << 10 },
  });
  try {
    // progress_notify: a watcher that got nothing since the last round hears the revision.
    const a = await openWatch(service);
    await a.send({ create_request: { key: b64("p"), progress_notify: true } });
    await a.send({ create_request: { key: b64("q"), watch_id: 5 } }); // no progress_notify
    assert.equal((await a.next()).created, true);
    assert.equal((await a.next()).watch_id, "5");
    cluster.watches.progressTick(); // the creation counts as activity
    cluster.watches.progressTick();
    const progress = await a.next();
    assert.equal(progress.watch_id, undefined, "watch 0: the id is omitted like any zero");
    assert.equal(progress.events, undefined);
    assert.equal(progress.header.revision, "1");
    await call(service, "/v3/kv/put", { key: b64("p"), value: b64("x") });
    assert.equal((await a.next()).events.length, 1);
    cluster.watches.progressTick(); // had an event: nothing due
    await call(service, "/v3/kv/put", { key: b64("q"), value: b64("y") });
    const onlyQ = await a.next();
    assert.equal(onlyQ.watch_id, "5", "no progress for watch 0 after its event");

    // A third stream is over the cap of two (watch and keepalive streams count).
    const b = await openWatch(service);
    const c = await openWatch(service);
    assert.equal(c.res.status, 503);
    assert.match((await c.res.json()).error, /too many open streams/);

    // fragment: one revision's events above the request limit arrive in pieces (a small
    // deleterange whose DELETE events carry their prev_kv).
    const big = b64("v".repeat(1500));
    for (let i = 0; i < 5; i++) {
      assert.equal(
        (await call(service, "/v3/kv/put", { key: b64(`f/${i}`), value: big })).status,
        200,
      );
    }
    await b.send({
      create_request: {
        key: b64("f/"),
        range_end: b64(prefixEnd("f/")),
        fragment: true,
        prev_kv: true,
      },
    });
    assert.equal((await b.next()).created, true);
    await call(service, "/v3/kv/deleterange", { key: b64("f/"), range_end: b64(prefixEnd("f/")) });
    const parts = [];
    for (;;) {
      const r = await b.next();
      parts.push(r);
      if (!r.fragment) break;
    }
    assert.ok(parts.length > 1, "split");
    assert.deepEqual(
      parts.flatMap((r) => r.events.map((e: { kv: { key: string } }) => atob(e.kv.key))),
      ["f/0", "f/1", "f/2", "f/3", "f/4"],
    );
    for (const r of parts) assert.ok(JSON.stringify(r.events).length <= 4096 + 2200);
    await b.close();

    // A client that stops reading: past 64 KiB unread its watchers are canceled with a reason
    // and the stream ends; nothing else is affected.
    for (let i = 0; i < 60; i++) {
      await call(service, "/v3/kv/put", { key: b64("p"), value: b64("z".repeat(1500)) });
    }
    let last = null;
    for (let r = await a.next(); r !== null; r = await a.next()) last = r;
    assert.equal(last.canceled, true);
    assert.match(last.cancel_reason, /too slow/);
    assert.equal(cluster.watches.watcherCount, 0);
    const again = await openWatch(service);
    assert.equal(again.res.status, 200, "the slow stream no longer counts");
    await again.close();
  } finally {
    await cluster.close();
  }
});

Deno.test("metastore: automatic compaction keeps the configured number of revisions", async () => {
  const { cluster, service } = await startOne(undefined, {
    cluster: { autoCompactionRetention: 5, autoCompactionIntervalMs: 10 },
  });
  try {
    for (let i = 0; i < 20; i++) {
      await call(service, "/v3/kv/put", { key: b64("k"), value: b64(`${i}`) });
    }
    const store = cluster.sm.store;
    while (store.compactRevision < store.revision - 5) await new Promise((r) => setTimeout(r, 10));
    assert.equal(store.compactRevision, 16);
    const old = await call(service, "/v3/kv/range", { key: b64("k"), revision: 10 });
    assert.equal(old.status, 400);
    assert.equal(old.body.code, 11);
  } finally {
    await cluster.close();
  }
});

Deno.test("metastore app: many watchers on one stream each get their events, in revision order", async () => {
  const { cluster, service } = await startOne();
  try {
    const w = await openWatch(service);
    const n = 50;
    for (let i = 0; i < n; i++) await w.send({ create_request: { key: b64(`m/${i}`) } });
    await w.send({ create_request: { key: b64("m/"), range_end: b64(prefixEnd("m/")) } });
    for (let i = 0; i <= n; i++) assert.equal((await w.next()).created, true);
    // Three rounds of writes to every key, interleaved.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < n; i++) {
        await call(service, "/v3/kv/put", { key: b64(`m/${i}`), value: b64(`${round}`) });
      }
    }
    const perWatcher = new Map<string, number[]>();
    for (let got = 0; got < 2 * 3 * n; got++) {
      const r = await w.next();
      const id = r.watch_id ?? "0";
      for (const e of r.events) {
        const revs = perWatcher.get(id) ?? [];
        revs.push(Number(e.kv.mod_revision));
        perWatcher.set(id, revs);
      }
    }
    assert.equal(perWatcher.size, n + 1, "every watcher heard its key");
    for (const [id, revs] of perWatcher) {
      assert.equal(revs.length, id === String(n) ? 3 * n : 3, `watcher ${id}`);
      assert.deepEqual(revs, [...revs].sort((a, b) => a - b), `watcher ${id} in order`);
    }
    await w.close();
  } finally {
    await cluster.close();
  }
});
