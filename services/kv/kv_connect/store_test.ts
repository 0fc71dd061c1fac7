/**
 * Tests of the in-memory store's Deno KV semantics: ranges, checks, mutations (set, delete,
 * sum, min, max, versionstamped keys), expiry, versionstamps, limits and watch notifications.
 *
 * @module
 */
import assert from "node:assert/strict";
import { KvConnectError } from "./limits.ts";
import {
  type AtomicWrite,
  type Check,
  type Mutation,
  MutationType,
  type ReadRange,
  ValueEncoding,
} from "./messages.ts";
import {
  decodeCommit,
  encodeCommit,
  type KvCommit,
  MemoryKvConnectStore,
  versionstampOf,
} from "./store.ts";
import { decodeV8Scalar, encodeV8Scalar } from "./v8_scalar.ts";

const bytes = (...b: number[]) => new Uint8Array(b);
const text = (s: string) => new TextEncoder().encode(s);
const T0 = 1_700_000_000_000;

function u64(n: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, n, true);
  return out;
}

function mutation(
  key: Uint8Array,
  type: number,
  value?: { data: Uint8Array; encoding: number },
  extra: Partial<Mutation> = {},
): Mutation {
  return {
    key,
    value: value ?? null,
    mutationType: type,
    expireAtMs: 0,
    sumMin: bytes(),
    sumMax: bytes(),
    sumClamp: false,
    ...extra,
  };
}

const set = (key: Uint8Array, data: Uint8Array, expireAtMs = 0) =>
  mutation(key, MutationType.SET, { data, encoding: ValueEncoding.BYTES }, { expireAtMs });
const del = (key: Uint8Array) => mutation(key, MutationType.DELETE);
const sumU64 = (key: Uint8Array, n: bigint) =>
  mutation(key, MutationType.SUM, { data: u64(n), encoding: ValueEncoding.LE64 });

function write(mutations: Mutation[], checks: Check[] = []): AtomicWrite {
  return { checks, mutations, enqueues: [] };
}

function range(start: Uint8Array, end: Uint8Array, limit = 100, reverse = false): ReadRange {
  return { start, end, limit, reverse };
}

/** The store's value for `key`, or undefined. */
function get(store: MemoryKvConnectStore, key: Uint8Array, now = T0) {
  const end = new Uint8Array(key.length + 1);
  end.set(key);
  return store.snapshotRead({ ranges: [range(key, end, 1)] }, now)[0].values[0];
}

function keysOf(store: MemoryKvConnectStore, r: ReadRange, now = T0): string[] {
  return store.snapshotRead({ ranges: [r] }, now)[0].values.map((e) =>
    new TextDecoder().decode(e.key)
  );
}

function refused(f: () => unknown, re: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof KvConnectError, String(e));
    assert.equal(e.status, 400);
    assert.match(e.message, re);
    return true;
  });
}

Deno.test("KV Connect store reads ranges with limit, reverse and an exclusive end", () => {
  const store = new MemoryKvConnectStore();
  store.atomicWrite(write(["a", "b", "c", "d", "e"].map((k) => set(text(k), text(k)))), T0);
  assert.deepEqual(keysOf(store, range(text("b"), text("d"))), ["b", "c"]);
  assert.deepEqual(keysOf(store, range(text("b"), text("e"), 100, true)), ["d", "c", "b"]);
  assert.deepEqual(keysOf(store, range(text(""), text("z"), 2)), ["a", "b"]);
  assert.deepEqual(keysOf(store, range(text(""), text("z"), 2, true)), ["e", "d"]);
  assert.deepEqual(keysOf(store, range(text("d"), text("b"))), []);
  // Several ranges in one read, answered in request order.
  const out = store.snapshotRead({
    ranges: [range(text("e"), text("f")), range(text("x"), text("y")), range(text("a"), text("b"))],
  }, T0);
  assert.deepEqual(out.map((r) => r.values.length), [1, 0, 1]);
});

Deno.test("KV Connect store gives each commit the next versionstamp", () => {
  const store = new MemoryKvConnectStore();
  const r1 = store.atomicWrite(write([set(text("a"), text("1")), set(text("b"), text("1"))]), T0);
  const r2 = store.atomicWrite(write([set(text("a"), text("2"))]), T0);
  assert.deepEqual(r1, { ok: true, versionstamp: bytes(0, 0, 0, 0, 0, 0, 0, 1, 0, 0) });
  assert.deepEqual(r2, { ok: true, versionstamp: bytes(0, 0, 0, 0, 0, 0, 0, 2, 0, 0) });
  assert.deepEqual(get(store, text("a"))!.versionstamp, versionstampOf(2));
  assert.deepEqual(get(store, text("b"))!.versionstamp, versionstampOf(1));
  assert.deepEqual(versionstampOf(2 ** 40 + 5), bytes(0, 0, 1, 0, 0, 0, 0, 5, 0, 0));
  assert.equal(new MemoryKvConnectStore({ startVersion: 41 }).atomicWrite(write([]), T0).ok, true);
  assert.equal(store.version, 2);
});

