/**
 * The native epoll listener's own paths (the RESP behaviour both listeners share is tested in
 * clients_test.ts): replies larger than the socket takes, a client that does not read while
 * others are served, the persistence commit, half-closed and closing connections, binding, and
 * the address helpers of libc.ts with malformed input.
 */
import assert from "node:assert/strict";
import { AF_INET, AF_INET6, formatIpv6, parseIp, readSockaddr, sockaddr } from "./libc.ts";
import { NativeRespServer, NativeUnavailable, SyscallError } from "./native_server.ts";
import {
  forEachListener,
  startListener,
  testEngine,
  testLibc,
  withEachListener,
} from "./_testing/listeners.ts";
import { raw } from "./_testing/raw.ts";
import { freePort } from "../../bench/lib/process.ts";

const te = new TextEncoder(), td = new TextDecoder();

/** SET big <value> in RESP (too long for an inline command), then QUIT. */
const setBig = (value: string) =>
  `*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$${value.length}\r\n${value}\r\nQUIT\r\n`;

/** Reads until `bytes` bytes came (or the peer closed); returns them. */
async function readBytes(conn: Deno.Conn, bytes: number): Promise<Uint8Array> {
  const out = new Uint8Array(bytes);
  let got = 0;
  while (got < bytes) {
    const n = await conn.read(out.subarray(got));
    if (n === null) break;
    got += n;
  }
  return out.subarray(0, got);
}

Deno.test("native listener: replies far past the socket buffer, while a client that does not read holds no one up", async () => {
  await withEachListener(async (port) => {
    const value = "v".repeat(1 << 20);
    assert.equal(await raw(port, setBig(value)), "+OK\r\n+OK\r\n");
    const slow = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      // 32 MiB of replies asked for in one write, none read yet.
      const gets = 32;
      await slow.write(te.encode("GET big\r\n".repeat(gets)));
      // Another client is served meanwhile, commands and all.
      assert.equal(await raw(port, "INCR n\r\nGET n\r\nQUIT\r\n"), ":1\r\n$1\r\n1\r\n+OK\r\n");
      const reply = `$${value.length}\r\n${value}\r\n`;
      const got = await readBytes(slow, reply.length * gets);
      assert.equal(got.length, reply.length * gets);
      for (let i = 0; i < gets; i++) {
        const one = got.subarray(i * reply.length, (i + 1) * reply.length);
        assert.equal(td.decode(one.subarray(0, 12)), reply.slice(0, 12), `reply ${i}`);
        assert.equal(one[one.length - 3], 0x76);
      }
      // The connection still works after the backlog drained.
      await slow.write(te.encode("PING\r\n"));
      assert.equal(td.decode(await readBytes(slow, 7)), "+PONG\r\n");
    } finally {
      slow.close();
    }
  });
});

Deno.test("native listener: 20,000 pipelined commands in one write get their replies in order", async () => {
  await withEachListener(async (port) => {
    const n = 20_000;
    const out = await raw(port, "INCR c\r\n".repeat(n) + "QUIT\r\n");
    const expected = Array.from({ length: n }, (_, i) => `:${i + 1}\r\n`).join("") + "+OK\r\n";
    assert.equal(out.length, expected.length);
    assert.equal(out, expected);
  });
});

Deno.test("native listener: a half-closed client gets the replies to what it sent", async () => {
  await withEachListener(async (port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: port });
    await conn.write(te.encode("SET k v\r\nGET k\r\n"));
    await conn.closeWrite();
    const got = await readBytes(conn, 1024);
    assert.equal(td.decode(got), "+OK\r\n$1\r\nv\r\n");
    conn.close();
  });
});

Deno.test("native listener: a client that half-closes after asking for 8 MiB gets all of it", async () => {
  await withEachListener(async (port) => {
    const value = "w".repeat(1 << 20);
    assert.equal(await raw(port, setBig(value)), "+OK\r\n+OK\r\n");
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: port });
    // Replies past the flush threshold leave commands waiting; the end of input must not
    // overtake them.
    await conn.write(te.encode("GET big\r\n".repeat(8) + "PING\r\n"));
    await conn.closeWrite();
    const reply = `$${value.length}\r\n${value}\r\n`;
    const got = await readBytes(conn, reply.length * 8 + 7 + 1);
    assert.equal(got.length, reply.length * 8 + 7);
    assert.equal(td.decode(got.subarray(got.length - 7)), "+PONG\r\n");
    conn.close();
  });
});

