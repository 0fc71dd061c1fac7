import assert from "node:assert/strict";
import {
  decodeBatch,
  encodeBatch,
  HttpTransport,
  RAFT_MESSAGES_PATH,
  RAFT_SNAPSHOT_PATH,
} from "./http_transport.ts";
import type { TransportHandler } from "./transport.ts";
import { CodecError, encodeMessage } from "./codec.ts";
import {
  ConfChangeType,
  type Message,
  MessageType,
  newMessage,
  ProposalDroppedError,
  type Snapshot,
} from "./types.ts";
import { RaftNode, type StateMachine } from "./node.ts";
import { bootstrapPersistence, MemoryPersistence } from "./persistence.ts";
import { Prng } from "../sim/prng.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

class Recorder implements TransportHandler {
  received: Message[] = [];
  unreachables: number[] = [];
  snapshots: [number, boolean][] = [];
  receive(m: Message): void {
    this.received.push(m);
  }
  unreachable(peer: number): void {
    this.unreachables.push(peer);
  }
  snapshotStatus(peer: number, ok: boolean): void {
    this.snapshots.push([peer, ok]);
  }
}

function app(to: number, n = 1): Message {
  return newMessage({
    type: MessageType.MsgApp,
    to,
    from: 1,
    term: 3,
    index: n,
    entries: [{ term: 3, index: n + 1, type: 0, data: enc.encode(`entry ${n}`) }],
  });
}

function snap(to: number, size: number): Message {
  const s: Snapshot = {
    data: new Uint8Array(size).fill(7),
    metadata: { index: 10, term: 2, confState: { voters: [1, 2], learners: [] } },
  };
  return newMessage({ type: MessageType.MsgSnap, to, from: 1, term: 2, snapshot: s });
}

function post(
  path: string,
  body: Uint8Array | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
) {
  return new Request(`http://node${path}`, {
    method: "POST",
    body: body as BodyInit,
    headers: { "x-raft-cluster-id": "c1", ...headers },
  });
}

async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("encodeBatch/decodeBatch round-trip and reject broken framing", () => {
  const msgs = [app(2, 1), app(2, 2), newMessage({ type: MessageType.MsgHeartbeat, to: 2 })];
  const body = encodeBatch(msgs.map(encodeMessage));
  const back = decodeBatch(body);
  assert.equal(back.length, 3);
  assert.deepEqual(back[1].entries[0].data, enc.encode("entry 2"));
  assert.deepEqual(decodeBatch(new Uint8Array(0)), []);
  assert.throws(() => decodeBatch(body.subarray(0, body.length - 1)), CodecError);
  // A frame length pointing far beyond the body.
  assert.throws(() => decodeBatch(new Uint8Array([0xff, 0xff, 0xff, 0x7f, 1])), CodecError);
  // A frame holding garbage.
  assert.throws(() => decodeBatch(new Uint8Array([3, 1, 99, 0])), CodecError);
  // Random garbage never escapes as anything but CodecError.
  const r = new Prng(42);
  for (let i = 0; i < 2000; i++) {
    const junk = new Uint8Array(r.nextInt(40));
    for (let j = 0; j < junk.length; j++) junk[j] = r.nextInt(256);
    try {
      decodeBatch(junk);
    } catch (e) {
      assert.ok(e instanceof CodecError, `unexpected ${e}`);
    }
  }
});

