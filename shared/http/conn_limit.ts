/**
 * An HTTP server with a cap on open connections. `Deno.serve` has no accept hook, so this one
 * runs its own TCP accept loop in front of a `Deno.serve` listening on a private Unix socket: a
 * connection under the cap is spliced to that socket byte for byte, one over it is answered `503`
 * with a JSON error and closed at once, before any request is read. The extra hop costs some
 * throughput, so services use it only when a cap is configured. The handler sees the Unix
 * socket as the remote address.
 *
 * @module
 */

/** Options of {@link serveWithConnectionLimit}. */
export interface LimitedServeOptions {
  hostname: string;
  port: number;
  /** Connections open at once; the next ones are refused. */
  maxConnections: number;
  onListen?: (addr: Deno.NetAddr) => void;
}

/** The running server. */
export interface LimitedServer {
  readonly addr: Deno.NetAddr;
  /** Connections open now. */
  readonly connections: number;
  /** Connections refused so far. */
  readonly refused: number;
  /** Stops accepting, lets requests in progress finish (Deno.serve's shutdown), closes all. */
  shutdown(): Promise<void>;
  /** Resolves when the accept loop has ended (after shutdown() stops accepting). */
  readonly finished: Promise<void>;
}

/** Serves `handler` on `hostname:port` with at most `maxConnections` connections open. */
export function serveWithConnectionLimit(
  options: LimitedServeOptions,
  handler: Deno.ServeHandler<Deno.UnixAddr>,
): LimitedServer {
  const dir = Deno.makeTempDirSync({ prefix: "conn-limit-" });
  const path = `${dir}/http.sock`;
  const inner = Deno.serve({ transport: "unix", path, onListen() {} }, handler);
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const addr = listener.addr as Deno.NetAddr;
  options.onListen?.(addr);
  const open = new Set<Deno.Conn>();
  let refused = 0;
  const body = JSON.stringify({
    error: {
      code: "too_many_connections",
      message: `more than ${options.maxConnections} connections open; retry later`,
    },
  });
  const refusal = new TextEncoder().encode(
    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n" +
      `connection: close\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
  );
  const close = (c: Deno.Conn) => {
    try {
      c.close();
    } catch {
      // already closed
    }
  };

  const splice = async (conn: Deno.Conn) => {
    let upstream: Deno.Conn | undefined;
    try {
      upstream = await Deno.connect({ transport: "unix", path });
      const up = upstream;
      await Promise.allSettled([
        conn.readable.pipeTo(up.writable),
        up.readable.pipeTo(conn.writable),
      ]);
    } catch {
      // either side went away
    } finally {
      open.delete(conn);
      close(conn);
      if (upstream) close(upstream);
    }
  };

  const finished = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        break; // closed
      }
      if (open.size >= options.maxConnections) {
        refused++;
        conn.write(refusal).catch(() => {}).finally(() => close(conn));
        continue;
      }
      open.add(conn);
      splice(conn);
    }
  })();

  return {
    addr,
    get connections() {
      return open.size;
    },
    get refused() {
      return refused;
    },
    async shutdown() {
      try {
        listener.close();
      } catch {
        // already closed
      }
      await finished;
      await inner.shutdown();
      for (const c of open) close(c);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
    finished,
  };
}
