import assert from "node:assert/strict";
import { startMock } from "./_testing/mock_tasks.ts";
import { assertLoopback, runScenario } from "./runner.ts";
import { type Scenario, weightedMix } from "./scenario.ts";
import { buildSummary } from "./summary.ts";

const num = (v: unknown) => {
  assert.equal(typeof v, "number");
  return v as number;
};

Deno.test("runScenario against a mock: counts, failures and percentiles agree", async () => {
  const mock = startMock();
  let setupCalls = 0;
  let teardownData: unknown;
  const scenario: Scenario<{ token: string }> = {
    name: "mock-mix",
    description: "75% ok, 25% fail",
    stages: [{ duration: "400ms", target: 4 }, {
      duration: "800ms",
      target: 4,
    }],
    thresholds: {
      http_req_failed: ["rate==0"],
      http_req_duration: ["max<60000"],
    },
    async setup(ctx) {
      setupCalls++;
      const res = await ctx.http.get("/ok");
      assert.equal(res.status, 200);
      return { token: "t" };
    },
    iteration: weightedMix([
      {
        name: "ok",
        weight: 3,
        run: async (vu) => {
          assert.equal(vu.data.token, "t");
          await vu.http.get("/ok", { name: "ok", expect: 200 });
        },
      },
      {
        name: "fail",
        weight: 1,
        run: async (vu) => void (await vu.http.get("/fail", { name: "fail", expect: 200 })),
      },
    ]),
    teardown(_ctx, data) {
      teardownData = data;
      return Promise.resolve();
    },
  };
  try {
    const result = await runScenario(scenario, { baseUrl: mock.url, seed: 1 });
    const summary = buildSummary(result, scenario.thresholds, "mock");
    const m = summary.metrics;
    const served = (mock.counts.get("GET /ok") ?? 0) +
      (mock.counts.get("GET /fail") ?? 0);
    // Setup's request is served but not counted.
    assert.equal(num(m.http_reqs!.count), served - 1);
    assert.ok(
      num(m.http_reqs!.count) > 20,
      `only ${m.http_reqs!.count} requests`,
    );
    assert.equal(
      num(m["http_reqs{name:fail}"]!.count),
      mock.counts.get("GET /fail"),
    );
    assert.equal(
      num(m["http_reqs{name:ok}"]!.count),
      (mock.counts.get("GET /ok") ?? 0) - 1,
    );
    assert.equal(num(m.http_req_failed!.passes), mock.counts.get("GET /fail"));
    assert.equal(
      num(m.http_req_failed!.rate),
      num(m.http_req_failed!.passes) / num(m.http_reqs!.count),
    );
    const share = num(m.http_req_failed!.rate);
    assert.ok(share > 0.1 && share < 0.4, `fail share ${share}`);
    assert.equal(num(m.iterations!.count), num(m.http_reqs!.count));
    assert.equal(
      num(m.checks!.passes) + num(m.checks!.fails),
      num(m.http_reqs!.count),
    );
    assert.equal(num(m.checks!.fails), num(m.http_req_failed!.passes));
    assert.equal(m.vus_max!.value, 4);
    const d = m.http_req_duration!;
    const order = ["min", "med", "p(90)", "p(95)", "p(99)", "max"].map((k) => num(d[k]));
    for (let i = 1; i < order.length; i++) {
      assert.ok(order[i - 1]! <= order[i]!, `${order}`);
    }
    assert.ok(num(d.avg) >= num(d.min) && num(d.avg) <= num(d.max));
    assert.ok(num(m.http_reqs!.rate) > 0);
    assert.equal(
      summary.timeline.reduce((s, p) => s + p.requests, 0),
      num(m.http_reqs!.count),
    );
    assert.equal(summary.latency_histogram.count, num(m.http_reqs!.count));
    assert.deepEqual(summary.thresholds.map((t) => t.ok), [false, true]);
    assert.equal(summary.ok, false);
    assert.deepEqual(m.http_req_failed!.thresholds, {
      "rate==0": { ok: false },
    });
    assert.equal(setupCalls, 1);
    assert.deepEqual(teardownData, { token: "t" });
    assert.equal(summary.meta.aborted, false);
    assert.equal(summary.meta.label, "mock");
  } finally {
    await mock.close();
  }
});

Deno.test("runScenario cuts think time at the stop: one iteration per VU", async () => {
  const mock = startMock();
  try {
    const result = await runScenario({
      name: "think",
      description: "long think time",
      stages: [{ duration: 0, target: 3 }, { duration: "300ms", target: 3 }],
      thinkTime: { fixedMs: 60_000 },
      iteration: async (vu) => void (await vu.http.get("/ok", { name: "ok" })),
    }, { baseUrl: mock.url });
    assert.equal(result.metrics.all.requests, 3);
    assert.equal(mock.counts.get("GET /ok"), 3);
    assert.equal(result.metrics.iterations, 3);
  } finally {
    await mock.close();
  }
});

