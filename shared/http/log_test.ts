import assert from "node:assert/strict";
import { BufferedSink, createLogger, LOG_BUFFER_BYTES_MAX } from "./log.ts";

Deno.test("createLogger writes JSON lines at or above its level", () => {
  const lines: string[] = [];
  const log = createLogger({
    service: "s",
    level: "warn",
    sink: (l) => lines.push(l),
    now: () => 0,
  });
  log.info("hidden");
  log.warn("shown", { n: 1, error: new Error("bad") });
  assert.equal(lines.length, 1);
  const entry = JSON.parse(lines[0]!);
  assert.equal(entry.ts, "1970-01-01T00:00:00.000Z");
  assert.equal(entry.level, "warn");
  assert.equal(entry.service, "s");
  assert.equal(entry.n, 1);
  assert.equal(entry.error.message, "bad");
  assert.equal(log.enabled("info"), false);
});

Deno.test("BufferedSink batches lines until flushed or full", () => {
  const writes: string[] = [];
  const scheduled: Array<() => void> = [];
  const sink = new BufferedSink((t) => writes.push(t), (fn) => scheduled.push(fn));
  sink.sink("a");
  sink.sink("b");
  assert.equal(writes.length, 0);
  assert.equal(scheduled.length, 1);
  scheduled[0]!();
  assert.deepEqual(writes, ["a\nb\n"]);
  sink.sink("x".repeat(LOG_BUFFER_BYTES_MAX));
  assert.equal(writes.length, 2);
});
