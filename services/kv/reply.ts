/**
 * Reading RESP replies (the client side): RESP2 and RESP3 types, incrementally, with limits.
 * Used by our TypeScript client, the HTTP API (which runs commands and turns their replies into
 * JSON) and the tests.
 *
 * Values: bulk and simple strings → binary strings (one char per byte), integers → number (bigint
 * beyond 2^53), null → null, arrays / sets / pushes → arrays, maps → `Map`, doubles → number,
 * booleans → boolean, big numbers → bigint, verbatim strings → their text, errors →
 * {@link ReplyError} values (returned, not thrown: a pipeline's other replies still count).
 *
 * @module
 */
import {
  bytesToBinary,
  MAX_BULK_BYTES_DEFAULT,
  MAX_INLINE_BYTES,
  RespProtocolError,
} from "./resp.ts";

/** An error reply (`-ERR ...`): `code` is its first word. */
export class ReplyError extends Error {
  readonly code: string;
  constructor(message: string) {
    super(message);
    this.name = "ReplyError";
    const sp = message.indexOf(" ");
    this.code = sp < 0 ? message : message.slice(0, sp);
  }
}

/** A decoded reply. */
export type Reply =
  | string
  | number
  | bigint
  | boolean
  | null
  | ReplyError
  | Reply[]
  | Map<Reply, Reply>;

/** Limits on what a server may send (a client must not be made to allocate without bound). */
export interface ReplyLimits {
  maxBulkBytes: number;
  maxElements: number;
  maxDepth: number;
}

export const DEFAULT_REPLY_LIMITS: ReplyLimits = {
  maxBulkBytes: MAX_BULK_BYTES_DEFAULT,
  maxElements: 64 * 1024 * 1024,
  maxDepth: 64,
};

/** Thrown inside the parser when the buffer ends mid-reply. */
const NEED_MORE = Symbol("need more");

/** Reads replies from a byte stream; see the module documentation. */
export class ReplyReader {
  #buf = new Uint8Array(16 * 1024);
  #start = 0;
  #end = 0;
  #pos = 0;
  #limits: ReplyLimits;

  constructor(limits: ReplyLimits = DEFAULT_REPLY_LIMITS) {
    this.#limits = limits;
  }

  /** Appends received bytes. */
  push(chunk: Uint8Array): void {
    if (this.#buf.length - this.#end < chunk.length) {
      const used = this.#end - this.#start;
      if (this.#buf.length - used >= chunk.length) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        let cap = this.#buf.length * 2;
        while (cap - used < chunk.length) cap *= 2;
        const next = new Uint8Array(cap);
        next.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = next;
      }
      this.#start = 0;
      this.#end = used;
    }
    this.#buf.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  /** The next complete reply, or undefined when more bytes are needed. */
  next(): Reply | undefined {
    if (this.#start >= this.#end) return undefined;
    this.#pos = this.#start;
    try {
      const r = this.#value(0);
      this.#start = this.#pos;
      if (this.#start === this.#end) this.#start = this.#end = 0;
      return r;
    } catch (e) {
      if (e === NEED_MORE) return undefined;
      throw e;
    }
  }

  #line(): [number, number] {
    const b = this.#buf;
    for (let i = this.#pos; i + 1 < this.#end; i++) {
      if (b[i] === 13 && b[i + 1] === 10) {
        const r: [number, number] = [this.#pos, i];
        this.#pos = i + 2;
        return r;
      }
    }
    if (this.#end - this.#pos > MAX_INLINE_BYTES) {
      throw new RespProtocolError("reply line too long");
    }
    throw NEED_MORE;
  }

  #text(): string {
    const [a, b] = this.#line();
    return bytesToBinary(this.#buf, a, b);
  }

  #int(): number {
    const s = this.#text();
    if (!/^-?[0-9]+$/.test(s)) throw new RespProtocolError(`bad length or integer '${s}'`);
    return Number(s);
  }

  #count(): number {
    const n = this.#int();
    if (n > this.#limits.maxElements) throw new RespProtocolError(`aggregate of ${n} elements`);
    return n;
  }

  #bulk(): string | null {
    const n = this.#int();
    if (n < 0) return null;
    if (n > this.#limits.maxBulkBytes) throw new RespProtocolError(`bulk string of ${n} bytes`);
    if (this.#end - this.#pos < n + 2) throw NEED_MORE;
    const s = bytesToBinary(this.#buf, this.#pos, this.#pos + n);
    this.#pos += n + 2;
    return s;
  }

  #value(depth: number): Reply {
    if (depth > this.#limits.maxDepth) throw new RespProtocolError("replies nested too deep");
    if (this.#pos >= this.#end) throw NEED_MORE;
    const t = this.#buf[this.#pos++];
    switch (t) {
      case 43: // +
        return this.#text();
      case 45: // -
        return new ReplyError(this.#text());
      case 58: { // :
        const s = this.#text();
        if (!/^-?[0-9]+$/.test(s)) throw new RespProtocolError(`bad integer '${s}'`);
        const v = Number(s);
        return Number.isSafeInteger(v) ? v : BigInt(s);
      }
      case 36: // $
        return this.#bulk();
      case 42: // *
      case 126: // ~
      case 62: { // >
        const n = this.#count();
        if (n < 0) return null;
        const out: Reply[] = [];
        for (let i = 0; i < n; i++) out.push(this.#value(depth + 1));
        return out;
      }
      case 37: { // %
        const n = this.#count();
        const m = new Map<Reply, Reply>();
        for (let i = 0; i < n; i++) {
          const k = this.#value(depth + 1);
          m.set(k, this.#value(depth + 1));
        }
        return m;
      }
      case 124: { // | attributes: read and drop, then the value they describe
        const n = this.#count();
        for (let i = 0; i < 2 * n; i++) this.#value(depth + 1);
        return this.#value(depth);
      }
      case 95: // _
        this.#line();
        return null;
      case 35: { // #
        const s = this.#text();
        if (s !== "t" && s !== "f") throw new RespProtocolError(`bad boolean '${s}'`);
        return s === "t";
      }
      case 44: { // ,
        const s = this.#text().toLowerCase();
        const v = s === "inf" ? Infinity : s === "-inf" ? -Infinity : Number(s);
        if (Number.isNaN(v) && s !== "nan") throw new RespProtocolError(`bad double '${s}'`);
        return v;
      }
      case 40: { // (
        const s = this.#text();
        if (!/^-?[0-9]+$/.test(s)) throw new RespProtocolError(`bad big number '${s}'`);
        return BigInt(s);
      }
      case 61: { // = verbatim: "txt:" + text
        const s = this.#bulk();
        return s === null ? null : s.slice(4);
      }
      case 33: { // ! blob error
        const s = this.#bulk();
        return new ReplyError(s ?? "");
      }
      default:
        throw new RespProtocolError(`unknown reply type '${String.fromCharCode(t)}'`);
    }
  }
}

/** Encodes a command as a RESP array of bulk strings (binary strings: one byte per char). */
export function encodeCommand(args: readonly string[]): Uint8Array {
  let n = 1 + String(args.length).length + 2;
  for (const a of args) n += 1 + String(a.length).length + 2 + a.length + 2;
  const out = new Uint8Array(n);
  let p = 0;
  const ascii = (s: string) => {
    for (let i = 0; i < s.length; i++) out[p++] = s.charCodeAt(i);
  };
  ascii(`*${args.length}\r\n`);
  for (const a of args) {
    ascii(`$${a.length}\r\n`);
    for (let i = 0; i < a.length; i++) out[p++] = a.charCodeAt(i);
    out[p++] = 13;
    out[p++] = 10;
  }
  return out;
}