Deno.test("KV Connect store applies nothing when a check fails", () => {
  const store = new MemoryKvConnectStore();
  const first = store.atomicWrite(write([set(text("a"), text("1"))]), T0);
  assert.ok(first.ok);
  // Passing checks: a at its versionstamp, b absent.
  const ok = store.atomicWrite(
    write([set(text("a"), text("2")), set(text("b"), text("2"))], [
      { key: text("a"), versionstamp: first.versionstamp },
      { key: text("b"), versionstamp: bytes() },
    ]),
    T0,
  );
  assert.ok(ok.ok);
  // Failing checks: a moved on, b exists now; c is fine. All failures are reported.
  const failed = store.atomicWrite(
    write([set(text("a"), text("3")), set(text("c"), text("3"))], [
      { key: text("a"), versionstamp: first.versionstamp },
      { key: text("c"), versionstamp: bytes() },
      { key: text("b"), versionstamp: bytes() },
    ]),
    T0,
  );
  assert.deepEqual(failed, { ok: false, failedChecks: [0, 2] });
  assert.deepEqual(get(store, text("a"))!.value, text("2"));
  assert.equal(get(store, text("c")), undefined);
  assert.equal(store.version, 2, "a failed write takes no version");
});

Deno.test("KV Connect store deletes, and later mutations see earlier ones", () => {
  const store = new MemoryKvConnectStore();
  store.atomicWrite(write([set(text("a"), text("1"))]), T0);
  store.atomicWrite(write([del(text("a")), del(text("never"))]), T0);
  assert.equal(get(store, text("a")), undefined);
  // set then sum in one write: the sum sees the set.
  store.atomicWrite(
    write([
      mutation(text("n"), MutationType.SET, { data: u64(10n), encoding: ValueEncoding.LE64 }),
      sumU64(text("n"), 5n),
      del(text("gone")),
      set(text("gone"), text("back")),
    ]),
    T0,
  );
  assert.deepEqual(get(store, text("n"))!.value, u64(15n));
  assert.deepEqual(get(store, text("gone"))!.value, text("back"));
});

Deno.test("KV Connect store sums, mins and maxes u64 values", () => {
  const store = new MemoryKvConnectStore();
  const k = text("counter");
  store.atomicWrite(write([sumU64(k, 5n)]), T0);
  assert.deepEqual(get(store, k)!.value, u64(5n));
  assert.equal(get(store, k)!.encoding, ValueEncoding.LE64);
  // Wraps modulo 2^64.
  store.atomicWrite(write([sumU64(k, 2n ** 64n - 3n)]), T0);
  assert.deepEqual(get(store, k)!.value, u64(2n));
  const minMax = (type: number, n: bigint) =>
    mutation(k, type, { data: u64(n), encoding: ValueEncoding.LE64 });
  store.atomicWrite(write([minMax(MutationType.MAX, 10n)]), T0);
  assert.deepEqual(get(store, k)!.value, u64(10n));
  store.atomicWrite(write([minMax(MutationType.MAX, 3n)]), T0);
  assert.deepEqual(get(store, k)!.value, u64(10n));
  store.atomicWrite(write([minMax(MutationType.MIN, 4n)]), T0);
  assert.deepEqual(get(store, k)!.value, u64(4n));
  // On an absent key, min and max store the operand.
  store.atomicWrite(
    write([mutation(text("m"), MutationType.MIN, {
      data: u64(9n),
      encoding: ValueEncoding.LE64,
    })]),
    T0,
  );
  assert.deepEqual(get(store, text("m"))!.value, u64(9n));
});