Deno.test("HttpTransport.handle accepts a valid batch and refuses hostile requests", async () => {
  const t = new HttpTransport({ id: 2, clusterId: "c1", maxRequestBytes: 4096 });
  const rec = new Recorder();
  const good = encodeBatch([encodeMessage(app(2, 1)), encodeMessage(app(2, 2))]);
  // Not started yet: 503.
  assert.equal((await t.handle(post(RAFT_MESSAGES_PATH, good))).status, 503);
  t.start(rec);
  const ok = await t.handle(post(RAFT_MESSAGES_PATH, good));
  assert.equal(ok.status, 204);
  assert.equal(rec.received.length, 2);

  const cases: [Request, number, RegExp][] = [
    [new Request(`http://node${RAFT_MESSAGES_PATH}`), 405, /GET not allowed/],
    [post(RAFT_MESSAGES_PATH, good, { "x-raft-cluster-id": "other" }), 412, /cluster id/],
    [post(RAFT_MESSAGES_PATH, good, { "x-raft-to": "3" }), 400, /node 3/],
    [post(RAFT_MESSAGES_PATH, new Uint8Array([5, 1, 2])), 400, /invalid/],
    [post(RAFT_MESSAGES_PATH, encodeBatch([encodeMessage(app(9))])), 400, /node 9/],
    [post(RAFT_MESSAGES_PATH, encodeBatch([encodeMessage(snap(2, 10))])), 400, /snapshot/],
    [post(RAFT_SNAPSHOT_PATH, encodeMessage(app(2))), 400, /non-snapshot/],
    [post(RAFT_MESSAGES_PATH, new Uint8Array(5000)), 413, /exceeds/],
    [post("/raft/other", good), 404, /no raft endpoint/],
  ];
  for (const [req, status, msg] of cases) {
    const res = await t.handle(req);
    assert.equal(res.status, status, `${req.method} ${req.url}`);
    const body = await res.json();
    assert.match(body.message, msg);
    assert.equal(typeof body.error, "string");
  }
  // A streamed body without content-length is cut off at the limit too.
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < 10; i++) c.enqueue(new Uint8Array(1000));
      c.close();
    },
  });
  const res = await t.handle(post(RAFT_MESSAGES_PATH, stream));
  assert.equal(res.status, 413);
  await res.body?.cancel();
  assert.equal(rec.received.length, 2, "nothing from a refused request reached raft");
  await t.close();
});

for (const stream of [true, false]) {
  Deno.test(`HttpTransport delivers batches and snapshots between two listeners (${stream ? "stream" : "POST"})`, async () => {
    const recs = [new Recorder(), new Recorder()];
    const ts = [1, 2].map((id) =>
      new HttpTransport({ id, clusterId: "c1", maxBatchBytes: 200, stream })
    );
    const servers = ts.map((t) =>
      Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, t.handle)
    );
    ts[0].addPeer(2, `http://127.0.0.1:${servers[1].addr.port}/`);
    ts[1].addPeer(1, `http://127.0.0.1:${servers[0].addr.port}`);
    ts.forEach((t, i) => t.start(recs[i]));
    const msgs = Array.from({ length: 30 }, (_, i) => app(2, i + 1));
    ts[0].send(msgs);
    ts[0].send([snap(2, 1 << 20)]);
    await until(() => recs[1].received.length === 31, "delivery");
    // Order per peer is preserved across batches.
    const apps = recs[1].received.filter((m) => m.type === MessageType.MsgApp);
    assert.deepEqual(apps.map((m) => m.index), msgs.map((m) => m.index));
    await until(() => recs[0].snapshots.length === 1, "snapshot status");
    assert.deepEqual(recs[0].snapshots, [[2, true]]);
    const got = recs[1].received.find((m) => m.type === MessageType.MsgSnap)!;
    assert.equal(got.snapshot!.data.length, 1 << 20);
    assert.ok(ts[0].stats.sentBatches > 1, "split into several batches");
    assert.equal(ts[0].stats.streamsOpened, stream ? 1 : 0);
    assert.equal(ts[1].stats.streamsAccepted, stream ? 1 : 0);
    assert.deepEqual(recs[0].unreachables, []);
    for (const t of ts) await t.close();
    for (const s of servers) await s.shutdown();
  });
}

/** Opens a raw WebSocket to a stream path; resolves with how it ended. */
function rawStream(
  url: string,
  send: (ws: WebSocket) => void,
): Promise<{ opened: boolean; code: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    let opened = false;
    ws.onopen = () => {
      opened = true;
      send(ws);
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => resolve({ opened, code: ev.code });
  });
}

