/**
 * An I/O worker isolate of io_threads.ts: listens on the RESP port (with SO_REUSEPORT, as every
 * other worker), reads each connection's bytes and hands them to the executing isolate through a
 * ring; writes the replies that come back on its own ring. It parses and runs nothing.
 *
 * @module
 */
import { FRAME, Ring, waitDoorbell } from "./ring.ts";
import { closeQuietly, formatAddr, writeAll } from "./socket.ts";

interface Start {
  hostname: string;
  port: number;
  toMain: import("./ring.ts").RingHandle;
  fromMain: import("./ring.ts").RingHandle;
}

interface Conn {
  conn: Deno.TcpConn;
  /** Writes of this connection, one after the other. */
  writing: Promise<void>;
}

const te = new TextEncoder();
const conns = new Map<number, Conn>();
let listener: Deno.TcpListener | null = null;
let stopping = false;

async function serve(id: number, conn: Deno.TcpConn, toMain: Ring): Promise<void> {
  try {
    conn.setNoDelay(true);
  } catch { /* gone already */ }
  const ra = conn.remoteAddr, la = conn.localAddr;
  await toMain.write(
    id,
    FRAME.OPEN,
    te.encode(JSON.stringify([formatAddr(ra.hostname, ra.port), formatAddr(la.hostname, la.port)])),
  );
  toMain.ring();
  const buf = new Uint8Array(Math.min(64 * 1024, toMain.maxPayload));
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      // Waits while the executor is behind: TCP then slows the client down.
      await toMain.write(id, FRAME.DATA, buf.subarray(0, n));
      toMain.ring();
    }
  } catch { /* reset by the peer, or closed by us */ }
  await toMain.write(id, FRAME.CLOSED, new Uint8Array(0));
  toMain.ring();
}

async function replies(fromMain: Ring): Promise<void> {
  let seen = 0;
  while (!stopping) {
    fromMain.drain((id, type, payload) => {
      const c = conns.get(id);
      if (c === undefined) return;
      if (type === FRAME.REPLY) {
        c.writing = c.writing.then(() => writeAll(c.conn, payload)).catch(() =>
          closeQuietly(c.conn)
        );
      } else if (type === FRAME.CLOSE) {
        c.writing = c.writing.then(() => closeQuietly(c.conn));
      } else if (type === FRAME.FORGET) {
        conns.delete(id);
      }
    });
    seen = await waitDoorbell(fromMain.handle.doorbell, seen, 1000);
  }
}

const scope = self as unknown as Worker;

scope.onmessage = async (e: MessageEvent) => {
  if (e.data === "stop") {
    stopping = true;
    listener?.close();
    for (const c of conns.values()) closeQuietly(c.conn);
    scope.postMessage({ stopped: true });
    return;
  }
  const start = e.data as Start;
  const toMain = Ring.attach(start.toMain), fromMain = Ring.attach(start.fromMain);
  try {
    listener = Deno.listen({
      hostname: start.hostname,
      port: start.port,
      transport: "tcp",
      reusePort: true,
    });
  } catch (err) {
    scope.postMessage({ error: String(err) });
    return;
  }
  scope.postMessage({ listening: listener.addr.port });
  replies(fromMain);
  let next = 1;
  for (;;) {
    let conn: Deno.TcpConn;
    try {
      conn = await listener.accept();
    } catch {
      if (stopping) return;
      continue;
    }
    const id = next++;
    conns.set(id, { conn, writing: Promise.resolve() });
    serve(id, conn, toMain);
  }
};