Deno.test("KV Connect store refuses sums on mismatched types and applies nothing", () => {
  const store = new MemoryKvConnectStore();
  store.atomicWrite(write([set(text("s"), text("not a number"))]), T0);
  const before = store.version;
  refused(
    () => store.atomicWrite(write([set(text("x"), text("1")), sumU64(text("s"), 1n)]), T0),
    /mutations\[1\]: cannot sum a KvU64 into a stored value/,
  );
  refused(
    () =>
      store.atomicWrite(
        write([mutation(text("s"), MutationType.MAX, {
          data: u64(1n),
          encoding: ValueEncoding.LE64,
        })]),
        T0,
      ),
    /cannot 'max' into a stored value that is not a Deno.KvU64/,
  );
  refused(
    () =>
      store.atomicWrite(
        write([mutation(text("n"), MutationType.MIN, {
          data: encodeV8Scalar(1, 16),
          encoding: ValueEncoding.V8,
        })]),
        T0,
      ),
    /'min' needs a Deno.KvU64 operand/,
  );
  assert.equal(get(store, text("x")), undefined, "the set before the refused sum is not applied");
  assert.equal(store.version, before);
});

Deno.test("KV Connect store sums V8 numbers and bigints within bounds", () => {
  const store = new MemoryKvConnectStore();
  const v8 = (v: number | bigint) => ({ data: encodeV8Scalar(v, 16), encoding: ValueEncoding.V8 });
  const sum = (key: string, v: number | bigint, extra: Partial<Mutation> = {}) =>
    mutation(text(key), MutationType.SUM, v8(v), extra);
  const value = (key: string) => decodeV8Scalar(get(store, text(key))!.value)!.value;

  store.atomicWrite(write([sum("n", 1.5)]), T0);
  store.atomicWrite(write([sum("n", 2)]), T0);
  assert.equal(value("n"), 3.5);
  store.atomicWrite(write([sum("b", 10n)]), T0);
  store.atomicWrite(write([sum("b", 2n ** 70n)]), T0);
  assert.equal(value("b"), 2n ** 70n + 10n);

  // Bounds: refused without clamp, clamped with it.
  const bounded = { sumMin: encodeV8Scalar(0, 16), sumMax: encodeV8Scalar(5, 16) };
  refused(() => store.atomicWrite(write([sum("n", 10, bounded)]), T0), /above sum_max/);
  store.atomicWrite(write([sum("n", 10, { ...bounded, sumClamp: true })]), T0);
  assert.equal(value("n"), 5);
  store.atomicWrite(write([sum("n", -100, { ...bounded, sumClamp: true })]), T0);
  assert.equal(value("n"), 0);
  refused(
    () => store.atomicWrite(write([sum("n", 1, { sumMin: encodeV8Scalar(0n, 16) })]), T0),
    /sum_min is a BigInt, the operand a Number/,
  );
  refused(
    () => store.atomicWrite(write([sum("n", 1n)]), T0),
    /cannot sum a BigInt into a stored Number/,
  );

  // A bigint that fits a u64 adds to a KvU64.
  store.atomicWrite(write([sumU64(text("u"), 1n)]), T0);
  store.atomicWrite(write([sum("u", 41n)]), T0);
  assert.deepEqual(get(store, text("u"))!.value, u64(42n));
  refused(
    () =>
      store.atomicWrite(write([sumU64(text("u"), 1n)].map((m) => ({ ...m, sumClamp: true }))), T0),
    /bounds cannot be used with Deno.KvU64/,
  );
  refused(
    () =>
      store.atomicWrite(
        write([
          mutation(text("n"), MutationType.SUM, { data: text("x"), encoding: ValueEncoding.BYTES }),
        ]),
        T0,
      ),
    /a sum operand must be a Deno.KvU64, a number or a bigint/,
  );
});

Deno.test("KV Connect store hides expired entries and purges them", () => {
  const store = new MemoryKvConnectStore();
  store.atomicWrite(
    write([set(text("short"), text("1"), T0 + 1000), set(text("long"), text("1"), T0 + 5000)]),
    T0,
  );
  assert.ok(get(store, text("short"), T0 + 999));
  assert.equal(get(store, text("short"), T0 + 1000), undefined);
  assert.deepEqual(keysOf(store, range(text(""), text("z")), T0 + 1000), ["long"]);
  assert.equal(store.size, 1, "purged on the read");
  // An expired key counts as absent for checks and sums.
  store.atomicWrite(write([sumU64(text("c"), 1n)].map((m) => ({ ...m, expireAtMs: T0 + 10 }))), T0);
  const r = store.atomicWrite(
    write([sumU64(text("c"), 5n)], [{ key: text("c"), versionstamp: bytes() }]),
    T0 + 10,
  );
  assert.ok(r.ok);
  assert.deepEqual(get(store, text("c"), T0 + 10)!.value, u64(5n));
  // Rewriting without an expiry cancels the old one.
  store.atomicWrite(write([set(text("long"), text("2"))]), T0);
  assert.ok(get(store, text("long"), T0 + 10_000));
});

