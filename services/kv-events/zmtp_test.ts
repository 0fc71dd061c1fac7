import assert from "node:assert/strict";
import { parseTcpEndpoint, ZmqDealer, ZmqSubscriber, ZmtpError } from "./zmtp.ts";
import { ZmqSources } from "./zmq_source.ts";
import { Ingest, seqFrame } from "./ingest.ts";
import { CacheMap } from "./store.ts";
import { freePort } from "../../bench/lib/process.ts";
import { encodeMsgpack } from "./msgpack.ts";

const PY = "/usr/bin/python3";
const hasZmq = await new Deno.Command(PY, {
  args: ["-c", "import zmq"],
  stdout: "null",
  stderr: "null",
}).output().then((o) => o.success, () => false);

const te = new TextEncoder();
const td = new TextDecoder();

/** Fails the test if `cond` is still false after `ms` (a guard against hangs, not a timing test). */
async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A `/usr/bin/python3 -u -c script args...` child: stdout read by lines, stdin written by lines. */
class Py {
  readonly proc: Deno.ChildProcess;
  readonly #out: ReadableStreamDefaultReader<string>;
  readonly #in: WritableStreamDefaultWriter<Uint8Array>;
  #buf = "";

  constructor(script: string, args: string[]) {
    this.proc = new Deno.Command(PY, {
      args: ["-u", "-c", script, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#out = this.proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#in = this.proc.stdin.getWriter();
  }

  async line(): Promise<string> {
    while (true) {
      const i = this.#buf.indexOf("\n");
      if (i >= 0) {
        const line = this.#buf.slice(0, i);
        this.#buf = this.#buf.slice(i + 1);
        return line;
      }
      const { value, done } = await this.#out.read();
      if (done) throw new Error(`python exited (stdout so far: ${this.#buf})`);
      this.#buf += value;
    }
  }

  /** Waits for `ready <port>` and returns the port. */
  async ready(): Promise<number> {
    const line = await this.line();
    const m = /^ready (\d+)$/.exec(line);
    assert.ok(m, `unexpected python output: ${line}`);
    return Number(m[1]);
  }

  async send(line: string): Promise<void> {
    await this.#in.write(te.encode(line + "\n"));
  }

  async stop(): Promise<void> {
    try {
      this.proc.kill("SIGKILL");
    } catch {
      // already exited
    }
    try {
      await this.#in.close();
    } catch {
      // broken pipe
    }
    while (!(await this.#out.read()).done) {
      // drain to EOF
    }
    await this.proc.status;
  }
}

/**
 * PUB socket: `mode` bind|connect, `addr`, `n`. Prints `ready <port>`; then, each round, sends
 * `kv@sync` every 10 ms until stdin says `start` (so a late subscription is no problem), then n
 * pairs (`other`, `kv@pod@m`) of [topic, 8-byte BE seq, payload] and `[kv@end, n, ""]`.
 * Payload i: bytes (i + k) & 255, 1 MiB for i == n / 2, else 300 bytes (odd i) or 10 bytes.
 */
const PUB_SCRIPT = `
import sys, zmq, select
mode, addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = zmq.Context()
pub = ctx.socket(zmq.PUB)
pub.setsockopt(zmq.SNDHWM, 0)
pub.setsockopt(zmq.LINGER, 0)
port = 0
if mode == "bind":
    host, p = addr.rsplit(":", 1)
    if p == "0":
        port = pub.bind_to_random_port(host)
    else:
        pub.bind(addr)
        port = int(p)
else:
    pub.connect(addr)
print("ready", port, flush=True)
pattern = bytes(range(256)) * 4098
def payload(i):
    size = 1 << 20 if i == n // 2 else (300 if i % 2 else 10)
    return pattern[i % 256:i % 256 + size]
while True:
    while True:
        pub.send_multipart([b"kv@sync", b""])
        r, _, _ = select.select([sys.stdin], [], [], 0.01)
        if r:
            line = sys.stdin.readline()
            if not line:
                sys.exit(0)
            if line.strip() == "start":
                break
    for i in range(n):
        pub.send_multipart([b"other", i.to_bytes(8, "big"), b"x"])
        pub.send_multipart([b"kv@pod@m", i.to_bytes(8, "big"), payload(i)])
    pub.send_multipart([b"kv@end", n.to_bytes(8, "big"), b""])
`;

/** ROUTER: replies to [id, "", seq] with 3 × [id, "", seq+k, payload] then [id, "", -1, ""]. */
const ROUTER_SCRIPT = `
import sys, zmq
ctx = zmq.Context()
r = ctx.socket(zmq.ROUTER)
r.setsockopt(zmq.LINGER, 0)
port = r.bind_to_random_port("tcp://127.0.0.1")
print("ready", port, flush=True)
while True:
    ident, empty, seq = r.recv_multipart()
    start = int.from_bytes(seq, "big")
    for s in range(start, start + 3):
        r.send_multipart([ident, empty, s.to_bytes(8, "big"), b"payload-%d-" % s + b"x" * 300])
    r.send_multipart([ident, empty, (-1).to_bytes(8, "big", signed=True), b""])
`;

const seqOf = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength).getBigInt64(0);
const seqBytes = (n: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, BigInt(n));
  return b;
};

/** Collects what a PUB_SCRIPT round publishes (copies, as frames are only valid in the call). */
class Round {
  sync = false;
  ended = 0;
  msgs: { topic: string; seq: number; payload: Uint8Array }[] = [];
  onMessage = (frames: Uint8Array[]) => {
    const topic = td.decode(frames[0]);
    if (topic === "kv@sync") this.sync = true;
    else if (topic === "kv@end") this.ended++;
    else {
      assert.equal(frames.length, 3);
      this.msgs.push({ topic, seq: Number(seqOf(frames[1])), payload: frames[2].slice() });
    }
  };

  /** Waits until the subscription is live, starts a round and waits for its end. */
  async run(py: Py): Promise<void> {
    this.sync = false;
    await until(() => this.sync, "kv@sync from the publisher");
    const ended = this.ended;
    await py.send("start");
    await until(() => this.ended > ended, "kv@end from the publisher");
  }

  check(n: number): void {
    assert.equal(this.msgs.length, n);
    this.msgs.forEach((m, i) => {
      assert.equal(m.topic, "kv@pod@m");
      assert.equal(m.seq, i);
      const size = i === Math.floor(n / 2) ? 1 << 20 : i % 2 ? 300 : 10;
      assert.equal(m.payload.length, size);
      for (let k = 0; k < size; k++) {
        if (m.payload[k] !== ((i + k) & 255)) assert.fail(`payload ${i} differs at byte ${k}`);
      }
    });
  }
}

Deno.test({
  name: "zmtp: SUB connects to a pyzmq PUB, gets multipart messages in order, filtered by topic",
  ignore: !hasZmq,
  async fn() {
    const py = new Py(PUB_SCRIPT, ["bind", "tcp://127.0.0.1:0", "200"]);
    const round = new Round();
    const errors: Error[] = [];
    const sub = new ZmqSubscriber({
      topics: [te.encode("kv@")],
      onMessage: round.onMessage,
      onError: (e) => errors.push(e),
    });
    try {
      const port = await py.ready();
      sub.connect(`tcp://127.0.0.1:${port}`);
      await round.run(py);
      round.check(200); // no "other" topic among them
      const s = sub.stats;
      assert.equal(s.peers, 1);
      assert.equal(s.protocolErrors, 0);
      assert.ok(s.bytes > 1 << 20);
      assert.deepEqual(errors, []);
    } finally {
      await sub.close();
      await py.stop();
    }
    assert.equal(sub.stats.peers, 0);
  },
});

Deno.test({
  name: "zmtp: SUB binds, a pyzmq PUB connects to it",
  ignore: !hasZmq,
  async fn() {
    const round = new Round();
    const connected: string[] = [];
    const sub = new ZmqSubscriber({
      topics: [te.encode("kv@")],
      onMessage: round.onMessage,
      onConnect: (peer) => connected.push(peer),
    });
    const addr = sub.bind("tcp://127.0.0.1:0");
    const py = new Py(PUB_SCRIPT, ["connect", `tcp://127.0.0.1:${addr.port}`, "50"]);
    try {
      await py.ready();
      await round.run(py);
      round.check(50);
      assert.equal(connected.length, 1);
      assert.match(connected[0], /^tcp:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      await py.stop();
      await sub.close();
    }
  },
});

Deno.test({
  name: "zmtp: SUB redials a restarted PUB and resubscribes",
  ignore: !hasZmq,
  async fn() {
    const round = new Round();
    const events: string[] = [];
    const sub = new ZmqSubscriber({
      topics: [te.encode("kv@")],
      reconnectMinMs: 20,
      reconnectMaxMs: 200,
      onMessage: round.onMessage,
      onConnect: () => events.push("connect"),
      onDisconnect: () => events.push("disconnect"),
    });
    // Bound again after the restart: a port below the ephemeral range, which no other test's client
    // connection can take as its local port meanwhile (tests run in parallel).
    let py = new Py(PUB_SCRIPT, ["bind", `tcp://127.0.0.1:${freePort()}`, "20"]);
    try {
      const port = await py.ready();
      sub.connect(`tcp://127.0.0.1:${port}`);
      await round.run(py);
      round.check(20);
      await py.stop();
      await until(() => events.includes("disconnect"), "the disconnect");
      py = new Py(PUB_SCRIPT, ["bind", `tcp://127.0.0.1:${port}`, "20"]);
      await py.ready();
      round.msgs = [];
      await round.run(py);
      round.check(20);
      assert.deepEqual(events, ["connect", "disconnect", "connect"]);
      assert.equal(sub.stats.reconnects, 1);
      assert.equal(sub.stats.protocolErrors, 0);
    } finally {
      await sub.close();
      await py.stop();
    }
  },
});

Deno.test({
  name: 'zmtp: DEALER asks a pyzmq ROUTER for a replay and gets ["", seq, payload] replies',
  ignore: !hasZmq,
  async fn() {
    const py = new Py(ROUTER_SCRIPT, []);
    const got: { seq: bigint; payload: string }[] = [];
    const dealer = new ZmqDealer({
      onMessage: (frames) => {
        assert.equal(frames.length, 3);
        assert.equal(frames[0].length, 0);
        got.push({ seq: seqOf(frames[1]), payload: td.decode(frames[2]) });
      },
    });
    try {
      const port = await py.ready();
      await dealer.connect(`tcp://127.0.0.1:${port}`);
      assert.ok(dealer.connected);
      await dealer.send([new Uint8Array(0), seqBytes(41)]);
      await until(() => got.length === 4, "the replay");
      assert.deepEqual(got.map((g) => g.seq), [41n, 42n, 43n, -1n]);
      assert.equal(got[0].payload, "payload-41-" + "x".repeat(300));
      assert.equal(got[3].payload, "");
      await dealer.send([new Uint8Array(0), seqBytes(7)]); // a second request on the same connection
      await until(() => got.length === 8, "the second replay");
      assert.deepEqual(got.slice(4).map((g) => g.seq), [7n, 8n, 9n, -1n]);
      await assert.rejects(dealer.connect(`tcp://127.0.0.1:${port}`), /already connected/);
    } finally {
      await dealer.close();
      await py.stop();
    }
    assert.equal(dealer.connected, false);
    await assert.rejects(dealer.send([new Uint8Array(1)]), ZmtpError);
  },
});

// ---------------------------------------------------------------------------------------------
// Raw peers

function greeting(mechanism = "NULL", major = 3, minor = 0): Uint8Array {
  const g = new Uint8Array(64);
  g[0] = 0xff;
  g[9] = 0x7f;
  g[10] = major;
  g[11] = minor;
  g.set(te.encode(mechanism), 12);
  return g;
}

function frame(flags: number, body: Uint8Array): Uint8Array {
  if (body.length > 255) {
    const out = new Uint8Array(9 + body.length);
    out[0] = flags | 2;
    new DataView(out.buffer).setBigUint64(1, BigInt(body.length));
    out.set(body, 9);
    return out;
  }
  return Uint8Array.of(flags, body.length, ...body);
}

function command(name: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  return frame(4, Uint8Array.of(name.length, ...te.encode(name), ...data));
}

function ready(socketType: string): Uint8Array {
  const v = te.encode(socketType);
  return command("READY", Uint8Array.of(11, ...te.encode("Socket-Type"), 0, 0, 0, v.length, ...v));
}

function message(...frames: (string | Uint8Array)[]): Uint8Array {
  return cat(
    ...frames.map((f, i) =>
      frame(i < frames.length - 1 ? 1 : 0, typeof f === "string" ? te.encode(f) : f)
    ),
  );
}

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const PUB_HELLO = cat(greeting(), ready("PUB"));

/** A raw TCP server running `script` on each connection, then reading until the peer closes. */
function rawServer(script: (conn: Deno.TcpConn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const handlers: Promise<void>[] = [];
  const scriptErrors: unknown[] = [];
  let connections = 0;
  const handle = async (conn: Deno.TcpConn) => {
    connections++;
    try {
      await script(conn);
      const buf = new Uint8Array(4096);
      while ((await conn.read(buf)) !== null) {
        // until the client hangs up
      }
    } catch (e) {
      // the client hung up mid-write, or an assertion in the script failed
      if (!(e instanceof Deno.errors.BadResource || e instanceof Deno.errors.ConnectionReset)) {
        scriptErrors.push(e);
      }
    } finally {
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
  };
  const loop = (async () => {
    try {
      for await (const conn of listener) handlers.push(handle(conn));
    } catch {
      // listener closed
    }
  })();
  return {
    endpoint: `tcp://127.0.0.1:${listener.addr.port}`,
    scriptErrors,
    get connections() {
      return connections;
    },
    async close() {
      try {
        listener.close();
      } catch {
        // closed already
      }
      await loop;
      await Promise.all(handlers);
    },
  };
}

const write = async (conn: Deno.Conn, bytes: Uint8Array) => {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
};

const hostileCases: {
  name: string;
  send: Uint8Array;
  error: RegExp;
  halfClose?: boolean;
  opts?: { maxFrames?: number; maxMessageBytes?: number; handshakeTimeoutMs?: number };
}[] = [
  {
    name: "garbage instead of a greeting",
    send: te.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    error: /bad greeting signature/,
  },
  {
    name: "a frame claiming 2^40 bytes",
    send: cat(PUB_HELLO, Uint8Array.of(2, 0, 0, 1, 0, 0, 0, 0, 0)),
    error: /frame of 1099511627776 bytes/,
  },
  {
    name: "too many frames in one message",
    send: cat(PUB_HELLO, message("a", "b", "c", "d", "e")),
    error: /more than 4 frames/,
    opts: { maxFrames: 4 },
  },
  {
    name: "a message over maxMessageBytes",
    send: cat(PUB_HELLO, message(new Uint8Array(600), new Uint8Array(600))),
    error: /more than 1000 bytes/,
    opts: { maxMessageBytes: 1000 },
  },
  {
    name: "a truncated frame, then the end of the stream",
    send: cat(PUB_HELLO, Uint8Array.of(0, 100), new Uint8Array(10)),
    error: /closed in the middle of a frame/,
    halfClose: true,
  },
  {
    name: "a truncated greeting, then the end of the stream",
    send: greeting().subarray(0, 30),
    error: /middle of a greeting/,
    halfClose: true,
  },
  { name: "a READY from a REQ socket", send: cat(greeting(), ready("REQ")), error: /REQ does not/ },
  {
    name: "a READY without a Socket-Type",
    send: cat(greeting(), command("READY")),
    error: /without a Socket-Type/,
  },
  {
    name: "malformed READY metadata",
    send: cat(greeting(), command("READY", Uint8Array.of(11, 65, 66))),
    error: /malformed READY/,
  },
  {
    name: "reserved flag bits",
    send: cat(PUB_HELLO, Uint8Array.of(0x80, 1, 0)),
    error: /bad frame flags 0x80/,
  },
  {
    name: "a command frame with MORE",
    send: cat(PUB_HELLO, Uint8Array.of(5, 5, 4, ...te.encode("PING"))),
    error: /command frame with the MORE flag/,
  },
  {
    name: "a command inside a multipart message",
    send: cat(PUB_HELLO, frame(1, te.encode("kv@")), command("PING", new Uint8Array(2))),
    error: /command frame inside a multipart message/,
  },
  {
    name: "a message before READY",
    send: cat(greeting(), message("kv@x", "payload")),
    error: /before the READY/,
  },
  {
    name: "a command other than READY first",
    send: cat(greeting(), command("PING", new Uint8Array(2))),
    error: /expected READY, got command PING/,
  },
  {
    name: "a second READY",
    send: cat(PUB_HELLO, ready("PUB")),
    error: /second READY/,
  },
  {
    name: "an ERROR command",
    send: cat(greeting(), command("ERROR", Uint8Array.of(7, ...te.encode("go away")))),
    error: /peer sent ERROR: go away/,
  },
  { name: "the PLAIN mechanism", send: greeting("PLAIN"), error: /PLAIN is not supported/ },
  { name: "ZMTP 2.0", send: greeting("NULL", 1), error: /ZMTP 1.x is not supported/ },
  {
    name: "a greeting, then silence",
    send: greeting(),
    error: /no ZMTP handshake within 150 ms/,
    opts: { handshakeTimeoutMs: 150 },
  },
];

for (const c of hostileCases) {
  Deno.test(`zmtp: SUB drops a peer sending ${c.name}`, async () => {
    const server = rawServer(async (conn) => {
      await write(conn, c.send);
      if (c.halfClose) await conn.closeWrite();
    });
    const errors: Error[] = [];
    const messages: Uint8Array[][] = [];
    const sub = new ZmqSubscriber({
      ...c.opts,
      reconnectMinMs: 60_000,
      onMessage: (f) => messages.push(f),
      onError: (e) => errors.push(e),
    });
    try {
      sub.connect(server.endpoint);
      await until(() => errors.length > 0, "the protocol error");
      assert.equal(errors.length, 1);
      assert.ok(errors[0] instanceof ZmtpError, String(errors[0]));
      assert.match(errors[0].message, c.error);
      assert.equal(sub.stats.protocolErrors, 1);
      assert.equal(sub.stats.messages, 0);
      assert.deepEqual(messages, []);
    } finally {
      await sub.close();
      await server.close();
    }
  });
}

Deno.test("zmtp: after a protocol error the SUB redials with backoff, and close() stops it", async () => {
  const server = rawServer((conn) => write(conn, te.encode("garbage garbage")));
  const errors: Error[] = [];
  const sub = new ZmqSubscriber({
    reconnectMinMs: 5,
    reconnectMaxMs: 20,
    onMessage: () => {},
    onError: (e) => errors.push(e),
  });
  try {
    sub.connect(server.endpoint);
    await until(() => sub.stats.protocolErrors >= 3, "three protocol errors");
    assert.ok(errors.every((e) => e instanceof ZmtpError));
    assert.equal(sub.stats.reconnects, 0); // never got past a handshake
  } finally {
    await sub.close();
    await server.close();
  }
  assert.ok(server.connections >= 3);
});

/** Reads frames from a raw connection (test side): greeting, then [flags, body] pairs. */
class FrameReader {
  #buf: Uint8Array = new Uint8Array(0);
  constructor(readonly conn: Deno.Conn) {}
  async #fill(n: number): Promise<void> {
    const chunk = new Uint8Array(65536);
    while (this.#buf.length < n) {
      const r = await this.conn.read(chunk);
      if (r === null) throw new Error("eof");
      this.#buf = cat(this.#buf, chunk.subarray(0, r));
    }
  }
  async take(n: number): Promise<Uint8Array> {
    await this.#fill(n);
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }
  async frame(): Promise<{ flags: number; body: Uint8Array }> {
    const [flags] = await this.take(1);
    const size = flags & 2
      ? Number(new DataView((await this.take(8)).buffer).getBigUint64(0))
      : (await this.take(1))[0];
    return { flags, body: await this.take(size) };
  }
}

Deno.test("zmtp: SUB parses a stream cut at every byte and in random chunks, with tiny buffers", async () => {
  // Messages of many sizes, some larger than the 4 KiB read buffer (growth and compaction).
  const sizes = [0, 1, 255, 256, 3000, 5000, 70_000, 10, 200_000, 4096, 2];
  const body = (i: number, size: number) =>
    Uint8Array.from({ length: size }, (_, k) => (i * 7 + k) & 255);
  const stream = cat(
    command("PING", Uint8Array.of(0, 10, ...te.encode("ctx"))),
    ...sizes.map((s, i) => message("kv@t", seqBytes(i), body(i, s))),
    command("PONG"), // ignored
    command("SUBSCRIBE", te.encode("x")), // ignored
  );
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (const mode of ["bytewise", "random"] as const) {
    let pong: Uint8Array | null = null;
    let subscription: Uint8Array | null = null;
    const server = rawServer(async (conn) => {
      const r = new FrameReader(conn);
      const hello = await r.take(64);
      assert.equal(hello[0], 0xff);
      assert.equal(hello[10], 3);
      assert.equal(td.decode(hello.subarray(12, 16)), "NULL");
      const rdy = await r.frame();
      assert.equal(rdy.flags, 4);
      assert.match(td.decode(rdy.body), /READY.*Socket-Type.*SUB/s);
      const all = cat(PUB_HELLO, stream);
      let at = 0;
      while (at < all.length) {
        const n = mode === "bytewise" && at < 2000 ? 1 : 1 + rand(9000);
        await write(conn, all.subarray(at, Math.min(all.length, at + n)));
        at += n;
      }
      subscription = (await r.frame()).body;
      pong = (await r.frame()).body;
    });
    const got: { seq: number; body: Uint8Array }[] = [];
    const sub = new ZmqSubscriber({
      topics: [te.encode("kv@")],
      readBufferBytes: 4096,
      onMessage: ([t, s, b]) => {
        assert.equal(td.decode(t), "kv@t");
        got.push({ seq: Number(seqOf(s)), body: b.slice() });
      },
    });
    try {
      sub.connect(server.endpoint);
      await until(() => got.length === sizes.length && pong !== null, `all messages (${mode})`);
      got.forEach((g, i) => {
        assert.equal(g.seq, i);
        assert.deepEqual(g.body, body(i, sizes[i]));
      });
      assert.deepEqual(subscription, Uint8Array.of(1, ...te.encode("kv@")));
      assert.deepEqual(pong, Uint8Array.of(4, ...te.encode("PONG"), ...te.encode("ctx")));
      assert.equal(sub.stats.protocolErrors, 0);
      assert.equal(sub.stats.messages, sizes.length);
    } finally {
      await sub.close();
      await server.close();
    }
    assert.deepEqual(server.scriptErrors, []);
  }
});

Deno.test("zmtp: a throwing onMessage is reported and the connection carries on", async () => {
  const server = rawServer((conn) =>
    write(conn, cat(PUB_HELLO, message("a"), message("boom"), message("c")))
  );
  const seen: string[] = [];
  const errors: Error[] = [];
  const sub = new ZmqSubscriber({
    onMessage: ([f]) => {
      const s = td.decode(f);
      seen.push(s);
      if (s === "boom") throw new Error("consumer bug");
    },
    onError: (e) => errors.push(e),
  });
  try {
    sub.connect(server.endpoint);
    await until(() => seen.length === 3, "three messages");
    assert.deepEqual(seen, ["a", "boom", "c"]);
    assert.equal(errors.length, 1);
    assert.match(errors[0].message, /consumer bug/);
    assert.equal(sub.stats.protocolErrors, 0);
    assert.equal(sub.stats.peers, 1);
  } finally {
    await sub.close();
    await server.close();
  }
});

Deno.test("zmtp: SUB bind survives random garbage from many raw peers", async () => {
  const errors: Error[] = [];
  const got: string[] = [];
  const sub = new ZmqSubscriber({
    maxFrames: 4,
    maxFrameBytes: 1000,
    onMessage: ([f]) => got.push(td.decode(f)),
    onError: (e) => errors.push(e),
  });
  const { port } = sub.bind("tcp://127.0.0.1:0");
  let seed = 99;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  try {
    for (let i = 0; i < 150; i++) {
      const junk = Uint8Array.from({ length: 1 + rand(300) }, () => rand(256));
      // Mostly frames-like junk after a valid handshake, sometimes a mangled greeting.
      const prefix = i % 5 === 0 ? PUB_HELLO.subarray(0, rand(PUB_HELLO.length)) : PUB_HELLO;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await write(conn, cat(prefix, junk));
        await conn.closeWrite();
        const buf = new Uint8Array(4096);
        while ((await conn.read(buf)) !== null) {
          // until the subscriber hangs up
        }
      } catch {
        // reset by the subscriber
      } finally {
        conn.close();
      }
    }
    await until(() => sub.stats.peers === 0, "all junk connections to end");
    assert.ok(sub.stats.protocolErrors > 50, `protocol errors: ${sub.stats.protocolErrors}`);
    // Still serving: a well-behaved peer gets through.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await write(conn, cat(PUB_HELLO, message("still alive")));
      await until(() => got.includes("still alive"), "the message after the junk");
    } finally {
      conn.close();
    }
  } finally {
    await sub.close();
  }
  assert.ok(errors.every((e) => e instanceof Error));
});

Deno.test("zmtp: SUB subscribe/unsubscribe at runtime reach connected peers", async () => {
  const frames: Uint8Array[] = [];
  const server = rawServer(async (conn) => {
    await write(conn, PUB_HELLO);
    const r = new FrameReader(conn);
    await r.take(64);
    await r.frame(); // READY
    for (let i = 0; i < 3; i++) frames.push((await r.frame()).body);
  });
  const sub = new ZmqSubscriber({ topics: [te.encode("a")], onMessage: () => {} });
  try {
    sub.connect(server.endpoint);
    await until(() => sub.stats.peers === 1, "the handshake");
    sub.subscribe(te.encode("b"));
    sub.unsubscribe(te.encode("nope")); // not subscribed: nothing sent
    sub.unsubscribe(te.encode("a"));
    await until(() => frames.length === 3, "three subscription messages");
    assert.deepEqual(frames, [Uint8Array.of(1, 97), Uint8Array.of(1, 98), Uint8Array.of(0, 97)]);
  } finally {
    await sub.close();
    await server.close();
  }
  assert.deepEqual(server.scriptErrors, []);
  assert.throws(() => sub.subscribe(te.encode("c")), ZmtpError);
});

Deno.test("zmtp: DEALER refuses a PUB peer and a closed port", async () => {
  const server = rawServer((conn) => write(conn, PUB_HELLO));
  const errors: Error[] = [];
  const dealer = new ZmqDealer({ onMessage: () => {}, onError: (e) => errors.push(e) });
  try {
    await assert.rejects(dealer.connect(server.endpoint), /PUB does not pair/);
    assert.equal(dealer.stats.protocolErrors, 1);
    assert.equal(errors.length, 1);
    await assert.rejects(dealer.send([new Uint8Array(1)]), /not connected/);
  } finally {
    await server.close();
  }
  await assert.rejects(dealer.connect(server.endpoint)); // the listener is gone: refused
  assert.equal(dealer.stats.connectFailures, 1);
  await dealer.close();
  await assert.rejects(dealer.connect(server.endpoint), /closed/);
});

Deno.test("zmtp: DEALER announces its identity, answers PING, reconnects on demand", async () => {
  const readies: string[] = [];
  const server = rawServer(async (conn) => {
    await write(conn, cat(greeting("NULL", 3, 1), ready("ROUTER")));
    const r = new FrameReader(conn);
    await r.take(64);
    readies.push(td.decode((await r.frame()).body));
    const req = await r.frame();
    const req2 = await r.frame();
    assert.deepEqual([req.flags, req2.flags], [1, 0]);
    await write(
      conn,
      cat(command("PING", Uint8Array.of(0, 1, 9)), message("", req2.body, "reply")),
    );
    const pong = await r.frame();
    assert.deepEqual(pong, { flags: 4, body: Uint8Array.of(4, ...te.encode("PONG"), 9) });
    conn.close(); // hang up
  });
  const got: string[] = [];
  const dealer = new ZmqDealer({
    identity: te.encode("me"),
    onMessage: ([e, s, p]) => got.push(`${e.length}:${seqOf(s)}:${td.decode(p)}`),
  });
  try {
    await dealer.connect(server.endpoint);
    await dealer.send([new Uint8Array(0), seqBytes(5)]);
    await until(() => got.length === 1, "the reply");
    assert.deepEqual(got, ["0:5:reply"]);
    await until(() => !dealer.connected, "the server to hang up");
    await dealer.connect(server.endpoint);
    assert.equal(dealer.stats.reconnects, 1);
  } finally {
    await dealer.close();
    await server.close();
  }
  assert.deepEqual(server.scriptErrors.map(String), ["Error: eof"]); // the 2nd connection's wait
  assert.ok(readies[0].endsWith("Socket-Type\0\0\0\x06DEALER\x08Identity\0\0\0\x02me"));
});

Deno.test("zmtp: close() during a pending connect and on a never-answering peer", async () => {
  const sub = new ZmqSubscriber({ onMessage: () => {} });
  sub.connect("tcp://10.255.255.1:5557"); // unroutable: the dial hangs or fails
  const silent = rawServer(async () => {}); // accepts, never speaks
  sub.connect(silent.endpoint);
  await until(() => silent.connections === 1, "the silent connection");
  await sub.close();
  await sub.close(); // twice is fine
  assert.equal(sub.stats.peers, 0);
  await silent.close(); // its connection was closed by the subscriber
});

Deno.test("zmtp: endpoints and options are checked", () => {
  assert.deepEqual(parseTcpEndpoint("tcp://127.0.0.1:5557"), { hostname: "127.0.0.1", port: 5557 });
  assert.deepEqual(parseTcpEndpoint("tcp://[::1]:1"), { hostname: "::1", port: 1 });
  assert.deepEqual(parseTcpEndpoint("tcp://vllm-0.svc:5557"), {
    hostname: "vllm-0.svc",
    port: 5557,
  });
  assert.deepEqual(parseTcpEndpoint("tcp://*:0", true), { hostname: "0.0.0.0", port: 0 });
  for (const bad of ["tcp://*:5557", "tcp://h:0", "tcp://h:70000", "ipc:///x", "h:1", "tcp://h"]) {
    assert.throws(() => parseTcpEndpoint(bad), TypeError, bad);
  }
  assert.throws(() => new ZmqSubscriber({ onMessage: () => {}, maxFrames: 0 }), RangeError);
  assert.throws(() => new ZmqSubscriber({ onMessage: () => {}, readBufferBytes: 100 }), RangeError);
  assert.throws(
    () => new ZmqDealer({ onMessage: () => {}, identity: new Uint8Array(256) }),
    RangeError,
  );
  // deno-lint-ignore no-explicit-any
  assert.throws(() => new ZmqSubscriber({} as any), TypeError);
  const sub = new ZmqSubscriber({ onMessage: () => {} });
  assert.throws(() => sub.connect("nope"), TypeError);
});

// ---------------------------------------------------------------------------------------------
// The bound socket of ZmqSources: engines that connect to the service.

Deno.test("zmq sources: a bound engine seen before, back from sequence 0 alone, restarted", async () => {
  const map = new CacheMap({ maxPods: 8 });
  const ingest = new Ingest(map, { defaultModel: "d", hooks: { warn: () => {} } });
  const zmq = new ZmqSources(ingest, {
    publishers: [],
    bind: "tcp://127.0.0.1:0",
    topic: "",
    maxFrameBytes: 1 << 20,
    replayTimeoutMs: 100,
    maxHeld: 100,
  });
  const addr = zmq.start()!;
  const conns: Deno.Conn[] = [];
  const connect = async () => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: addr.port });
    conns.push(c);
    await write(c, PUB_HELLO);
    return c;
  };
  const batch = (h: number) =>
    encodeMsgpack([1.5, [["BlockStored", [BigInt(h)], null, [1, 2], 2, null, null]]]);
  // Pod p's blocks: from HTTP events, or from an engine's new connection whose first message
  // (sequence 0) stores block h (waited for until applied).
  const fromHttp = (h: number) => {
    map.touch("p", "m");
    ingest.applyPayload("p", "m", batch(h));
  };
  let sent = 0;
  const engineFromZero = async (h: number) => {
    const c = await connect();
    await write(c, message("kv@p@m", seqFrame(0), batch(h)));
    sent++;
    await until(() => ingest.stats.messages >= sent, `the message storing ${h}`);
    return c;
  };
  try {
    // A pod the service knows from HTTP first: its engine's first connection from 0 is no restart.
    fromHttp(500);
    const a = await engineFromZero(600);
    assert.equal(ingest.stats.restarts, 0);
    assert.equal(map.pod("p")!.blocks, 2);
    assert.ok(zmq.isConnected("p"), "a bound connection keeps its pod");
    assert.deepEqual(
      zmq.statuses().filter((s) => s.pod === "p").map((s) => [s.connected, s.lastSeq]),
      [[1, 0]],
      "its connection in /pods",
    );
    // A second data-parallel rank of the pod, from 0, beside the first: no restart either.
    const b = await engineFromZero(601);
    assert.equal(ingest.stats.restarts, 0);
    // Both gone; the engine back from 0: restarted, its old blocks dropped.
    a.close();
    b.close();
    await until(() => !zmq.isConnected("p"), "the disconnections");
    const c = await engineFromZero(700);
    assert.equal(ingest.stats.restarts, 1);
    assert.equal(map.pod("p")!.blocks, 1);
    // Forgotten (expired, DELETE), then known again from HTTP: its engine's next connection from
    // 0 is a first one again, not a restart.
    c.close();
    await until(() => !zmq.isConnected("p"), "the disconnection");
    map.remove("p");
    fromHttp(800);
    await engineFromZero(900);
    assert.equal(ingest.stats.restarts, 1);
    assert.equal(map.pod("p")!.blocks, 2);
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch {
        // closed already
      }
    }
    await zmq.close();
  }
});
