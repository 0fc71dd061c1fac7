/**
 * A minimal proto3 wire-format codec: just what the KV Connect data-path messages use
 * (varints, 64-bit varints, length-delimited fields), plus skipping of the other wire types
 * so that fields added to the schema later do not break decoding.
 *
 * The reader treats its input as hostile: every read is bounds-checked and failures throw a
 * {@link ProtobufError} that names the message and field, never a `RangeError` from a typed
 * array or an infinite loop. Varints longer than 10 bytes, or whose 10th byte carries more
 * than the 64th bit, are rejected, as are lengths running past the end of the enclosing
 * message, field number 0, and the deprecated group wire types.
 *
 * @module
 */

/** Wire types of the protobuf encoding. */
export const WireType = {
  VARINT: 0,
  FIXED64: 1,
  LEN: 2,
  START_GROUP: 3,
  END_GROUP: 4,
  FIXED32: 5,
} as const;

const WIRE_NAMES = ["varint", "fixed64", "length-delimited", "start-group", "end-group", "fixed32"];

/** The highest field number protobuf allows (2^29 - 1). */
const MAX_FIELD = 0x1fffffff;

/**
 * Most entries a repeated field may have. The KV Connect limits are far lower (1000 mutations,
 * 1000 entries per read), but the limits are checked after decoding: without a cap, a 1 MiB
 * body of two-byte empty messages would become half a million objects first.
 */
export const MAX_REPEATED_ENTRIES = 10_000;

/** Malformed protobuf input: truncated, over-long, of the wrong wire type, and so on. */
export class ProtobufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtobufError";
  }
}

/** A 64-bit varint as two unsigned 32-bit halves (no BigInt on the hot path). */
export interface Varint64 {
  lo: number;
  hi: number;
}

/**
 * Reads protobuf fields from a byte array. `message` names the message being read, for error
 * messages; nested messages get their own reader over a subarray (see {@link Reader.nested}).
 */
export class Reader {
  readonly #buf: Uint8Array;
  #pos: number;
  readonly #end: number;
  readonly #message: string;
  /** The field the last {@link Reader.tag} returned, for error messages. */
  #field = 0;

  constructor(buf: Uint8Array, message: string, start = 0, end = buf.length) {
    this.#buf = buf;
    this.#pos = start;
    this.#end = end;
    this.#message = message;
  }

  /** True while fields remain. */
  more(): boolean {
    return this.#pos < this.#end;
  }

  /** Throws a {@link ProtobufError} about the current field. */
  fail(problem: string): never {
    const where = this.#field === 0 ? this.#message : `${this.#message} field ${this.#field}`;
    throw new ProtobufError(`invalid protobuf: ${where}: ${problem} (at byte ${this.#pos})`);
  }

  /** Reads a varint as 64 bits in two halves. */
  varint64(): Varint64 {
    const buf = this.#buf;
    let lo = 0;
    let hi = 0;
    // Bytes 0-3 fill bits 0-27 of lo, byte 4 straddles lo/hi, bytes 5-9 fill hi.
    for (let i = 0; i < 10; i++) {
      if (this.#pos >= this.#end) this.fail("truncated varint");
      const b = buf[this.#pos++];
      const bits = b & 0x7f;
      if (i < 4) {
        lo |= bits << (7 * i);
      } else if (i === 4) {
        lo |= (bits & 0x0f) << 28;
        hi = bits >>> 4;
      } else if (i === 9) {
        // Only the 64th bit is left; anything more overflows.
        if (b > 1) this.fail("varint overflows 64 bits");
        hi |= bits << 31;
      } else {
        hi |= bits << (7 * i - 32);
      }
      if ((b & 0x80) === 0) return { lo: lo >>> 0, hi: hi >>> 0 };
    }
    return this.fail("varint longer than 10 bytes");
  }

  /** A varint as an unsigned 32-bit number (uint32 fields, lengths are checked apart). */
  uint32(): number {
    return this.varint64().lo;
  }

  /** A varint as int32 (the low 32 bits, signed, as proto3 has it). */
  int32(): number {
    return this.varint64().lo | 0;
  }

  /** A varint as a bool. */
  bool(): boolean {
    const v = this.varint64();
    return v.lo !== 0 || v.hi !== 0;
  }

  /**
   * A varint as int64, converted to a number. Values beyond ±2^53 are refused rather than
   * rounded: the fields read this way are millisecond timestamps.
   */
  int64(): number {
    const { lo, hi } = this.varint64();
    if (hi === 0) return lo;
    const v = BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      this.fail("int64 out of the safe integer range");
    }
    return Number(v);
  }

  /** Reads a length prefix and checks it against what is left. */
  #length(): number {
    const { lo, hi } = this.varint64();
    if (hi !== 0 || lo > this.#end - this.#pos) {
      this.fail(`length ${hi === 0 ? lo : "> 2^32"} runs past the end of the message`);
    }
    return lo;
  }