Deno.test("KV Connect store appends versionstamps to keys", () => {
  const store = new MemoryKvConnectStore();
  const r = store.atomicWrite(
    write([mutation(bytes(2, 0x6c, 0), MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY, {
      data: text("v"),
      encoding: ValueEncoding.BYTES,
    })]),
    T0,
  );
  assert.ok(r.ok);
  const [entry] = store.snapshotRead({ ranges: [range(bytes(2), bytes(3))] }, T0)[0].values;
  assert.deepEqual(
    entry.key,
    new Uint8Array([2, 0x6c, 0, 2, ...text("00000000000000010000"), 0]),
  );
});

Deno.test("KV Connect store enforces Deno KV's limits", () => {
  const store = new MemoryKvConnectStore();
  const key = (n: number) => new Uint8Array(n).fill(1);
  refused(
    () => store.atomicWrite(write([set(key(2049), text("v"))]), T0),
    /2049 bytes exceeds the limit of 2048/,
  );
  store.atomicWrite(write([set(key(2048), text("v"))]), T0);
  refused(
    () => store.atomicWrite(write([set(text("k"), new Uint8Array(65537))]), T0),
    /65537 bytes exceeds the limit of 65536/,
  );
  store.atomicWrite(write([set(text("k"), new Uint8Array(65536))]), T0);
  refused(
    () =>
      store.atomicWrite(
        write([], Array.from({ length: 11 }, (_, i) => ({ key: bytes(i), versionstamp: bytes() }))),
        T0,
      ),
    /too many checks/,
  );
  refused(
    () => store.atomicWrite(write(Array.from({ length: 1001 }, (_, i) => del(text(`${i}`)))), T0),
    /too many mutations/,
  );
  refused(
    () =>
      store.atomicWrite(
        write(Array.from({ length: 13 }, (_, i) => set(text(`${i}`), new Uint8Array(65536)))),
        T0,
      ),
    /carries \d+ bytes, at most 819200/,
  );
  refused(
    () => store.atomicWrite(write([], [{ key: text("a"), versionstamp: bytes(1, 2) }]), T0),
    /a versionstamp is 10 bytes/,
  );
  refused(
    () =>
      store.atomicWrite(
        write([
          mutation(text("a"), MutationType.SET, { data: bytes(1), encoding: ValueEncoding.LE64 }),
        ]),
        T0,
      ),
    /LE64 value must be 8 bytes/,
  );
  refused(
    () =>
      store.atomicWrite(
        write([mutation(text("a"), MutationType.SET, { data: bytes(1), encoding: 7 })]),
        T0,
      ),
    /unknown value encoding 7/,
  );
  refused(
    () => store.atomicWrite(write([mutation(text("a"), MutationType.SET)]), T0),
    /needs a value/,
  );
  refused(
    () => store.atomicWrite(write([mutation(text("a"), 42)]), T0),
    /unknown mutation type 42/,
  );
  refused(
    () => store.atomicWrite(write([{ ...set(text("a"), text("v")), expireAtMs: -5 }]), T0),
    /invalid expire_at_ms/,
  );
  refused(
    () =>
      store.atomicWrite({
        checks: [],
        mutations: [],
        enqueues: [{
          payload: bytes(1),
          deadlineMs: 0,
          keysIfUndelivered: [],
          backoffSchedule: [],
        }],
      }, T0),
    /queues are not supported/,
  );
  const r = (n: number) => range(bytes(), bytes(0xff), n);
  refused(
    () => store.snapshotRead({ ranges: Array.from({ length: 11 }, () => r(1)) }, T0),
    /too many ranges/,
  );
  refused(() => store.snapshotRead({ ranges: [r(600), r(401)] }, T0), /ask for 1001 entries/);
  refused(() => store.snapshotRead({ ranges: [r(0)] }, T0), /limit must be positive/);
  refused(() => store.snapshotRead({ ranges: [r(-1)] }, T0), /limit must be positive/);
  refused(
    () => store.snapshotRead({ ranges: [range(key(2050), bytes(0xff), 1)] }, T0),
    /2050 bytes/,
  );
  store.snapshotRead({ ranges: [range(key(2049), bytes(0xff), 1)] }, T0);
  refused(
    () => store.watch({ keys: Array.from({ length: 11 }, (_, i) => bytes(i)) }, () => {}),
    /too many keys/,
  );
  refused(() => store.watch({ keys: [] }, () => {}), /at least one key/);
});

