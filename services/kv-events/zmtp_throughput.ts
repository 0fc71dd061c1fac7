/**
 * Throughput check for {@link ZmqSubscriber} (not a test): a publisher sends `--messages` messages
 * `[b"kv@pod@m", 8-byte BE seq, payload]` as fast as it can and this reports how many per second
 * reached `onMessage`, the CPU time this process spent, and whether any seq was missing.
 *
 * - `--source pyzmq` (default): a pyzmq PUB (`/usr/bin/python3`, SNDHWM 0 so nothing is dropped);
 *   the figure is bounded by Python's send loop as much as by the subscriber.
 * - `--source raw`: a plain Python socket replays a pre-encoded ZMTP stream with `sendall`, which
 *   measures the subscriber alone.
 *
 * `deno run -A services/kv-events/zmtp_throughput.ts [--messages 500000] [--payload 200]
 * [--source pyzmq|raw]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { ZmqSubscriber } from "./zmtp.ts";

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "500000" },
    payload: { type: "string", default: "200" },
    source: { type: "string", default: "pyzmq" },
  },
});
const N = Number(values.messages);
const PAYLOAD = Number(values.payload);
const SOURCE = values.source;
if (!(N > 0) || !(PAYLOAD >= 0) || (SOURCE !== "pyzmq" && SOURCE !== "raw")) {
  console.error("usage: --messages N --payload BYTES --source pyzmq|raw");
  Deno.exit(2);
}

/** Prints `ready <port>`; sends `kv@sync` until stdin says `start`, then the run and `kv@end`. */
const PYZMQ = `
import sys, zmq, select, time
n, size = int(sys.argv[1]), int(sys.argv[2])
pub = zmq.Context().socket(zmq.PUB)
pub.setsockopt(zmq.SNDHWM, 0)
pub.setsockopt(zmq.LINGER, 0)
port = pub.bind_to_random_port("tcp://127.0.0.1")
print("ready", port, flush=True)
while True:
    pub.send_multipart([b"kv@sync", b""])
    if select.select([sys.stdin], [], [], 0.01)[0]:
        if sys.stdin.readline().strip() == "start":
            break
payload = b"p" * size
topic = b"kv@pod@m"
send = pub.send_multipart
t0 = time.perf_counter()
for i in range(n):
    send([topic, i.to_bytes(8, "big"), payload])
send([b"kv@end", n.to_bytes(8, "big"), b""])
print("sent %.0f msg/s" % (n / (time.perf_counter() - t0)), flush=True)
sys.stdin.readline()
`;

/** Prints `ready <port>`; on a connection sends greeting, READY(PUB), the run and `kv@end`. */
const RAW = `
import sys, socket, struct
n, size = int(sys.argv[1]), int(sys.argv[2])
def frame(body, more):
    if len(body) > 255:
        return bytes([2 | more]) + struct.pack(">Q", len(body)) + body
    return bytes([more, len(body)]) + body
def msg(*parts):
    return b"".join(frame(p, 1 if i < len(parts) - 1 else 0) for i, p in enumerate(parts))
greeting = b"\\xff" + b"\\0" * 8 + b"\\x7f" + b"\\x03\\x00" + b"NULL".ljust(20, b"\\0") + b"\\0" * 32
props = bytes([11]) + b"Socket-Type" + struct.pack(">I", 3) + b"PUB"
ready = frame(bytes([5]) + b"READY" + props, 0)
ready = bytes([4]) + ready[1:]
payload = b"p" * size
stream = greeting + ready + b"".join(msg(b"kv@pod@m", i.to_bytes(8, "big"), payload) for i in range(n))
stream += msg(b"kv@end", n.to_bytes(8, "big"), b"")
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print("ready", srv.getsockname()[1], flush=True)
c, _ = srv.accept()
c.sendall(stream)
sys.stdin.readline()
`;

const proc = new Deno.Command("/usr/bin/python3", {
  args: ["-u", "-c", SOURCE === "raw" ? RAW : PYZMQ, String(N), String(PAYLOAD)],
  stdin: "piped",
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const out = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
const stdin = proc.stdin.getWriter();
let pending = "";
async function line(): Promise<string> {
  while (!pending.includes("\n")) {
    const { value, done } = await out.read();
    if (done) throw new Error("publisher exited");
    pending += value;
  }
  const i = pending.indexOf("\n");
  const l = pending.slice(0, i);
  pending = pending.slice(i + 1);
  return l;
}

let synced = false;
let expected = 0;
let missing = 0;
let received = 0;
let t0 = 0;
let t1 = 0;
/** CPU time of this process (user + system, µs) at the first message and at the end. */
const cpuAt = { first: 0, end: 0 };
const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const { promise: done, resolve } = Promise.withResolvers<void>();

const sub = new ZmqSubscriber({
  topics: [new TextEncoder().encode("kv@")],
  onMessage: (frames) => {
    const topic = frames[0];
    // "kv@pod@m" is 8 bytes, "kv@sync" 7, "kv@end" 6.
    if (topic.length === 7) {
      synced = true;
      return;
    }
    const s = frames[1];
    const seq = (s[4] << 24 | s[5] << 16 | s[6] << 8 | s[7]) >>> 0;
    if (topic.length === 6) {
      t1 = performance.now();
      cpuAt.end = cpuNow();
      if (seq !== expected) missing += seq - expected;
      resolve();
      return;
    }
    if (received === 0) {
      t0 = performance.now();
      cpuAt.first = cpuNow();
    }
    received++;
    if (seq !== expected) missing += seq > expected ? seq - expected : 0;
    expected = seq + 1;
  },
  onError: (e, peer) => console.error(`error from ${peer}: ${e.message}`),
});

try {
  const port = Number((await line()).split(" ")[1]);
  sub.connect(`tcp://127.0.0.1:${port}`);
  if (SOURCE === "pyzmq") {
    while (!synced) await new Promise((r) => setTimeout(r, 5));
    await stdin.write(new TextEncoder().encode("start\n"));
  }
  await done;
  const secs = (t1 - t0) / 1000;
  const cpu = (cpuAt.end - cpuAt.first) / 1e6;
  const publisher = SOURCE === "pyzmq" ? ` (publisher: ${await line()})` : "";
  console.log(
    `${SOURCE}: ${received} messages of ${PAYLOAD} B in ${secs.toFixed(3)} s = ` +
      `${Math.round(received / secs).toLocaleString("en")} msg/s received${publisher}; ` +
      `subscriber CPU ${cpu.toFixed(3)} s = ${Math.round(received / cpu).toLocaleString("en")} ` +
      `msg per CPU-second; missing seqs: ${missing}; stats ${JSON.stringify(sub.stats)}`,
  );
} finally {
  await sub.close();
  try {
    proc.kill("SIGKILL");
  } catch {
    // exited
  }
  await stdin.close().catch(() => {});
  while (!(await out.read()).done) {
    // drain
  }
  await proc.status;
}
