import assert from "node:assert/strict";
import { Prng } from "@deno-stores/shared/sim";
import {
  binaryToBytes,
  bytesToBinary,
  DEFAULT_LIMITS,
  RespProtocolError,
  RespReader,
  RespWriter,
  splitArgs,
  UNAUTHENTICATED_MAX_ARGS,
  UNAUTHENTICATED_MAX_BULK_BYTES,
  WordTable,
} from "./resp.ts";
import { encodeCommand, ReplyReader } from "./reply.ts";

const te = new TextEncoder();

/** Everything `input` parses to, fed `step` bytes at a time. */
function parseAll(input: Uint8Array, step = input.length, reader = new RespReader()): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < input.length; i += step) {
    reader.push(input.subarray(i, Math.min(input.length, i + step)));
    for (let c = reader.next(); c !== null; c = reader.next()) if (c.length > 0) out.push(c);
  }
  return out;
}

function protocolError(input: string | Uint8Array, reader = new RespReader()): string {
  try {
    parseAll(typeof input === "string" ? te.encode(input) : input, undefined, reader);
  } catch (e) {
    assert.ok(e instanceof RespProtocolError, String(e));
    return e.message;
  }
  assert.fail("no protocol error");
}

Deno.test("RespReader reads pipelined commands, split at every byte", () => {
  const cmds = [["SET", "k", "v"], ["GET", "k"], ["MSET", "a", "", "b", "\x00\xff\r\n"]];
  const bytes = new Uint8Array(cmds.flatMap((c) => [...encodeCommand(c)]));
  for (const step of [1, 2, 3, 7, bytes.length]) assert.deepEqual(parseAll(bytes, step), cmds);
});

Deno.test("RespReader reads inline commands with Redis's quoting", () => {
  const r = parseAll(te.encode(`PING\r\nSET  k   "a b\\n\\x41"\nGET 'it\\'s'\r\n\r\n  \r\n`));
  assert.deepEqual(r, [["PING"], ["SET", "k", "a b\nA"], ["GET", "it's"]]);
  assert.equal(protocolError(`SET k "abc\r\n`), "unbalanced quotes in request");
  assert.equal(protocolError(`SET k "abc"x\r\n`), "unbalanced quotes in request");
  assert.equal(protocolError(`SET k 'abc\r\n`), "unbalanced quotes in request");
  const b = te.encode(`a "\\x4g" '\\n'`);
  assert.deepEqual(splitArgs(b, 0, b.length), ["a", "x4g", "\\n"]);
});

Deno.test("RespReader refuses malformed lengths and prefixes", () => {
  assert.equal(protocolError("*abc\r\n"), "invalid multibulk length");
  assert.equal(protocolError("*99999999999999999\r\n"), "invalid multibulk length");
  assert.equal(protocolError(`*${DEFAULT_LIMITS.maxArgs + 1}\r\n`), "invalid multibulk length");
  assert.equal(protocolError("*1\r\n$-1\r\n"), "invalid bulk length");
  assert.equal(protocolError("*1\r\n$x\r\n"), "invalid bulk length");
  assert.equal(protocolError("*1\r\n$1.5\r\n"), "invalid bulk length");
  assert.equal(protocolError("*1\r\n$999999999999\r\n"), "invalid bulk length");
  assert.equal(protocolError("*2\r\n$1\r\na\r\n:1\r\n"), "expected '$', got ':'");
  // *0 and *-1 are empty commands: skipped, like Redis.
  assert.deepEqual(parseAll(te.encode("*0\r\n*-1\r\nPING\r\n")), [["PING"]]);
});

Deno.test("RespReader bounds lines, inline requests and the query buffer", () => {
  const long = "x".repeat(70 * 1024);
  assert.equal(protocolError(long), "too big inline request");
  assert.equal(protocolError("*" + "1".repeat(70 * 1024)), "too big mbulk count string");
  assert.equal(protocolError("*1\r\n$" + "1".repeat(70 * 1024)), "too big bulk count string");
  const small = new RespReader({ maxArgs: 100, maxBulkBytes: 1 << 20, maxQueryBufferBytes: 4096 });
  assert.equal(
    protocolError(`*1\r\n$100000\r\n${"x".repeat(5000)}`, small),
    "query buffer limit reached",
  );
  // An announced bulk is not allocated before its bytes come.
  const r = new RespReader();
  r.push(te.encode(`*1\r\n$${DEFAULT_LIMITS.maxBulkBytes}\r\n`));
  assert.equal(r.next(), null);
  assert.ok(r.writable().length < 1 << 20);
  assert.ok(r.capacity < 1 << 20);
});

Deno.test("RespReader applies Redis's limits before AUTH", () => {
  const limits = {
    maxArgs: UNAUTHENTICATED_MAX_ARGS,
    maxBulkBytes: UNAUTHENTICATED_MAX_BULK_BYTES,
    maxQueryBufferBytes: 1 << 30,
  };
  const args = Array.from({ length: 11 }, () => "a");
  assert.equal(
    protocolError(encodeCommand(args), new RespReader(limits)),
    "invalid multibulk length",
  );
  const big = encodeCommand(["AUTH", "x".repeat(UNAUTHENTICATED_MAX_BULK_BYTES + 1)]);
  assert.equal(protocolError(big, new RespReader(limits)), "invalid bulk length");
  assert.deepEqual(parseAll(encodeCommand(["AUTH", "pw"]), 1, new RespReader(limits)), [[
    "AUTH",
    "pw",
  ]]);
});