Deno.test("KV Connect store tells watchers about their keys only", () => {
  const store = new MemoryKvConnectStore();
  const calls: string[] = [];
  const stopA = store.watch({ keys: [text("a"), text("b")] }, () => calls.push("ab"));
  store.watch({ keys: [text("c")] }, () => calls.push("c"));
  store.atomicWrite(write([set(text("a"), text("1")), set(text("b"), text("1"))]), T0);
  assert.deepEqual(calls, ["ab"], "one call per commit");
  store.atomicWrite(write([set(text("x"), text("1"))]), T0);
  store.atomicWrite(write([del(text("nothing"))]), T0);
  assert.deepEqual(calls, ["ab"], "untouched keys and no-op deletes call nobody");
  store.atomicWrite(write([set(text("c"), text("1"), T0 + 5)]), T0);
  assert.deepEqual(calls, ["ab", "c"]);
  // Expiry is seen on the next read or write.
  store.snapshotRead({ ranges: [] }, T0 + 5);
  assert.deepEqual(calls, ["ab", "c", "c"]);
  stopA();
  store.atomicWrite(write([set(text("a"), text("2"))]), T0);
  assert.deepEqual(calls, ["ab", "c", "c"]);
  // A failing check notifies nobody.
  store.watch({ keys: [text("a")] }, () => calls.push("a2"));
  store.atomicWrite(
    write([set(text("a"), text("3"))], [{ key: text("a"), versionstamp: bytes() }]),
    T0,
  );
  assert.deepEqual(calls, ["ab", "c", "c"]);
});

Deno.test("KV Connect store keeps copies, not the request's buffers", () => {
  const store = new MemoryKvConnectStore();
  const key = text("k");
  const value = text("v");
  store.atomicWrite(write([set(key, value)]), T0);
  key[0] = 0x7a;
  value[0] = 0x7a;
  assert.deepEqual(get(store, text("k"))!.value, text("v"));
});

Deno.test("KV Connect store: commits replayed into a new store rebuild it, versionstamps included", () => {
  const commits: KvCommit[] = [];
  const a = new MemoryKvConnectStore({
    onCommit: (c) => commits.push(decodeCommit(encodeCommit(c))),
  });
  a.atomicWrite(write([set(text("a"), text("1")), set(text("b"), text("2"), T0 + 1000)]), T0);
  a.atomicWrite(write([sumU64(text("n"), 5n), del(text("a"))]), T0);
  a.atomicWrite(write([sumU64(text("n"), 7n)]), T0);
  assert.equal(commits.length, 3);
  assert.deepEqual(commits[1].deletes, [text("a")]);
  const b = new MemoryKvConnectStore();
  for (const c of commits) b.applyCommit(c);
  const all = range(bytes(), bytes(0xff), 100);
  assert.deepEqual(keysOf(b, all), keysOf(a, all));
  assert.deepEqual(get(b, text("n")), get(a, text("n")));
  assert.equal(b.version, 3);
  // A snapshot of it (commits()) rebuilds the same, and the version counter.
  const c = new MemoryKvConnectStore();
  for (const x of b.commits(T0)) c.applyCommit(decodeCommit(encodeCommit(x)));
  assert.deepEqual(keysOf(c, all), keysOf(a, all));
  assert.deepEqual(get(c, text("b")), get(a, text("b")));
  assert.equal(c.version, 3);
  const next = c.atomicWrite(write([set(text("z"), text("9"))]), T0);
  assert.ok(next.ok && next.versionstamp[7] === 4);
  assert.deepEqual(keysOf(b, all, T0 + 1000), ["n"]); // expiry replayed
});

Deno.test("KV Connect store: a commit record cut short or padded is refused", () => {
  const ok = encodeCommit({
    version: 9,
    puts: [{ key: text("k"), value: text("v"), encoding: 1, expireAtMs: 0 }],
    deletes: [text("d")],
  });
  for (let n = 0; n < ok.length; n++) {
    assert.throws(() => decodeCommit(ok.subarray(0, n)), RangeError);
  }
  assert.throws(() => decodeCommit(new Uint8Array([...ok, 0])), RangeError);
  const huge = ok.slice();
  new DataView(huge.buffer).setUint32(12, 0xffffffff, true); // a key length past the end
  assert.throws(() => decodeCommit(huge), RangeError);
  assert.equal(decodeCommit(ok).version, 9);
});