Deno.test("runScenario stops at once when the signal is already aborted", async () => {
  const mock = startMock();
  const stop = new AbortController();
  stop.abort();
  let tornDown = false;
  try {
    const result = await runScenario({
      name: "aborted",
      description: "",
      stages: [{ duration: "60s", target: 10 }],
      iteration: async (vu) => void (await vu.http.get("/ok")),
      teardown: () => Promise.resolve(void (tornDown = true)),
    }, { baseUrl: mock.url, signal: stop.signal });
    assert.equal(result.aborted, true);
    assert.equal(result.metrics.all.requests, 0);
    assert.equal(tornDown, true);
  } finally {
    await mock.close();
  }
});

Deno.test("runScenario counts transport errors and thrown iterations instead of throwing", async () => {
  const mock = startMock();
  const url = mock.url;
  await mock.close();
  const result = await runScenario({
    name: "refused",
    description: "",
    stages: [{ duration: 0, target: 2 }, { duration: "200ms", target: 2 }],
    thinkTime: { fixedMs: 60_000 },
    async iteration(vu) {
      const res = await vu.http.get("/ok", { name: "ok", expect: 200 });
      assert.equal(res.status, 0);
      throw new Error("iteration failure is counted");
    },
  }, { baseUrl: url });
  assert.equal(result.metrics.all.requests, 2);
  assert.equal(result.metrics.all.failed, 2);
  assert.equal(result.metrics.iterationErrors, 2);
  assert.equal(
    [...result.metrics.errors.values()].reduce((s, v) => s + v, 0),
    2,
  );
});

Deno.test("runScenario reports a failed setup without running VUs", async () => {
  const result = await runScenario({
    name: "bad-setup",
    description: "",
    stages: [{ duration: "10s", target: 1 }],
    setup: () => Promise.reject(new Error("no data")),
    iteration: () => Promise.reject(new Error("must not run")),
  }, { baseUrl: "http://127.0.0.1:9" });
  assert.equal(result.setupError, "no data");
  assert.equal(result.metrics.iterations + result.metrics.iterationErrors, 0);
  assert.equal(buildSummary(result).ok, false);
});

Deno.test("assertLoopback refuses remote targets unless allowed", () => {
  assertLoopback("http://127.0.0.1:8001");
  assertLoopback("http://localhost:8001");
  assertLoopback("http://[::1]:8001");
  assert.throws(() => assertLoopback("http://example.com"));
  assert.throws(() => assertLoopback("http://10.0.0.1:80"));
  assertLoopback("http://example.com", true);
});

Deno.test("HttpClient counts a timeout as a failed request with kind timeout", async () => {
  const { HttpClient } = await import("./http_client.ts");
  const { RunMetrics } = await import("./metrics.ts");
  const { metricsRecorder } = await import("./http_client.ts");
  let release!: () => void;
  const hold = new Promise<void>((resolve) => (release = resolve));
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
  }, async () => {
    await hold;
    return new Response("late");
  });
  try {
    const metrics = new RunMetrics();
    const http = new HttpClient(
      `http://127.0.0.1:${server.addr.port}`,
      metricsRecorder(metrics, () => 0, () => false),
      { timeoutMs: 50 },
    );
    const res = await http.get("/slow", { name: "slow", expect: 200 });
    assert.equal(res.status, 0);
    assert.equal(res.error, "timeout");
    assert.equal(metrics.all.failed, 1);
    assert.equal(metrics.errors.get("timeout"), 1);
    assert.deepEqual(metrics.checks.get("slow status 200"), {
      passes: 0,
      fails: 1,
    });
  } finally {
    release();
    await server.shutdown();
  }
});

Deno.test("runScenario cuts requests still in flight after the graceful stop and skips them", async () => {
  let release!: () => void;
  const hold = new Promise<void>((resolve) => (release = resolve));
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
  }, async () => {
    await hold;
    return new Response("late");
  });
  try {
    const result = await runScenario({
      name: "stuck",
      description: "",
      stages: [{ duration: 0, target: 2 }, { duration: "200ms", target: 2 }],
      iteration: async (vu) => void (await vu.http.get("/stuck", { name: "stuck" })),
    }, { baseUrl: `http://127.0.0.1:${server.addr.port}`, gracefulStopMs: 50 });
    assert.equal(result.metrics.all.requests, 0);
    assert.equal(result.metrics.iterations, 0);
    assert.equal(result.metrics.errors.size, 0);
  } finally {
    release();
    await server.shutdown();
  }
});