  /** A length-delimited field's bytes (a view into the input, not a copy). */
  bytes(): Uint8Array {
    const n = this.#length();
    const out = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** A reader over a length-delimited field holding a message named `message`. */
  nested(message: string): Reader {
    const n = this.#length();
    const r = new Reader(this.#buf, message, this.#pos, this.#pos + n);
    this.#pos += n;
    return r;
  }

  /**
   * Reads the next tag. Returns the field number and wire type; refuses field 0, field
   * numbers out of range and the group wire types (proto3 has no groups).
   */
  tag(): { field: number; wire: number } {
    this.#field = 0;
    const { lo, hi } = this.varint64();
    const field = lo >>> 3;
    const wire = lo & 7;
    if (hi !== 0 || field === 0 || field > MAX_FIELD) this.fail(`invalid field number in tag`);
    this.#field = field;
    if (wire === WireType.START_GROUP || wire === WireType.END_GROUP || wire > 5) {
      this.fail(`unsupported wire type ${wire}`);
    }
    return { field, wire };
  }

  /** Appends to a repeated field, refusing more than {@link MAX_REPEATED_ENTRIES}. */
  add<T>(list: T[], item: T): void {
    if (list.length >= MAX_REPEATED_ENTRIES) {
      this.fail(`more than ${MAX_REPEATED_ENTRIES} entries in a repeated field`);
    }
    list.push(item);
  }

  /** Checks that a known field came with the wire type its schema gives it. */
  expect(wire: number, expected: number): void {
    if (wire !== expected) {
      this.fail(`wire type ${WIRE_NAMES[wire] ?? wire}, expected ${WIRE_NAMES[expected]}`);
    }
  }

  /** Skips a field this decoder does not know (forward compatibility). */
  skip(wire: number): void {
    switch (wire) {
      case WireType.VARINT:
        this.varint64();
        return;
      case WireType.FIXED64:
        this.#advance(8);
        return;
      case WireType.LEN: {
        // Not `pos += length()`: that would add to the position from before the prefix.
        const n = this.#length();
        this.#pos += n;
        return;
      }
      case WireType.FIXED32:
        this.#advance(4);
        return;
      default:
        this.fail(`unsupported wire type ${wire}`);
    }
  }

  #advance(n: number): void {
    if (this.#end - this.#pos < n) this.fail("truncated fixed-width field");
    this.#pos += n;
  }

  /**
   * Reads a repeated uint32 field, packed (one length-delimited run) or not (one varint),
   * appending to `into`; parsers must accept both forms.
   */
  repeatedUint32(wire: number, into: number[]): void {
    if (wire === WireType.VARINT) {
      this.add(into, this.uint32());
      return;
    }
    this.expect(wire, WireType.LEN);
    const packed = this.nested(`${this.#message} field ${this.#field} (packed)`);
    while (packed.more()) packed.add(into, packed.uint32());
  }
}

/**
 * Builds a protobuf message. Nested messages are built in their own writer and added with
 * {@link Writer.message}; fields holding their proto3 default are the caller's to leave out.
 */
export class Writer {
  #buf: Uint8Array;
  #pos = 0;

  constructor(initialCapacity = 64) {
    this.#buf = new Uint8Array(initialCapacity);
  }

  #reserve(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
  }

  /** Writes a raw varint of a non-negative safe integer. */
  varint(n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(`varint must be a non-negative safe integer: ${n}`);
    }
    this.#reserve(10);
    while (n > 0x7f) {
      this.#buf[this.#pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.#buf[this.#pos++] = n;
    return this;
  }

  /** Writes a raw varint of a signed 64-bit integer (negative: two's complement, 10 bytes). */
  varintSigned(n: number): this {
    if (n >= 0) return this.varint(n);
    if (!Number.isSafeInteger(n)) throw new RangeError(`not a safe integer: ${n}`);
    let v = BigInt.asUintN(64, BigInt(n));
    this.#reserve(10);
    while (v > 0x7fn) {
      this.#buf[this.#pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.#buf[this.#pos++] = Number(v);
    return this;
  }

  #tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** A uint32/enum/bool field (wire type varint); callers skip proto3 defaults. */
  uint(field: number, value: number): this {
    this.#tag(field, WireType.VARINT);
    return this.varint(value);
  }

  /** An int32/int64 field that may be negative. */
  int(field: number, value: number): this {
    this.#tag(field, WireType.VARINT);
    return this.varintSigned(value);
  }

  /** A bool field. */
  bool(field: number, value: boolean): this {
    return this.uint(field, value ? 1 : 0);
  }

  /** A bytes field. */
  bytes(field: number, value: Uint8Array): this {
    this.#tag(field, WireType.LEN);
    this.varint(value.length);
    this.#reserve(value.length);
    this.#buf.set(value, this.#pos);
    this.#pos += value.length;
    return this;
  }

  /** An embedded message field, from another writer. */
  message(field: number, inner: Writer): this {
    return this.bytes(field, inner.view());
  }

  /** A packed repeated uint32 field (nothing when empty). */
  packedUint32(field: number, values: readonly number[]): this {
    if (values.length === 0) return this;
    const inner = new Writer(values.length * 5);
    for (const v of values) inner.varint(v);
    return this.message(field, inner);
  }

  /** The bytes written so far, as a view into the buffer (valid until the next write). */
  view(): Uint8Array {
    return this.#buf.subarray(0, this.#pos);
  }

  /** The bytes written, as an exactly sized copy. */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#pos);
  }
}
