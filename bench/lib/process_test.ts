import assert from "node:assert/strict";
import { allowedCpus, have, median, onCpus, parseCpuList, parseWrk, setCpus } from "./process.ts";

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

Deno.test("parseCpuList reads lists and ranges and refuses anything else", () => {
  assert.deepEqual(parseCpuList("0"), [0]);
  assert.deepEqual(parseCpuList("0-3,6\n"), [0, 1, 2, 3, 6]);
  assert.deepEqual(parseCpuList("5,1-2,2"), [1, 2, 5]);
  for (const bad of ["", "a", "1-", "-1", "3-1", "1,,2", "0x1", "1 - 2", "99999"]) {
    assert.throws(() => parseCpuList(bad), /bad CPU/, bad);
  }
});

Deno.test("onCpus wraps a command in taskset only when given CPUs", () => {
  assert.deepEqual(onCpus(undefined, "python3", ["a.py"]), { cmd: "python3", args: ["a.py"] });
  assert.deepEqual(onCpus([1, 3], "python3", ["a.py", "x"]), {
    cmd: "taskset",
    args: ["-c", "1,3", "python3", "a.py", "x"],
  });
});

// Only on Linux with two CPUs or more and taskset: elsewhere there is nothing to move between.
const cpusNow = allowedCpus();
const canPin = cpusNow !== null && cpusNow.length >= 2 && await have("taskset");

Deno.test({
  name: "setCpus moves every thread of a process to the CPUs given",
  ignore: !canPin,
}, async () => {
  const all = cpusNow!;
  // A child with threads of its own: another Deno, idle until killed.
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "console.log('up'); setInterval(() => {}, 1000)"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  try {
    await reader.read(); // "up": its runtime's threads are running
    const last = all[all.length - 1];
    assert.equal(await setCpus(child.pid, [last]), true);
    assert.deepEqual(allowedCpus(child.pid), [last]);
    const tasks = [...Deno.readDirSync(`/proc/${child.pid}/task`)].map((e) => e.name);
    assert.ok(tasks.length > 1, "a Deno process has more than one thread");
    for (const tid of tasks) assert.deepEqual(allowedCpus(Number(tid)), [last], `thread ${tid}`);
    assert.equal(await setCpus(child.pid, all), true);
    assert.deepEqual(allowedCpus(child.pid), all);
    assert.equal(await setCpus(child.pid, []), false);
  } finally {
    child.kill();
    await reader.cancel();
    await child.status;
  }
});
