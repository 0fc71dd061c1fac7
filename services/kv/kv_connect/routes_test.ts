/**
 * Tests of the KV Connect HTTP endpoints at the wire level (no Deno client): the metadata
 * exchange, header checks, error statuses and bodies, raw protobuf reads and writes, and the
 * framing of watch streams.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { createLogger, createServiceApp } from "@deno-stores/shared/http";
import {
  AtomicWriteStatus,
  decodeAtomicWriteOutput,
  decodeSnapshotReadOutput,
  decodeWatchOutput,
  encodeAtomicWrite,
  encodeSnapshotRead,
  encodeWatch,
  MutationType,
  ValueEncoding,
  type WatchOutput,
} from "./messages.ts";
import { type KvConnectOptions, mountKvConnect } from "./routes.ts";

const TOKEN = "test-token-123";
const DB = "00000000-0000-0000-0000-000000000000";
const bytes = (...b: number[]) => new Uint8Array(b);
const text = (s: string) => new TextEncoder().encode(s);

function setup(options: Partial<KvConnectOptions> = {}) {
  const app = new Hono();
  const kv = mountKvConnect(app, { token: TOKEN, ...options });
  return { app, kv };
}

function metadata(
  app: Hono,
  body?: unknown,
  token = TOKEN,
  headers: Record<string, string> = {},
  path = "/kv",
) {
  return app.request(`http://localhost${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
}

function dataHeaders(version = "3", extra: Record<string, string> = {}): Record<string, string> {
  return {
    authorization: `Bearer ${TOKEN}`,
    "content-type": "application/x-protobuf",
    "x-denokv-version": version,
    "x-denokv-database-id": DB,
    ...extra,
  };
}

function call(app: Hono, method: string, body: Uint8Array, headers = dataHeaders()) {
  return app.request(`http://localhost/kv/v2/${method}`, {
    method: "POST",
    headers,
    body: body as Uint8Array<ArrayBuffer>,
  });
}

async function expectText(res: Response, status: number, re: RegExp): Promise<void> {
  const body = await res.text();
  assert.equal(res.status, status, body);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  assert.match(body, re);
}

const setMutation = (key: Uint8Array, data: Uint8Array) => ({
  key,
  value: { data, encoding: ValueEncoding.BYTES },
  mutationType: MutationType.SET,
  expireAtMs: 0,
  sumMin: bytes(),
  sumMax: bytes(),
  sumClamp: false,
});

Deno.test("KV Connect metadata exchange negotiates the protocol version", async () => {
  const { app } = setup({ now: () => Date.UTC(2030, 0, 1), metadataTtlMs: 60_000 });
  const res = await metadata(app, { supportedVersions: [1, 2, 3] });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(await res.json(), {
    version: 3,
    databaseId: DB,
    endpoints: [{ url: "http://localhost/kv/v2", consistency: "strong" }],
    token: TOKEN,
    expiresAt: "2030-01-01T00:01:00.000Z",
  });
  assert.equal((await (await metadata(app, { supportedVersions: [1, 2] })).json()).version, 2);
  // The URL given to Deno.openKv may end with a slash.
  const slash = await metadata(app, { supportedVersions: [3] }, TOKEN, {}, "/kv/");
  assert.equal((await slash.json()).endpoints[0].url, "http://localhost/kv/v2");
  // No body: the client speaks version 1 only.
  assert.equal((await (await metadata(app)).json()).version, 1);
  await expectText(await metadata(app, { supportedVersions: [4, 5] }), 400, /no common protocol/);
  await expectText(await metadata(app, "{nope"), 400, /not JSON/);
  await expectText(await metadata(app, { versions: [3] }), 400, /supportedVersions/);
  await expectText(await metadata(app, { supportedVersions: ["3"] }), 400, /supportedVersions/);
  await expectText(await metadata(app, null), 400, /supportedVersions/);
});

Deno.test("KV Connect metadata exchange refuses a missing or wrong token with 401", async () => {
  const { app } = setup();
  const wrong = await metadata(app, { supportedVersions: [3] }, "wrong");
  assert.equal(wrong.headers.get("www-authenticate"), "Bearer");
  await expectText(wrong, 401, /access token/);
  const missing = await app.request("http://localhost/kv", { method: "POST", body: "{}" });
  await expectText(missing, 401, /access token/);
  const basic = await metadata(app, { supportedVersions: [3] }, "", {
    authorization: `Basic ${TOKEN}`,
  });
  assert.equal(basic.status, 401);
  await basic.body?.cancel();
  // The scheme is case-insensitive.
  const lower = await metadata(app, { supportedVersions: [3] }, "", {
    authorization: `bearer ${TOKEN}`,
  });
  assert.equal(lower.status, 200);
  await lower.body?.cancel();
});

Deno.test("KV Connect data path checks the token, version and database id", async () => {
  const { app } = setup();
  const read = encodeSnapshotRead({
    ranges: [{ start: bytes(), end: bytes(0xff), limit: 1, reverse: false }],
  });
  await expectText(
    await call(app, "snapshot_read", read, dataHeaders("3", { authorization: "Bearer nope" })),
    401,
    /token/,
  );
  await expectText(
    await call(app, "snapshot_read", read, dataHeaders("7")),
    400,
    /unsupported protocol version '7'/,
  );
  await expectText(
    await call(
      app,
      "snapshot_read",
      read,
      dataHeaders("3", { "x-denokv-database-id": "11111111-1111-1111-1111-111111111111" }),
    ),
    400,
    /unknown database id/,
  );
  // Version 1 names the database in x-transaction-domain-id and sends no version header.
  const v1 = await call(app, "snapshot_read", read, {
    authorization: `Bearer ${TOKEN}`,
    "x-transaction-domain-id": DB,
  });
  assert.equal(v1.status, 200);
  await v1.body?.cancel();
  const v2 = await call(app, "snapshot_read", read, dataHeaders("2"));
  assert.equal(v2.status, 200);
  await v2.body?.cancel();
});

Deno.test("KV Connect data path answers bad protobuf and oversized bodies", async () => {
  const { app } = setup({ bodyLimitBytes: 100 });
  await expectText(
    await call(app, "atomic_write", bytes(0x0a, 0x05, 1)),
    400,
    /invalid protobuf: AtomicWrite.*past the end/,
  );
  await expectText(await call(app, "snapshot_read", bytes(0x08)), 400, /invalid protobuf/);
  await expectText(await call(app, "atomic_write", new Uint8Array(101)), 413, /exceeds 100 bytes/);
  // A valid message that breaks a limit is a 400 too.
  const tooMany = encodeSnapshotRead({
    ranges: Array.from(
      { length: 11 },
      () => ({ start: bytes(), end: bytes(1), limit: 1, reverse: false }),
    ),
  });
  await expectText(await call(app, "snapshot_read", tooMany), 400, /too many ranges/);
});

Deno.test("KV Connect data path reads and writes raw protobuf", async () => {
  const { app } = setup();
  const w = await call(
    app,
    "atomic_write",
    encodeAtomicWrite({
      checks: [{ key: text("a"), versionstamp: bytes() }],
      mutations: [setMutation(text("a"), text("1")), setMutation(text("b"), text("2"))],
      enqueues: [],
    }),
  );
  assert.equal(w.headers.get("content-type"), "application/x-protobuf");
  const out = decodeAtomicWriteOutput(new Uint8Array(await w.arrayBuffer()));
  assert.deepEqual(out, {
    status: AtomicWriteStatus.SUCCESS,
    versionstamp: bytes(0, 0, 0, 0, 0, 0, 0, 1, 0, 0),
    failedChecks: [],
  });

  const again = await call(
    app,
    "atomic_write",
    encodeAtomicWrite({
      checks: [{ key: text("b"), versionstamp: bytes(0, 0, 0, 0, 0, 0, 0, 1, 0, 0) }, {
        key: text("a"),
        versionstamp: bytes(),
      }],
      mutations: [setMutation(text("a"), text("x"))],
      enqueues: [],
    }),
  );
  assert.deepEqual(decodeAtomicWriteOutput(new Uint8Array(await again.arrayBuffer())), {
    status: AtomicWriteStatus.CHECK_FAILURE,
    versionstamp: bytes(),
    failedChecks: [1],
  });

  const r = await call(
    app,
    "snapshot_read",
    encodeSnapshotRead({
      ranges: [
        { start: text("a"), end: text("c"), limit: 10, reverse: true },
        { start: text("x"), end: text("y"), limit: 1, reverse: false },
      ],
    }),
  );
  const read = decodeSnapshotReadOutput(new Uint8Array(await r.arrayBuffer()));
  assert.equal(read.status, 1);
  assert.equal(read.readIsStronglyConsistent, true);
  assert.equal(read.readDisabled, false);
  assert.deepEqual(read.ranges.map((x) => x.values.map((e) => new TextDecoder().decode(e.value))), [
    ["2", "1"],
    [],
  ]);
});

/** Reads length-prefixed frames off a watch stream. */
class FrameReader {
  #buf = new Uint8Array(0);
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.getReader();
  }

  /** The next frame's payload (empty for a keepalive), or null at the end of the stream. */
  async next(): Promise<Uint8Array | null> {
    while (true) {
      if (this.#buf.length >= 4) {
        const n = new DataView(this.#buf.buffer, this.#buf.byteOffset).getUint32(0, true);
        if (this.#buf.length >= 4 + n) {
          const frame = this.#buf.slice(4, 4 + n);
          this.#buf = this.#buf.slice(4 + n);
          return frame;
        }
      }
      const { done, value } = await this.#reader.read();
      if (done) return null;
      const merged = new Uint8Array(this.#buf.length + value.length);
      merged.set(this.#buf);
      merged.set(value, this.#buf.length);
      this.#buf = merged;
    }
  }

  /** The next non-keepalive frame, decoded. */
  async output(): Promise<WatchOutput> {
    for (let f = await this.next(); f !== null; f = await this.next()) {
      if (f.length > 0) return decodeWatchOutput(f);
    }
    throw new Error("the watch stream ended");
  }

  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

Deno.test("KV Connect watch streams length-prefixed frames and keepalives", async () => {
  const { app, kv } = setup({ watchPingMs: 20 });
  await call(
    app,
    "atomic_write",
    encodeAtomicWrite({
      checks: [],
      mutations: [setMutation(text("a"), text("1"))],
      enqueues: [],
    }),
  );
  const res = await call(app, "watch", encodeWatch({ keys: [text("a"), text("b")] }));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/octet-stream");
  assert.equal(kv.watchStreams(), 1);
  const frames = new FrameReader(res.body!);

  // The first frame shows every key.
  const first = await frames.output();
  assert.equal(first.status, 1);
  assert.deepEqual(first.keys.map((k) => k.changed), [true, true]);
  assert.deepEqual(first.keys[0].entryIfChanged?.value, text("1"));
  assert.equal(first.keys[1].entryIfChanged, null);

  // Then keepalives (empty frames) while nothing changes.
  assert.deepEqual(await frames.next(), bytes());

  // A write to b sends a frame with both keys' current entries.
  await call(
    app,
    "atomic_write",
    encodeAtomicWrite({
      checks: [],
      mutations: [setMutation(text("b"), text("2")), setMutation(text("z"), text("9"))],
      enqueues: [],
    }),
  );
  const second = await frames.output();
  assert.deepEqual(second.keys.map((k) => k.changed), [true, true]);
  assert.deepEqual(second.keys[0].entryIfChanged?.value, text("1"));
  assert.deepEqual(second.keys[1].entryIfChanged?.value, text("2"));
  assert.deepEqual(
    second.keys[1].entryIfChanged?.versionstamp,
    bytes(0, 0, 0, 0, 0, 0, 0, 2, 0, 0),
  );
  // A write to another key sends nothing but keepalives.
  await call(
    app,
    "atomic_write",
    encodeAtomicWrite({
      checks: [],
      mutations: [setMutation(text("z"), text("10"))],
      enqueues: [],
    }),
  );
  assert.deepEqual(await frames.next(), bytes());

  // Closing the handle ends the stream.
  kv.close();
  while ((await frames.next()) !== null) { /* drain */ }
  assert.equal(kv.watchStreams(), 0);
});

Deno.test("KV Connect watch ends its subscription when the reader cancels", async () => {
  const { app, kv } = setup({ watchPingMs: 10_000 });
  const res = await call(app, "watch", encodeWatch({ keys: [text("a")] }));
  const frames = new FrameReader(res.body!);
  await frames.output();
  await frames.cancel();
  assert.equal(kv.watchStreams(), 0);
  await expectText(
    await call(app, "watch", encodeWatch({ keys: [text("a")] }), dataHeaders("2")),
    400,
    /version 3/,
  );
  await expectText(await call(app, "watch", encodeWatch({ keys: [] })), 400, /at least one key/);
  const limited = setup({ maxWatchStreams: 0 });
  await expectText(
    await call(limited.app, "watch", encodeWatch({ keys: [text("a")] })),
    503,
    /too many watch streams/,
  );
});

Deno.test("KV Connect announces the data path at the public URL", async () => {
  const url = async (app: Hono, headers: Record<string, string> = {}, path = "/kv") =>
    (await (await metadata(app, { supportedVersions: [3] }, TOKEN, headers, path)).json())
      .endpoints[0].url;
  assert.equal(
    await url(setup({ publicUrl: "https://kv.example.com/api/" }).app),
    "https://kv.example.com/api/kv/v2",
  );
  const { app } = setup({ basePath: "/deno-kv/" });
  assert.equal(await url(app, {}, "/deno-kv"), "http://localhost/deno-kv/v2");
  assert.equal(
    await url(
      app,
      { "x-forwarded-proto": "https", "x-forwarded-host": "kv.example.com, proxy" },
      "/deno-kv",
    ),
    "https://kv.example.com/deno-kv/v2",
  );
  assert.equal(
    await url(app, { "x-forwarded-proto": "gopher" }, "/deno-kv"),
    "http://localhost/deno-kv/v2",
  );
  assert.throws(() => setup({ basePath: "/" }), RangeError);
  assert.throws(() => setup({ basePath: "kv" }), RangeError);
  assert.throws(() => setup({ databaseId: "not-a-uuid" }), RangeError);
});

Deno.test("KV Connect with an empty token needs no authentication", async () => {
  const { app } = setup({ token: "" });
  const res = await app.request("http://localhost/kv", {
    method: "POST",
    body: JSON.stringify({ supportedVersions: [3] }),
  });
  const meta = await res.json();
  assert.equal(meta.token, "anonymous");
  const r = await call(
    app,
    "snapshot_read",
    encodeSnapshotRead({ ranges: [] }),
    dataHeaders("3", {
      authorization: "Bearer anonymous",
    }),
  );
  assert.equal(r.status, 200);
  await r.body?.cancel();
});

Deno.test("KV Connect mounts beside the service app's own routes", async () => {
  const logger = createLogger({ service: "kv", sink: () => {}, now: () => 0, level: "off" });
  const service = createServiceApp({ service: "kv", logger, accessLog: false });
  mountKvConnect(service.app, { token: TOKEN });
  const health = await service.request("/healthz");
  assert.equal(health.status, 200);
  await health.body?.cancel();
  const meta = await service.request("/kv", {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ supportedVersions: [1, 2, 3] }),
  });
  assert.equal((await meta.json()).version, 3);
  const read = await service.request("/kv/v2/snapshot_read", {
    method: "POST",
    headers: dataHeaders(),
    body: encodeSnapshotRead({ ranges: [] }) as Uint8Array<ArrayBuffer>,
  });
  assert.equal(read.status, 200);
  await read.body?.cancel();
});
