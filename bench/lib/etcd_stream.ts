/**
 * A client for the etcd v3 JSON gateway's streaming endpoints (`/v3/watch`,
 * `/v3/lease/keepalive`): newline-delimited JSON requests sent as a chunked HTTP/1.1 body over a
 * raw connection, answers read line by line from the chunked response while the request body
 * stays open.
 *
 * Raw because fetch's streamed request bodies do not interoperate with etcd's gateway, which only
 * streams its answers to a client that sent `Expect: 100-continue` (as curl does).
 *
 * @module
 */

/** An open stream. */
export interface EtcdStream {
  /** Sends one request object (one line of the body). */
  send(request: unknown): Promise<void>;
  /** Closes the connection. */
  close(): void;
  /** Resolves when the answer stream ends (closed by either side). */
  readonly done: Promise<void>;
}

/** Opens `path` on `url`; `onLine` gets every non-empty answer line with its arrival time. */
export async function openEtcdStream(
  url: string,
  path: string,
  onLine: (line: string, at: number) => void,
): Promise<EtcdStream> {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port || 80) });
  const enc = new TextEncoder();
  await conn.write(enc.encode(
    `POST ${path} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\n` +
      "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
  ));
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const done = (async () => {
    const dec = new TextDecoder();
    const buf = new Uint8Array(64 * 1024);
    let raw = "";
    let headersDone = false;
    let body = "";
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      const at = performance.now();
      raw += dec.decode(buf.subarray(0, n), { stream: true });
      while (!headersDone) {
        const end = raw.indexOf("\r\n\r\n");
        if (end < 0) break;
        // A 100 Continue comes first; the real answer follows.
        headersDone = !/^HTTP\/1\.1 1\d\d /.test(raw);
        raw = raw.slice(end + 4);
      }
      if (!headersDone) continue;
      for (;;) {
        const eol = raw.indexOf("\r\n");
        if (eol < 0) break;
        const size = parseInt(raw.slice(0, eol), 16);
        if (Number.isNaN(size) || raw.length < eol + 2 + size + 2) break;
        body += raw.slice(eol + 2, eol + 2 + size);
        raw = raw.slice(eol + 2 + size + 2);
      }
      let nl: number;
      while ((nl = body.indexOf("\n")) >= 0) {
        const line = body.slice(0, nl).trim();
        body = body.slice(nl + 1);
        if (line !== "") onLine(line, at);
      }
    }
    close();
  })();
  return {
    async send(request: unknown) {
      const data = enc.encode(JSON.stringify(request) + "\n");
      const head = enc.encode(`${data.length.toString(16)}\r\n`);
      const frame = new Uint8Array(head.length + data.length + 2);
      frame.set(head, 0);
      frame.set(data, head.length);
      frame.set([13, 10], head.length + data.length);
      let off = 0;
      while (off < frame.length) off += await conn.write(frame.subarray(off));
    },
    close,
    done,
  };
}