Deno.test("native listener: 3,000 pipelined GETs of 1 KB values arrive whole and in order", async () => {
  await withEachListener(async (port) => {
    const keys = 100, value = (i: number) => `${i}:`.padEnd(1000, "z");
    let setup = "";
    for (let i = 0; i < keys; i++) setup += `SET k${i} ${value(i)}\r\n`;
    assert.equal(await raw(port, setup + "QUIT\r\n"), "+OK\r\n".repeat(keys + 1));
    // ~27 KB of commands (more than one read) for ~3 MB of replies (many flushes).
    let ask = "", expected = "";
    for (let i = 0; i < 3000; i++) {
      ask += `GET k${i % keys}\r\n`;
      expected += `$1000\r\n${value(i % keys)}\r\n`;
    }
    const out = await raw(port, ask + "QUIT\r\n");
    assert.equal(out.length, expected.length + 5);
    assert.equal(out, expected + "+OK\r\n");
  });
});

Deno.test("native listener: close() ends open connections and frees the port", async () => {
  await forEachListener(async (kind) => {
    const engine = testEngine();
    // A port below the ephemeral range (see freePort): one port 0 gave could be taken, between
    // the close and the bind again, as the local port of another test's client connection.
    const server = startListener(kind, { engine, hostname: "127.0.0.1", port: freePort() });
    const port = server.addr.port;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(te.encode("PING\r\n"));
    assert.equal(td.decode(await readBytes(conn, 7)), "+PONG\r\n");
    assert.equal(server.connections, 1);
    await server.close();
    assert.equal(await conn.read(new Uint8Array(8)), null);
    conn.close();
    assert.equal(engine.clients.size, 0);
    // The port can be bound again.
    const again = startListener(kind, { engine, hostname: "127.0.0.1", port });
    assert.equal(again.addr.port, port);
    await again.close();
  });
});

Deno.test("native listener: replies wait for the persistence commit; a failed commit sends none", async () => {
  const engine = testEngine();
  let release: (() => void) | null = null;
  let fail = false;
  let commits = 0;
  const server = new NativeRespServer({
    engine,
    libc: testLibc(),
    hostname: "127.0.0.1",
    port: 0,
    commit: () => {
      if (fail) return Promise.reject(new Error("disk gone"));
      commits++;
      return new Promise<void>((r) => (release = r));
    },
  });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await conn.write(te.encode("SET k v\r\nGET k\r\n"));
    while (release === null) await new Promise((r) => setTimeout(r, 5));
    const buf = new Uint8Array(64);
    const reading = conn.read(buf);
    // The commands ran (a second connection sees the write only after the same commit, so
    // look at the engine), and nothing has come back.
    assert.equal(engine.keyspace.size, 1);
    const early = await Promise.race([
      reading.then(() => "reply"),
      new Promise((r) => setTimeout(() => r("nothing"), 50)),
    ]);
    assert.equal(early, "nothing");
    (release as () => void)();
    const n = await reading;
    assert.equal(td.decode(buf.subarray(0, n!)), "+OK\r\n$1\r\nv\r\n");
    // One commit for the batch of both commands.
    assert.equal(commits, 1);
    fail = true;
    await conn.write(te.encode("SET k w\r\n"));
    assert.equal(await conn.read(buf), null);
    conn.close();
  } finally {
    await server.close();
  }
});

Deno.test("native listener: IPv6 loopback; a host name is left to Deno's sockets; a taken port is an error", async () => {
  const engine = testEngine();
  const l = testLibc();
  let v6: NativeRespServer | null = null;
  try {
    v6 = new NativeRespServer({ engine, libc: l, hostname: "::1", port: 0 });
  } catch (e) {
    // A machine without IPv6 loopback cannot bind it: only that error is accepted.
    assert.ok(e instanceof SyscallError, String(e));
  }
  if (v6 !== null) {
    try {
      assert.equal(
        await raw(v6.addr.port, "PING\r\nQUIT\r\n", undefined, "::1"),
        "+PONG\r\n+OK\r\n",
      );
      const list = await raw(v6.addr.port, "CLIENT LIST\r\nQUIT\r\n", undefined, "::1");
      assert.match(list, /addr=\[::1\]:\d+ laddr=\[::1\]:\d+ /);
    } finally {
      await v6.close();
    }
  }
  assert.throws(
    () => new NativeRespServer({ engine, libc: l, hostname: "example.org", port: 0 }),
    NativeUnavailable,
  );
  const taken = new NativeRespServer({ engine, libc: l, hostname: "127.0.0.1", port: 0 });
  try {
    assert.throws(
      () => new NativeRespServer({ engine, libc: l, hostname: "127.0.0.1", port: taken.addr.port }),
      (e: unknown) => e instanceof SyscallError && e.errno === 98 && /bind/.test(e.message),
    );
  } finally {
    await taken.close();
  }
});

