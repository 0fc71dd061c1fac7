import assert from "node:assert/strict";
import { median, parseWrk } from "./process.ts";

const SAMPLE = `Running 5s test @ http://127.0.0.1:9000/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.31us  120.50us   5.12ms   90.00%
    Req/Sec    61.50k     2.10k   64.00k    80.00%
  Latency Distribution
     50%  790.00us
     75%  850.00us
     90%  0.95ms
     99%    1.20ms
  306000 requests in 5.00s, 80.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  61200.55
Transfer/sec:     16.00MB
`;

Deno.test("parseWrk reads throughput, percentiles and errors", () => {
  const r = parseWrk(SAMPLE);
  assert.equal(r.requestsPerSec, 61200.55);
  assert.equal(r.latencyMs.p50, 0.79);
  assert.equal(r.latencyMs.p90, 0.95);
  assert.equal(r.latencyMs.p99, 1.2);
  assert.equal(r.requests, 306000);
  assert.equal(r.errors, 3);
  assert.equal(r.non2xx, 7);
});

Deno.test("parseWrk refuses output without a rate", () => {
  assert.throws(() => parseWrk("connection refused"), /Requests\/sec/);
});

Deno.test("median handles odd and even counts", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
});
