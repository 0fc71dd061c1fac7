import assert from "node:assert/strict";
import { formatDurationMs, parseDurationMs } from "./duration.ts";

Deno.test("parseDurationMs reads k6 duration strings", () => {
  assert.equal(parseDurationMs("500ms"), 500);
  assert.equal(parseDurationMs("10s"), 10_000);
  assert.equal(parseDurationMs("1m30s"), 90_000);
  assert.equal(parseDurationMs("1h"), 3_600_000);
  assert.equal(parseDurationMs("2.5s"), 2_500);
  assert.equal(parseDurationMs("3"), 3_000);
  assert.equal(parseDurationMs(4), 4_000);
});

Deno.test("parseDurationMs rejects garbage", () => {
  assert.throws(() => parseDurationMs("10x"));
  assert.throws(() => parseDurationMs(""));
  assert.throws(() => parseDurationMs(-1));
});

Deno.test("formatDurationMs round-trips common values", () => {
  for (const text of ["250ms", "10s", "1m30s", "2m"]) {
    assert.equal(formatDurationMs(parseDurationMs(text)), text);
  }
});
