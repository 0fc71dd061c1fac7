import assert from "node:assert/strict";
import {
  CodecError,
  decodeConfChange,
  decodeConfState,
  decodeEntry,
  decodeHardState,
  decodeMessage,
  decodeSnapshot,
  encodeConfChange,
  encodeConfState,
  encodeEntry,
  encodeHardState,
  encodeMessage,
  encodeSnapshot,
  entrySize,
  uvarintSize,
  Writer,
} from "./codec.ts";
import { SeededRand } from "./_testing/rand.ts";
import {
  ConfChangeType,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  newMessage,
} from "./types.ts";

const b = (s: string) => new TextEncoder().encode(s);

function sampleMessages(): Message[] {
  const ents: Entry[] = [
    { term: 3, index: 10, type: EntryType.Normal, data: b("hello") },
    { term: 3, index: 11, type: EntryType.ConfChange, data: new Uint8Array([1, 2, 3]) },
    { term: 4, index: 12, type: EntryType.Normal, data: new Uint8Array(0) },
  ];
  return [
    newMessage({ type: MessageType.MsgHeartbeat, to: 2, from: 1, term: 7, commit: 9 }),
    newMessage({
      type: MessageType.MsgApp,
      to: 3,
      from: 1,
      term: 2 ** 40,
      logTerm: 2,
      index: Number.MAX_SAFE_INTEGER,
      commit: 1234567,
      entries: ents,
    }),
    newMessage({
      type: MessageType.MsgAppResp,
      to: 1,
      from: 2,
      term: 5,
      index: 99,
      reject: true,
      rejectHint: 50,
      logTerm: 3,
    }),
    newMessage({ type: MessageType.MsgHeartbeatResp, to: 1, from: 2, term: 5, context: b("ctx!") }),
    newMessage({
      type: MessageType.MsgSnap,
      to: 4,
      from: 1,
      term: 6,
      snapshot: {
        data: b("state"),
        metadata: { index: 100, term: 5, confState: { voters: [1, 2, 3], learners: [4] } },
      },
    }),
    newMessage({ type: MessageType.MsgPreVoteResp, to: 1, from: 2, term: 8, reject: true }),
  ];
}

Deno.test("codec round-trips every message type and field", () => {
  for (const m of sampleMessages()) {
    assert.deepEqual(decodeMessage(encodeMessage(m)), m);
  }
  for (let t = 0; t <= MessageType.MsgPreVoteResp; t++) {
    const m = newMessage({ type: t as MessageType, to: 1, from: 2, term: t });
    assert.deepEqual(decodeMessage(encodeMessage(m)), m);
  }
});

Deno.test("codec round-trips entries, hard states, conf states, snapshots and conf changes", () => {
  const e: Entry = { term: 1, index: 2 ** 50, type: EntryType.ConfChange, data: b("x") };
  assert.deepEqual(decodeEntry(encodeEntry(e)), e);
  assert.equal(encodeEntry(e).length, entrySize(e));
  const hs = { term: 9, vote: 3, commit: 77 };
  assert.deepEqual(decodeHardState(encodeHardState(hs)), hs);
  const cs = { voters: [1, 5, 2 ** 52], learners: [] };
  assert.deepEqual(decodeConfState(encodeConfState(cs)), cs);
  const snap = { data: b("d"), metadata: { index: 5, term: 2, confState: cs } };
  assert.deepEqual(decodeSnapshot(encodeSnapshot(snap)), snap);
  const cc = { type: ConfChangeType.AddLearnerNode, nodeId: 42, context: b("addr") };
  assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
});

Deno.test("codec decoded bytes do not alias the input buffer", () => {
  const m = sampleMessages()[1];
  const buf = encodeMessage(m);
  const d = decodeMessage(buf);
  buf.fill(0xff);
  assert.deepEqual(d.entries[0].data, b("hello"));
});

Deno.test("codec varint sizes match the encoding at every boundary", () => {
  for (let bits = 0; bits <= 53; bits++) {
    for (const v of [2 ** bits - 1, 2 ** bits]) {
      if (v > Number.MAX_SAFE_INTEGER) continue;
      const w = new Writer();
      w.uvarint(v, "v");
      assert.equal(w.finish().length, uvarintSize(v), `size of ${v}`);
      const hs = decodeHardState(encodeHardState({ term: v, vote: 1, commit: 0 }));
      assert.equal(hs.term, v);
    }
  }
});

