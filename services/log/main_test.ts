/**
 * The service as a process: every record acknowledged with acks=fsync survives kill -9 during
 * produce at full speed, the log is consistent after recovery, and offsets are never reused.
 */
// Response bodies are read loosely: the assertions check their shape.
// deno-lint-ignore no-explicit-any
type Any = any;
import assert from "node:assert/strict";
import { startDeno } from "../../bench/lib/process.ts";

async function start(dir: string) {
  const svc = await startDeno(
    new URL("./main.ts", import.meta.url).pathname,
    { DATA_DIR: dir, LOG_LEVEL: "warn", ACCESS_LOG: "false" },
    { healthPath: "/readyz" },
  );
  return { child: svc.child, url: svc.url };
}

async function post(url: string, body: unknown): Promise<Any> {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await r.json();
  if (!r.ok) throw new Error(`${r.status} ${JSON.stringify(json)}`);
  return json;
}

Deno.test("log process: kill -9 during produce loses nothing acknowledged; offsets never reused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "log-kill-" });
  try {
    const a = await start(dir);
    await post(`${a.url}/topics`, { name: "t", partitions: 2 });
    // Producers at full speed, acks=fsync; acknowledged (partition, offset) -> value.
    const acked = new Map<string, string>();
    let stop = false, seq = 0;
    const producer = async (id: number) => {
      while (!stop) {
        const values = Array.from({ length: 20 }, () => `p${id}-${seq++}-${"x".repeat(200)}`);
        try {
          const r = await post(`${a.url}/topics/t`, {
            acks: "fsync",
            records: values.map((value) => ({ value })),
          });
          r.offsets.forEach((o: { partition: number; offset: number }, i: number) => {
            acked.set(`${o.partition}:${o.offset}`, values[i]);
          });
        } catch {
          return; // the process died under us
        }
      }
    };
    const running = Array.from({ length: 8 }, (_, i) => producer(i));
    while (acked.size < 3000) await new Promise((r) => setTimeout(r, 5));
    a.child.kill("SIGKILL");
    stop = true;
    await a.child.status;
    await Promise.all(running);

    const b = await start(dir);
    try {
      const hw: number[] = [];
      for (const p of [0, 1]) {
        const seen = new Map<number, string>();
        let offset = 0, last = -1;
        while (true) {
          const r = await fetch(
            `${b.url}/topics/t/partitions/${p}/records?offset=${offset}&format=json&max_bytes=1048576`,
          ).then((x) => x.json());
          for (const rec of r.records) {
            assert.ok(rec.offset > last, "offsets increase");
            last = rec.offset;
            seen.set(rec.offset, rec.value);
          }
          if (r.next_offset === offset) break;
          offset = r.next_offset;
          if (offset >= r.high_watermark) {
            hw[p] = r.high_watermark;
            break;
          }
        }
        for (const [k, v] of acked) {
          const [pp, o] = k.split(":").map(Number);
          if (pp === p) assert.equal(seen.get(o), v, `acknowledged ${k} is there`);
        }
      }
      // New records get offsets past everything handed out before the crash.
      const maxAcked = [0, 1].map((p) =>
        Math.max(
          -1,
          ...[...acked.keys()].filter((k) => k.startsWith(`${p}:`)).map((k) =>
            Number(k.split(":")[1])
          ),
        )
      );
      for (const p of [0, 1]) {
        const r = await post(`${b.url}/topics/t/partitions/${p}`, {
          records: [{ value: "after" }],
        });
        assert.ok(r.offsets[0].offset > maxAcked[p]);
        assert.ok(r.offsets[0].offset >= hw[p]);
      }
    } finally {
      b.child.kill("SIGTERM");
      await b.child.status;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