Deno.test("HttpTransport stream path refuses hostile upgrades and closes on bad batches", async () => {
  const t = new HttpTransport({ id: 2, clusterId: "c1" });
  const rec = new Recorder();
  t.start(rec);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, t.handle);
  const base = `127.0.0.1:${server.addr.port}/raft/stream`;
  const good = `ws://${base}?cluster=c1&from=1&to=2`;
  // Plain requests to the stream path.
  for (
    const [init, query, status] of [
      [{ method: "GET" }, "?cluster=c1&to=2", 400], // no upgrade
      [{ method: "POST", body: "x" }, "?cluster=c1&to=2", 405],
    ] as const
  ) {
    const res = await fetch(`http://${base}${query}`, init);
    assert.equal(res.status, status);
    assert.ok((await res.json()).message);
  }
  // Upgrades for another cluster or node never open.
  for (const q of ["?cluster=c2&from=1&to=2", "?cluster=c1&from=1&to=3", "?from=1&to=2"]) {
    const r = await rawStream(`ws://${base}${q}`, () => {});
    assert.equal(r.opened, false, q);
  }
  // Bad batches close the socket with 1008 and nothing reaches Raft.
  const bad: [string, (ws: WebSocket) => void][] = [
    ["text", (ws) => ws.send("hello")],
    ["garbage", (ws) => ws.send(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))],
    ["truncated", (ws) => ws.send(encodeBatch([encodeMessage(app(2))]).subarray(0, 10))],
    ["other addressee", (ws) => ws.send(encodeBatch([encodeMessage(app(3))]))],
    ["snapshot", (ws) => ws.send(encodeBatch([encodeMessage(snap(2, 10))]))],
  ];
  const rnd = new Prng(7);
  for (let i = 0; i < 50; i++) {
    const junk = new Uint8Array(1 + rnd.nextInt(64));
    for (let j = 0; j < junk.length; j++) junk[j] = rnd.nextInt(256);
    junk[0] = 0x80 | junk[0]; // a frame length that runs past the end
    bad.push([`random ${i}`, (ws) => ws.send(junk)]);
  }
  for (const [what, send] of bad) {
    const r = await rawStream(good, send);
    assert.equal(r.opened, true, what);
    assert.equal(r.code, 1008, what);
  }
  assert.equal(rec.received.length, 0);
  // A good batch still goes through.
  const done = rawStream(good, (ws) => ws.send(encodeBatch([encodeMessage(app(2, 9))])));
  await until(() => rec.received.length === 1, "good batch");
  assert.equal(rec.received[0].index, 9);
  await t.close();
  await done;
  await server.shutdown();
});

Deno.test("HttpTransport reports unreachable peers and failed snapshots", async () => {
  // A port with nothing listening.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const t = new HttpTransport({
    id: 1,
    clusterId: "c1",
    peers: [[2, `http://127.0.0.1:${port}`]],
    maxQueueMessages: 5,
  });
  const rec = new Recorder();
  t.start(rec);
  t.send([app(2), app(3)]); // 3 is not a known peer: reported at once
  assert.deepEqual(rec.unreachables, [3]);
  t.send([snap(2, 100)]);
  await until(() => rec.unreachables.length >= 2 && rec.snapshots.length === 1, "reports");
  assert.deepEqual(rec.snapshots, [[2, false]]);
  assert.ok(rec.unreachables.includes(2));
  // While backing off, messages are dropped and reported immediately.
  const before = rec.unreachables.length;
  t.send([app(2)]);
  assert.equal(rec.unreachables.length, before + 1);
  assert.ok(t.stats.droppedMessages >= 2);
  await t.close();
});

Deno.test("HttpTransport: a peer answering errors is reported unreachable", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => Response.json({ error: "cluster_mismatch" }, { status: 412 }),
  );
  const t = new HttpTransport({
    id: 1,
    clusterId: "c1",
    peers: [[2, `http://127.0.0.1:${server.addr.port}`]],
  });
  const rec = new Recorder();
  t.start(rec);
  t.send([app(2)]);
  await until(() => rec.unreachables.length === 1, "unreachable report");
  assert.equal(t.stats.failedRequests, 1);
  await t.close();
  await server.shutdown();
});

class Counter implements StateMachine<number> {
  values: string[] = [];
  apply(data: Uint8Array): number {
    this.values.push(dec.decode(data));
    return this.values.length;
  }
  restore(s: Snapshot): void {
    this.values = JSON.parse(dec.decode(s.data));
  }
  snapshot(): Uint8Array {
    return enc.encode(JSON.stringify(this.values));
  }
}