Deno.test("RespReader reads a 3 MB value and a 100,000-argument command in small reads", () => {
  const value = bytesToBinary(Uint8Array.from({ length: 3 << 20 }, (_, i) => i * 7), 0, 3 << 20);
  const many = ["MSET", ...Array.from({ length: 100_000 }, (_, i) => `k${i}`)];
  const bytes = new Uint8Array([...encodeCommand(["SET", "k", value]), ...encodeCommand(many)]);
  const got = parseAll(bytes, 65536);
  assert.equal(got.length, 2);
  assert.equal(got[0][2], value);
  assert.deepEqual(got[1], many);
});

Deno.test("RespReader survives random garbage: only protocol errors, never a hang", () => {
  const prng = new Prng(12345);
  const rnd = () => prng.next();
  const alphabet = te.encode("*$:+-\r\n0123456789-abc\"' \\x");
  for (let round = 0; round < 2000; round++) {
    const n = Math.floor(rnd() * 200);
    const b = Uint8Array.from({ length: n }, () => alphabet[Math.floor(rnd() * alphabet.length)]);
    const r = new RespReader();
    try {
      parseAll(b, 1 + Math.floor(rnd() * 8), r);
    } catch (e) {
      assert.ok(e instanceof RespProtocolError, `round ${round}: ${e}`);
    }
  }
});

Deno.test("WordTable interns exactly its words", () => {
  const words = ["get", "GET", "set", "SET", "incrbyfloat", "INCRBYFLOAT", "\xff\x00x", "a"];
  const table = new WordTable([...words, "x".repeat(33), ""]);
  // Equal strings made elsewhere (from bytes, as a request's are) give the kept ones back.
  for (const w of words) {
    assert.equal(table.intern(bytesToBinary(binaryToBytes(w), 0, w.length)), w);
  }
  // Case variants, prefixes, extensions, neighbours, the empty word and words past 32 chars.
  for (
    const w of ["Get", "ge", "gett", "INCRBYFLOA", "incrbyfloat ", "\xff\x00y", "", "x".repeat(33)]
  ) {
    assert.equal(table.intern(w), undefined, JSON.stringify(w));
  }
  // A table of many words (every slot probe path): each found, random others not.
  const prng = new Prng(99);
  const many = Array.from({ length: 500 }, (_, i) => `w${i}:${Math.floor(prng.next() * 1e6)}`);
  const big = new WordTable(many);
  for (const w of many) assert.equal(big.intern(w), w);
  for (let i = 0; i < 500; i++) assert.equal(big.intern(`v${i}`), undefined);
});

Deno.test("RespWriter encodes RESP2 and RESP3 the way ReplyReader reads them", () => {
  const w = new RespWriter();
  w.simple("OK");
  w.error("ERR bad\r\nthing");
  w.int(42);
  w.int(-7);
  w.int(2n ** 63n - 1n);
  w.bulk("\x00\xffbin");
  w.bulk("é".repeat(40) + "x".repeat(100)); // a binary string of code points < 256
  w.nil();
  w.nilArray();
  w.array(2);
  w.bulk("a");
  w.int(1);
  w.map(1);
  w.bulk("k");
  w.double(1.5);
  w.bool(true);
  const r = new ReplyReader();
  r.push(w.bytes());
  const got = [];
  for (let v = r.next(); v !== undefined; v = r.next()) got.push(v);
  assert.equal(got.length, 12);
  assert.equal(got[0], "OK");
  assert.equal((got[1] as Error).message, "ERR bad thing");
  assert.deepEqual(got.slice(2, 5), [42, -7, 2n ** 63n - 1n]);
  assert.equal(got[5], "\x00\xffbin");
  assert.deepEqual(binaryToBytes(got[6] as string).length, 140);
  assert.deepEqual(got.slice(7, 10), [null, null, ["a", 1]]);
  assert.deepEqual(got.slice(10), [["k", "1.5"], 1]);
  w.reset();
  w.resp3 = true;
  w.nil();
  w.map(1);
  w.bulk("k");
  w.double(-Infinity);
  w.bool(false);
  w.set(1);
  w.bulk("m");
  r.push(w.bytes());
  assert.equal(r.next(), null);
  assert.deepEqual(r.next(), new Map([["k", -Infinity]]));
  assert.equal(r.next(), false);
  assert.deepEqual(r.next(), ["m"]);
});

Deno.test("ReplyReader refuses replies that would make a client allocate without bound", () => {
  const r = new ReplyReader({ maxBulkBytes: 10, maxElements: 10, maxDepth: 3 });
  r.push(te.encode("$11\r\n"));
  assert.throws(() => r.next(), RespProtocolError);
  const r2 = new ReplyReader({ maxBulkBytes: 10, maxElements: 10, maxDepth: 3 });
  r2.push(te.encode("*11\r\n"));
  assert.throws(() => r2.next(), RespProtocolError);
  const r3 = new ReplyReader({ maxBulkBytes: 10, maxElements: 10, maxDepth: 3 });
  r3.push(te.encode("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"));
  assert.throws(() => r3.next(), RespProtocolError);
  const r4 = new ReplyReader();
  r4.push(te.encode("?x\r\n"));
  assert.throws(() => r4.next(), RespProtocolError);
});

Deno.test("bytesToBinary gives one char per byte at every length, from any offset", () => {
  for (let n = 0; n <= 5000; n = n < 40 ? n + 1 : n * 2) {
    const buf = Uint8Array.from({ length: n + 7 }, (_, i) => (i * 37 + n) & 0xff);
    const s = bytesToBinary(buf, 7, 7 + n);
    assert.equal(s.length, n);
    for (let i = 0; i < n; i++) assert.equal(s.charCodeAt(i), buf[7 + i], `length ${n} at ${i}`);
    assert.deepEqual(binaryToBytes(s), buf.subarray(7));
  }
});