Deno.test("libc: numeric addresses parse; malformed ones are refused", () => {
  assert.deepEqual(parseIp("127.0.0.1"), {
    family: AF_INET,
    bytes: new Uint8Array([127, 0, 0, 1]),
  });
  assert.deepEqual(parseIp("localhost")?.bytes, new Uint8Array([127, 0, 0, 1]));
  assert.deepEqual(parseIp("0.0.0.0")?.bytes, new Uint8Array(4));
  const v6 = (s: string) => {
    const ip = parseIp(s);
    assert.equal(ip?.family, AF_INET6, s);
    return formatIpv6(ip!.bytes);
  };
  assert.equal(v6("::"), "::");
  assert.equal(v6("::1"), "::1");
  assert.equal(v6("[::1]"), "::1");
  assert.equal(v6("2001:DB8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  assert.equal(v6("fe80::1:2"), "fe80::1:2");
  assert.equal(v6("1:2:3:4:5:6:7:8"), "1:2:3:4:5:6:7:8");
  assert.equal(v6("::ffff:10.1.2.3"), "::ffff:10.1.2.3");
  assert.equal(v6("1::"), "1::");
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "01.2.3.4",
      "1.2.3.-4",
      " 1.2.3.4",
      "::1::",
      ":::",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7::8",
      "12345::",
      "g::1",
      "fe80::1%eth0",
      "::1.2.3.256",
      "example.org",
      "x".repeat(1000),
    ]
  ) {
    assert.equal(parseIp(bad), null, JSON.stringify(bad));
  }
});

Deno.test("libc: socket addresses round-trip; unknown families read as null", () => {
  const a = sockaddr(parseIp("10.0.0.7")!, 6379);
  assert.deepEqual(readSockaddr(a), { hostname: "10.0.0.7", port: 6379 });
  const b = sockaddr(parseIp("2001:db8::5")!, 65535);
  assert.deepEqual(readSockaddr(b), { hostname: "2001:db8::5", port: 65535 });
  const unix = new Uint8Array(16);
  unix[0] = 1; // AF_UNIX
  assert.equal(readSockaddr(unix), null);
  assert.equal(readSockaddr(new Uint8Array(0)), null);
});

Deno.test("native listener: under a client that keeps it busy, timers still run in between", async () => {
  const engine = testEngine();
  // A spin of a second: between the client's writes the loop keeps polling, so that only its
  // turns for the event loop let the timer run.
  const server = new NativeRespServer({
    engine,
    libc: testLibc(),
    hostname: "127.0.0.1",
    port: 0,
    spinMicros: 1_000_000,
  });
  // Commands run so far, seen by each tick of a 1 ms timer of this isolate.
  const seen: number[] = [];
  const timer = setInterval(() => seen.push(engine.stats.commands), 1);
  try {
    // Another process pipelines 2,000,000 PINGs (no await in this isolate feeds the loop).
    const chunks = 100, per = 20_000;
    const code = `
      const c = await Deno.connect({ hostname: "127.0.0.1", port: ${server.addr.port} });
      const want = ${chunks * per} * 7;
      const reading = (async () => {
        const buf = new Uint8Array(1 << 16);
        let got = 0;
        while (got < want) {
          const n = await c.read(buf);
          if (n === null) throw new Error("closed early");
          got += n;
        }
      })();
      const chunk = new TextEncoder().encode("PING\\r\\n".repeat(${per}));
      for (let i = 0; i < ${chunks}; i++) {
        let off = 0;
        while (off < chunk.length) off += await c.write(chunk.subarray(off));
      }
      await reading;
      c.close();`;
    const child = await new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(child.success, td.decode(child.stderr));
    assert.equal(engine.stats.commands, chunks * per);
    // Ticks that fell while commands were running: a loop that never gave the event loop a turn
    // would show all of them done between two ticks.
    let during = 0;
    for (let i = 1; i < seen.length; i++) {
      if (seen[i] > seen[i - 1] && seen[i - 1] > 0 && seen[i] < chunks * per) during++;
    }
    assert.ok(during >= 3, `ticks during the load: ${during} (${seen.length} ticks)`);
  } finally {
    clearInterval(timer);
    await server.close();
  }
});