Deno.test("RaftNode over HttpTransport: 3 nodes replicate, and a joiner catches up by snapshot", async () => {
  const ids = [1, 2, 3, 4];
  const transports = new Map<number, HttpTransport>();
  const servers = new Map<number, Deno.HttpServer<Deno.NetAddr>>();
  for (const id of ids) {
    const t = new HttpTransport({ id, clusterId: "test" });
    transports.set(id, t);
    servers.set(id, Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, t.handle));
  }
  for (const [id, t] of transports) {
    for (const [peer, s] of servers) {
      if (peer !== id) t.addPeer(peer, `http://127.0.0.1:${s.addr.port}`);
    }
  }
  const rand = new Prng(7);
  const nodes = new Map<number, { node: RaftNode<number>; sm: Counter }>();
  const startNode = async (id: number, voters: number[] | null) => {
    const persistence = new MemoryPersistence();
    if (voters) await bootstrapPersistence(persistence, voters);
    const sm = new Counter();
    const node = new RaftNode<number>({
      id,
      persistence,
      transport: transports.get(id)!,
      stateMachine: sm,
      rand: rand.fork(),
      tickMs: 20,
      snapshotEntries: 50,
    });
    node.start();
    nodes.set(id, { node, sm });
  };
  try {
    for (const id of [1, 2, 3]) await startNode(id, [1, 2, 3]);
    // Every node knows the same leader (a follower that has not heard from it yet drops proposals).
    await until(() => {
      const ls = [...nodes.values()].map((n) => n.node.leader);
      return ls[0] !== 0 && ls.every((l) => l === ls[0]);
    }, "a leader every node knows");
    const leader = [...nodes.values()].find((n) => n.node.isLeader)!;
    const follower = [...nodes.values()].find((n) => !n.node.isLeader)!;
    // A loaded machine can delay heartbeats into an election: a proposal dropped for want of a
    // leader was not appended, and is proposed again, as a client would.
    const propose = async (data: Uint8Array) => {
      for (let attempt = 0;; attempt++) {
        try {
          return await follower.node.propose(data);
        } catch (e) {
          if (!(e instanceof ProposalDroppedError) || attempt >= 50) throw e;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    };
    for (let i = 0; i < 200; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, j) => propose(enc.encode(`v${i + j}`))));
    }
    await follower.node.readIndex();
    assert.equal(follower.sm.values.length, 200);
    assert.ok(leader.node.status().snapshotIndex > 0);
    // Whoever leads now adds node 4 (the first leader may have lost an election meanwhile).
    await until(() => [...nodes.values()].some((n) => n.node.isLeader), "a leader");
    await [...nodes.values()].find((n) => n.node.isLeader)!.node.proposeConfChange({
      type: ConfChangeType.AddNode,
      nodeId: 4,
      context: new Uint8Array(),
    });
    await startNode(4, null);
    const joiner = nodes.get(4)!;
    await until(() => joiner.sm.values.length === 200, "the joiner to catch up");
    const snapshotsSent = [...transports.values()].reduce((n, t) => n + t.stats.snapshotsSent, 0);
    assert.ok(snapshotsSent >= 1, "caught up by snapshot");
    assert.deepEqual(joiner.sm.values, follower.sm.values);
  } finally {
    for (const { node } of nodes.values()) await node.stop();
    for (const t of transports.values()) await t.close();
    for (const s of servers.values()) await s.shutdown();
  }
});

Deno.test("HttpTransport.cut drops traffic both ways until heal", async () => {
  const recs = [new Recorder(), new Recorder()];
  const ts = [1, 2].map((id) => new HttpTransport({ id, clusterId: "c1" }));
  const servers = ts.map((t) =>
    Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, t.handle)
  );
  ts[0].addPeer(2, `http://127.0.0.1:${servers[1].addr.port}`);
  ts[1].addPeer(1, `http://127.0.0.1:${servers[0].addr.port}`);
  ts.forEach((t, i) => t.start(recs[i]));
  ts[0].cut("all");
  ts[0].send([app(2, 1)]);
  assert.deepEqual(recs[0].unreachables, [2], "outgoing: dropped and reported");
  const toOne = newMessage({ type: MessageType.MsgHeartbeat, to: 1, from: 2, term: 3 });
  ts[1].send([toOne]);
  ts[1].send([{ ...toOne, commit: 1 }]);
  // The second transport's messages reach node 1's listener but are dropped there.
  await until(() => ts[1].stats.sentMessages === 2, "sent");
  await until(() => ts[0].stats.receivedMessages === 2, "received");
  assert.equal(recs[0].received.length, 0, "incoming: dropped");
  ts[0].heal();
  ts[0].send([app(2, 2)]);
  ts[1].send([{ ...toOne, commit: 2 }]);
  await until(() => recs[1].received.length === 1 && recs[0].received.length === 1, "after heal");
  assert.equal(recs[1].received[0].index, 2);
  assert.equal(recs[0].received[0].commit, 2);
  for (const t of ts) await t.close();
  for (const s of servers) await s.shutdown();
});