Deno.test("codec encode rejects values that are not safe non-negative integers", () => {
  const bad = [-1, 1.5, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY];
  for (const v of bad) {
    assert.throws(() => encodeHardState({ term: v, vote: 0, commit: 0 }), CodecError);
  }
  assert.throws(
    () => encodeConfChange({ type: ConfChangeType.AddNode, nodeId: 0, context: new Uint8Array() }),
    CodecError,
  );
});

Deno.test("codec decode of every truncation of a valid message throws CodecError", () => {
  for (const m of sampleMessages()) {
    const buf = encodeMessage(m);
    for (let n = 0; n < buf.length; n++) {
      assert.throws(() => decodeMessage(buf.subarray(0, n)), CodecError, `prefix ${n}`);
    }
  }
});

Deno.test("codec decode rejects trailing bytes, unknown versions, types and flags", () => {
  const buf = encodeMessage(sampleMessages()[0]);
  const withTrailing = new Uint8Array([...buf, 0]);
  assert.throws(() => decodeMessage(withTrailing), /trailing/);
  const badVersion = buf.slice();
  badVersion[0] = 2;
  assert.throws(() => decodeMessage(badVersion), /version/);
  const badType = buf.slice();
  badType[1] = 19;
  assert.throws(() => decodeMessage(badType), /unknown type/);
  const badFlags = buf.slice();
  badFlags[2] = 0x80;
  assert.throws(() => decodeMessage(badFlags), /flags/);
  assert.throws(() => decodeEntry(new Uint8Array([7, 0, 0, 0])), /entry type/);
  assert.throws(() => decodeConfChange(new Uint8Array([9, 1, 0])), /conf change/);
  assert.throws(() => decodeConfState(new Uint8Array([1, 0, 0])), /positive/);
});

Deno.test("codec decode rejects overlong, non-canonical and out-of-range varints", () => {
  // 9-byte varint
  assert.throws(
    () =>
      decodeHardState(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0])),
    /longer than 8 bytes/,
  );
  // non-canonical: 0 encoded in two bytes
  assert.throws(() => decodeHardState(new Uint8Array([0x80, 0x00, 0, 0])), /non-canonical/);
  // 8-byte varint above 2^53-1
  assert.throws(
    () => decodeHardState(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0])),
    /2\^53-1/,
  );
});

Deno.test("codec decode of hostile counts and lengths fails fast without allocating", () => {
  // A message claiming 2^50 entries in a 20-byte buffer.
  const w = new Writer();
  w.u8(1); // version
  w.u8(MessageType.MsgApp);
  w.u8(0);
  for (let i = 0; i < 7; i++) w.uvarint(1, "f");
  w.uvarint(2 ** 50, "entries");
  const hostile = w.finish();
  const t0 = performance.now();
  assert.throws(() => decodeMessage(hostile), /count .* exceeds remaining/);
  // An entry claiming a 2^52-byte payload.
  const w2 = new Writer();
  w2.u8(0);
  w2.uvarint(1, "t");
  w2.uvarint(1, "i");
  w2.uvarint(2 ** 52, "len");
  assert.throws(() => decodeEntry(w2.finish()), /length .* exceeds remaining/);
  // A conf state claiming 2^40 voters.
  const w3 = new Writer();
  w3.uvarint(2 ** 40, "n");
  assert.throws(() => decodeConfState(w3.finish()), /exceeds remaining/);
  assert.ok(performance.now() - t0 < 100, "hostile input is rejected quickly");
});

Deno.test("codec decode of random and mutated bytes either succeeds or throws CodecError", () => {
  const rng = new SeededRand(42);
  const valid = sampleMessages().map(encodeMessage);
  const decoders = [decodeMessage, decodeEntry, decodeSnapshot, decodeConfChange, decodeHardState];
  for (let i = 0; i < 20_000; i++) {
    let buf: Uint8Array;
    if (i % 2 === 0) {
      buf = new Uint8Array(rng.nextInt(64));
      for (let k = 0; k < buf.length; k++) buf[k] = rng.nextInt(256);
    } else {
      buf = rng.pick(valid).slice();
      const flips = 1 + rng.nextInt(4);
      for (let k = 0; k < flips && buf.length > 0; k++) {
        buf[rng.nextInt(buf.length)] = rng.nextInt(256);
      }
    }
    for (const decode of decoders) {
      try {
        decode(buf);
      } catch (e) {
        if (!(e instanceof CodecError)) throw new Error(`non-codec error ${e} for ${buf}`);
      }
    }
  }
});
