// Response bodies are read loosely: the assertions check their shape.
// deno-lint-ignore no-explicit-any
type Any = any;
import assert from "node:assert/strict";
import { createLogger } from "@deno-stores/shared/http";
import { DenoFileSystem } from "@deno-stores/shared/wal";
import { BufferPool, createLogApp } from "./app.ts";
import { decodeBatches } from "./record_batch.ts";
import { LogService } from "./service.ts";

const logger = createLogger({ service: "log", level: "off", sink: () => {}, now: () => 0 });

async function withLog(
  fn: (ctx: {
    req: (method: string, path: string, body?: unknown) => Promise<{ status: number; json: Any }>;
    raw: (path: string, init?: RequestInit) => Promise<Response>;
    dir: string;
    restart: () => Promise<void>;
    service: () => LogService;
  }) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "log_app_test_" });
  let now = 1_700_000_000_000;
  const open = async () => {
    const log = await LogService.open({
      fs: new DenoFileSystem({ syncIo: true }),
      dataDir: dir,
      offsetsPartitions: 2,
      clock: { now: () => now++ },
      logger: { warn: () => {}, info: () => {} },
    });
    return {
      log,
      app: createLogApp({ topics: log.topics, groups: log.groups, logger, accessLog: false }),
    };
  };
  let cur = await open();
  cur.app.lifecycle.markStarted();
  const raw = (path: string, init?: RequestInit) => cur.app.request(path, init);
  const req = async (method: string, path: string, body?: unknown) => {
    const res = await raw(path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text === "" ? null : JSON.parse(text) };
  };
  try {
    await fn({
      req,
      raw,
      dir,
      restart: async () => {
        await cur.log.close();
        cur = await open();
      },
      service: () => cur.log,
    });
  } finally {
    await cur.log.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("log api: topics admin", async () => {
  await withLog(async ({ req }) => {
    let r = await req("POST", "/topics", {
      name: "orders",
      partitions: 3,
      config: { "retention.ms": 60_000 },
    });
    assert.equal(r.status, 201);
    assert.equal(r.json.partitions.length, 3);
    assert.equal(r.json.config["retention.ms"], 60_000);
    assert.equal(r.json.config["cleanup.policy"], "delete");
    assert.equal((await req("POST", "/topics", { name: "orders", partitions: 1 })).status, 409);
    assert.equal((await req("POST", "/topics", { name: "bad/name" })).status, 400);
    assert.equal((await req("POST", "/topics", { name: ".." })).status, 400);
    assert.equal((await req("POST", "/topics", { name: "__mine" })).status, 403);
    assert.equal((await req("POST", "/topics", { name: "x", partitions: 0 })).status, 400);
    assert.equal(
      (await req("POST", "/topics", { name: "x", config: { "retention.mss": 1 } })).status,
      400,
    );
    r = await req("GET", "/topics");
    assert.deepEqual(r.json.topics.map((t: { name: string }) => t.name), [
      "__consumer_offsets",
      "orders",
    ]);
    assert.equal((await req("GET", "/topics/nope")).status, 404);
    r = await req("PATCH", "/topics/orders/config", { config: { "retention.bytes": 1_000_000 } });
    assert.equal(r.status, 200);
    assert.equal(r.json.config["retention.bytes"], 1_000_000);
    assert.equal(r.json.config["retention.ms"], 60_000);
    assert.equal((await req("DELETE", "/topics/__consumer_offsets")).status, 403);
    assert.equal((await req("DELETE", "/topics/orders")).status, 204);
    assert.equal((await req("GET", "/topics/orders")).status, 404);
    assert.equal((await req("DELETE", "/topics/orders")).status, 404);
    // The name can be used again at once.
    assert.equal((await req("POST", "/topics", { name: "orders" })).status, 201);
  });
});

Deno.test("log api: produce and fetch in every format, keys stick to partitions", async () => {
  await withLog(async ({ req, raw }) => {
    await req("POST", "/topics", { name: "t", partitions: 4 });
    const r = await req("POST", "/topics/t", {
      records: [
        { key: "user-1", value: { n: 1 }, headers: [{ key: "h", value: "x" }] },
        { key: "user-1", value: { n: 2 } },
        { key: "user-2", value: [1, 2, 3] },
        { value: "no key", timestamp: 1234 },
      ],
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const [a, b, , d] = r.json.offsets;
    assert.equal(a.partition, b.partition);
    assert.equal(b.offset, a.offset + 1);
    let f = await req("GET", `/topics/t/partitions/${a.partition}/records?offset=${a.offset}`);
    assert.equal(f.status, 200);
    assert.deepEqual(f.json.records.slice(0, 2).map((x: { value: unknown }) => x.value), [
      { n: 1 },
      { n: 2 },
    ]);
    assert.equal(f.json.records[0].key, "user-1");
    assert.deepEqual(f.json.records[0].headers, [{ key: "h", value: "x" }]);
    assert.equal(f.json.high_watermark, f.json.next_offset);
    f = await req("GET", `/topics/t/partitions/${d.partition}/records?offset=${d.offset}`);
    assert.equal(f.json.records[0].timestamp, 1234);
    assert.equal(f.json.records[0].key, null);

    // Binary and string formats.
    const bin = await req("POST", "/topics/t/partitions/2", {
      format: "binary",
      records: [{ key: "AAEC", value: "/wA=" }],
    });
    assert.equal(bin.json.offsets[0].partition, 2);
    const off = bin.json.offsets[0].offset;
    f = await req("GET", `/topics/t/partitions/2/records?offset=${off}&format=binary`);
    assert.equal(f.json.records[0].key, "AAEC");
    assert.equal(f.json.records[0].value, "/wA=");
    f = await req("GET", `/topics/t/partitions/2/records?offset=${off}`);
    assert.equal(f.status, 422, "0xff00 is not JSON text");
    assert.equal(
      (await req("POST", "/topics/t", { format: "binary", records: [{ value: "@@" }] })).status,
      400,
    );
    const s = await req("POST", "/topics/t/partitions/3", {
      format: "string",
      records: [{ value: "plain" }],
    });
    f = await req(
      "GET",
      `/topics/t/partitions/3/records?offset=${s.json.offsets[0].offset}&format=string`,
    );
    assert.equal(f.json.records[0].value, "plain");

    // Raw batches for clients that decode them.
    const res = await raw(`/topics/t/partitions/${a.partition}/records?offset=0`, {
      headers: { accept: "application/octet-stream" },
    });
    assert.equal(res.headers.get("content-type"), "application/octet-stream");
    const bytes = new Uint8Array(await res.arrayBuffer());
    assert.ok(decodeBatches(bytes, 0).length >= 2);
    const part = await req("GET", `/topics/t/partitions/${a.partition}`);
    assert.equal(res.headers.get("x-high-watermark"), String(part.json.high_watermark));
    assert.equal(res.headers.get("x-next-offset"), String(part.json.high_watermark));
    assert.deepEqual(
      decodeBatches(bytes, 0).slice(0, 2).map((r) => new TextDecoder().decode(r.value!)),
      ['{"n":1}', '{"n":2}'],
    );
  });
});

Deno.test("log api: concurrent JSON fetches through the pooled read buffers each get their own records", async () => {
  await withLog(async ({ req }) => {
    await req("POST", "/topics", { name: "t" });
    const records = Array.from({ length: 200 }, (_, i) => ({ value: `v${i}-${"x".repeat(i)}` }));
    assert.equal((await req("POST", "/topics/t", { format: "string", records })).status, 200);
    for (let round = 0; round < 3; round++) {
      const offsets = Array.from({ length: 24 }, (_, i) => (i * 37 + round * 11) % 200);
      const got = await Promise.all(
        offsets.map((o) =>
          req("GET", `/topics/t/partitions/0/records?offset=${o}&max_bytes=1&format=string`)
        ),
      );
      got.forEach((g, i) => {
        assert.equal(g.status, 200);
        assert.equal(g.json.records[0].offset, offsets[i]);
        assert.equal(g.json.records[0].value, records[offsets[i]].value);
      });
    }
    // A fetch larger than the pooled size reads into its own buffer, and gets it all.
    const all = await req(
      "GET",
      "/topics/t/partitions/0/records?offset=0&max_bytes=4194304&format=string",
    );
    assert.equal(all.json.records.length, 200);
  });
});

Deno.test("log api: JSON fetches stop at max_bytes of keys and values, even inside a batch; raw fetches give whole batches", async () => {
  await withLog(async ({ req, raw: request }) => {
    await req("POST", "/topics", { name: "t" });
    // One request: one batch of ten 100-byte values.
    const records = Array.from({ length: 10 }, (_, i) => ({ value: `${i}`.padEnd(100, "x") }));
    assert.equal((await req("POST", "/topics/t", { format: "string", records })).status, 200);
    const part = await req(
      "GET",
      "/topics/t/partitions/0/records?offset=0&max_bytes=250&format=string",
    );
    assert.deepEqual(part.json.records.map((r: { offset: number }) => r.offset), [0, 1, 2]);
    assert.equal(part.json.next_offset, 3);
    // The rest, from inside the batch.
    const rest = await req("GET", "/topics/t/partitions/0/records?offset=3&format=string");
    assert.deepEqual(rest.json.records.map((r: { offset: number }) => r.offset), [
      3,
      4,
      5,
      6,
      7,
      8,
      9,
    ]);
    assert.equal(rest.json.next_offset, 10);
    // At least one record, however small max_bytes.
    const one = await req(
      "GET",
      "/topics/t/partitions/0/records?offset=5&max_bytes=1&format=string",
    );
    assert.equal(one.json.records.length, 1);
    assert.equal(one.json.next_offset, 6);
    // Raw batches are whole: the consumer decodes the batch and skips what it has.
    const raw = await request("/topics/t/partitions/0/records?offset=3&max_bytes=250", {
      headers: { accept: "application/octet-stream" },
    });
    assert.equal(raw.headers.get("x-next-offset"), "10");
    assert.equal(decodeBatches(new Uint8Array(await raw.arrayBuffer()), 0).length, 10);
  });
});

Deno.test("log api: the read buffer pool lends up to its size and keeps a bounded number", () => {
  const pool = new BufferPool(1024, 2, 16);
  assert.equal(pool.take(2048), undefined, "past the pooled size: no buffer");
  const a = pool.take(1024)!, b = pool.take(10)!, c = pool.take(1);
  assert.equal(c, undefined, "past `keep` lent at once, the read allocates its own");
  assert.equal(a.length, 1040);
  assert.notEqual(a, b);
  pool.give(a);
  pool.give(b);
  pool.give(c);
  pool.give(undefined);
  assert.equal(pool.idle, 2, "at most `keep` kept");
  assert.equal(pool.take(5), b, "the last given back is lent first");
  assert.equal(pool.take(5), a);
  assert.equal(pool.take(5), undefined, "`keep` lent at once: no more buffers");
  pool.give(a);
  assert.equal(pool.take(5), a);
});

Deno.test("log api: errors: unknown partition 404, offset out of range 416, bad input 400", async () => {
  await withLog(async ({ req }) => {
    await req("POST", "/topics", { name: "t", partitions: 2 });
    await req("POST", "/topics/t/partitions/0", { records: [{ value: 1 }, { value: 2 }] });
    assert.equal((await req("GET", "/topics/t/partitions/2/records")).status, 404);
    assert.equal((await req("GET", "/topics/t/partitions/x/records")).status, 404);
    assert.equal((await req("GET", "/topics/u/partitions/0/records")).status, 404);
    const r = await req("GET", "/topics/t/partitions/0/records?offset=3");
    assert.equal(r.status, 416);
    assert.equal(r.json.error.code, "offset_out_of_range");
    assert.equal(
      (await req("GET", "/topics/t/partitions/0/records?offset=2")).json.records.length,
      0,
    );
    assert.equal((await req("GET", "/topics/t/partitions/0/records?offset=-1")).status, 400);
    assert.equal((await req("GET", "/topics/t/partitions/0/records?max_bytes=0")).status, 400);
    assert.equal((await req("GET", "/topics/t/partitions/0/records?bogus=1")).status, 400);
    assert.equal(
      (await req("POST", "/topics/t/partitions/5", { records: [{ value: 1 }] })).status,
      404,
    );
    assert.equal(
      (await req("POST", "/topics/t", { records: [{ value: 1, partition: 9 }] })).status,
      404,
    );
    assert.equal((await req("POST", "/topics/t", { records: [] })).status, 400);
    assert.equal((await req("POST", "/topics/t", "{not json")).status, 400);
    assert.equal(
      (await req("POST", "/topics/t", { records: [{ value: 1, extra: 1 }] })).status,
      400,
    );
    assert.equal(
      (await req("POST", "/topics/__consumer_offsets", { records: [{ value: 1 }] })).status,
      403,
    );
    // Nothing of the refused requests was written.
    const d = await req("GET", "/topics/t");
    assert.deepEqual(d.json.partitions.map((p: { high_watermark: number }) => p.high_watermark), [
      2,
      0,
    ]);
  });
});

Deno.test("log api: big requests split into batches; a record too large fails the whole request", async () => {
  await withLog(async ({ req }) => {
    await req("POST", "/topics", { name: "t", config: { "max.message.bytes": 4096 } });
    const value = "x".repeat(1000);
    const r = await req("POST", "/topics/t", {
      records: Array.from({ length: 40 }, () => ({ value })),
    });
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.json.offsets.map((o: { offset: number }) => o.offset),
      Array.from({ length: 40 }, (_, i) => i),
    );
    const big = await req("POST", "/topics/t", {
      records: [{ value: "ok" }, { value: "y".repeat(5000) }],
    });
    assert.equal(big.status, 413);
    assert.match(big.json.error.message, /^records\[1\]/, "the error names the record");
    assert.equal((await req("GET", "/topics/t/partitions/0")).json.high_watermark, 40);
    // Every limit of the storage layer is checked before anything is written: a key, a header
    // key (in UTF-8 bytes), a header value too big for partition 1 refuses the good record for
    // partition 0 too.
    await req("POST", "/topics", { name: "two", partitions: 2 });
    for (
      const badRecord of [
        { key: "k".repeat(70_000), value: 1, partition: 1 },
        { value: 1, partition: 1, headers: [{ key: "é".repeat(1000), value: 1 }] },
        { value: 1, partition: 1, headers: [{ key: "h", value: "v".repeat(70_000) }] },
        {
          value: 1,
          partition: 1,
          headers: Array.from({ length: 65 }, () => ({ key: "h", value: 1 })),
        },
      ]
    ) {
      const r = await req("POST", "/topics/two", {
        records: [{ value: "ok", partition: 0 }, badRecord],
      });
      assert.ok(r.status === 413 || r.status === 400, `${r.status}`);
    }
    const two = await req("GET", "/topics/two");
    assert.deepEqual(two.json.partitions.map((p: { high_watermark: number }) => p.high_watermark), [
      0,
      0,
    ]);
    // Compacted topics need keys, checked before anything is written.
    await req("POST", "/topics", { name: "c", config: { "cleanup.policy": "compact" } });
    const nk = await req("POST", "/topics/c", { records: [{ key: "k", value: 1 }, { value: 2 }] });
    assert.equal(nk.status, 400);
    assert.match(nk.json.error.message, /^records\[1\]/);
    const wrongType = await req("POST", "/topics/t", { format: "string", records: [{ value: 1 }] });
    assert.equal(wrongType.status, 400);
    assert.match(wrongType.json.error.message, /^records\[0\]\.value: format string/);
    assert.equal((await req("GET", "/topics/c/partitions/0")).json.high_watermark, 0);
  });
});

Deno.test("log api: long poll answers when a record arrives, or at the deadline", async () => {
  await withLog(async ({ req }) => {
    await req("POST", "/topics", { name: "t" });
    const waiting = req("GET", "/topics/t/partitions/0/records?offset=0&max_wait_ms=30000");
    await new Promise((r) => setTimeout(r, 20));
    await req("POST", "/topics/t", { records: [{ value: "late" }] });
    const f = await waiting;
    assert.equal(f.status, 200);
    assert.deepEqual(f.json.records.map((r: { value: unknown }) => r.value), ["late"]);
    const empty = await req("GET", "/topics/t/partitions/0/records?offset=1&max_wait_ms=10");
    assert.deepEqual(empty.json.records, []);
    assert.equal(empty.json.next_offset, 1);
  });
});

Deno.test("log api: offsets by time, consumer groups, and everything after a restart", async () => {
  await withLog(async ({ req, restart }) => {
    await req("POST", "/topics", { name: "t", partitions: 2 });
    await req("POST", "/topics/t/partitions/0", {
      records: [{ value: 1, timestamp: 1000 }, { value: 2, timestamp: 2000 }, {
        value: 3,
        timestamp: 3000,
      }],
    });
    const o = await req("GET", "/topics/t/partitions/0/offsets?timestamp=1500");
    assert.equal(o.json.offset, 1);
    assert.equal(o.json.timestamp, 2000);
    assert.equal(
      (await req("GET", "/topics/t/partitions/0/offsets?timestamp=9999")).json.offset,
      null,
    );
    assert.equal((await req("GET", "/topics/t/partitions/0/offsets?timestamp=-1")).json.offset, 3);
    assert.equal((await req("GET", "/topics/t/partitions/0/offsets?timestamp=-2")).json.offset, 0);

    let c = await req("POST", "/consumers/g1/offsets", {
      offsets: [{ topic: "t", partition: 0, offset: 2 }],
    });
    assert.equal(c.status, 200);
    assert.equal(
      (await req("POST", "/consumers/g1/offsets", {
        offsets: [{ topic: "zz", partition: 0, offset: 2 }],
      })).status,
      404,
    );
    assert.equal(
      (await req("POST", "/consumers/g1/offsets", {
        offsets: [{ topic: "t", partition: 7, offset: 2 }],
      })).status,
      404,
    );
    await req("POST", "/consumers/g2/offsets", {
      offsets: [{ topic: "t", partition: 1, offset: 0, metadata: "m" }],
    });
    c = await req("GET", "/consumers/g1/offsets");
    assert.deepEqual(
      c.json.offsets.map((x: { offset: number; lag: number }) => [x.offset, x.lag]),
      [[2, 1]],
    );
    assert.deepEqual((await req("GET", "/consumers")).json.groups, ["g1", "g2"]);

    await restart();
    assert.deepEqual((await req("GET", "/consumers")).json.groups, ["g1", "g2"]);
    assert.equal((await req("GET", "/consumers/g2/offsets")).json.offsets[0].metadata, "m");
    const f = await req("GET", "/topics/t/partitions/0/records?offset=0");
    assert.deepEqual(f.json.records.map((r: { value: unknown }) => r.value), [1, 2, 3]);
    assert.equal((await req("DELETE", "/consumers/g2")).status, 204);
    assert.equal((await req("DELETE", "/consumers/g2")).status, 404);
    await req("DELETE", "/topics/t");
    assert.deepEqual(
      (await req("GET", "/consumers")).json.groups,
      [],
      "a deleted topic's offsets go",
    );
    await restart();
    assert.deepEqual((await req("GET", "/consumers")).json.groups, []);
    assert.equal((await req("GET", "/topics/t")).status, 404);
  });
});

Deno.test("log api: concurrent settings changes and a delete racing them leave a topic that reopens", async () => {
  await withLog(async ({ req, restart }) => {
    await req("POST", "/topics", { name: "t" });
    const rs = await Promise.all([
      req("PATCH", "/topics/t/config", { config: { "retention.ms": 1000 } }),
      req("PATCH", "/topics/t/config", { config: { "retention.bytes": 5000 } }),
      req("PATCH", "/topics/t/config", { config: { "segment.ms": 60_000 } }),
    ]);
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200]);
    await restart();
    const d = await req("GET", "/topics/t");
    assert.equal(d.json.config["retention.ms"], 1000);
    assert.equal(d.json.config["retention.bytes"], 5000);
    assert.equal(d.json.config["segment.ms"], 60_000);
    await req("POST", "/topics", { name: "u" });
    const [p, del] = await Promise.all([
      req("PATCH", "/topics/u/config", { config: { "retention.ms": 1000 } }),
      req("DELETE", "/topics/u"),
    ]);
    // Changes of a topic run one after another: the change lands before the delete or finds
    // the topic gone.
    assert.ok(p.status === 200 || p.status === 404, `${p.status}`);
    assert.equal(del.status, 204);
    await restart();
    assert.equal((await req("GET", "/topics/u")).status, 404, "a deleted topic stays deleted");
    assert.equal((await req("GET", "/consumers/a%2Fb/offsets")).status, 400);
  });
});
