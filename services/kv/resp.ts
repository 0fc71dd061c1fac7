/**
 * RESP, the Redis serialization protocol: an incremental request reader and a reply writer.
 *
 * Requests are arrays of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or inline commands
 * (`GET k\r\n`, split on spaces with Redis's quoting rules). Arguments come out as binary strings:
 * one char per byte (code 0-255), so that any byte sequence is a key or value and Map lookups
 * work on it; {@link binaryToBytes} turns one back into its bytes.
 *
 * The reader keeps what a partial command has parsed so far (array length, arguments read,
 * pending bulk length), so a 100 MB value arriving in 64 KB reads or a million-argument MSET is
 * parsed once, not once per read. Limits, as Redis has them: a bulk string of at most
 * `maxBulkBytes` (Redis's `proto-max-bulk-len`), at most `maxArgs` arguments, an inline command
 * or a length line of at most 64 KiB, and at most `maxQueryBufferBytes` buffered (Redis's
 * `client-query-buffer-limit`). A connection that is not authenticated yet gets Redis's tighter
 * limits (10 arguments, 16 KiB bulk strings). Breaking a rule throws {@link RespProtocolError}:
 * the server answers `-ERR Protocol error: ...` and closes that connection.
 *
 * @module
 */

/** Redis's default `proto-max-bulk-len`. */
export const MAX_BULK_BYTES_DEFAULT = 512 * 1024 * 1024;
/** Redis's default `client-query-buffer-limit`. */
export const MAX_QUERY_BUFFER_BYTES_DEFAULT = 1024 * 1024 * 1024;
/** Arguments in one command (Redis accepts up to INT_MAX; this bounds memory per command). */
export const MAX_ARGS_DEFAULT = 1024 * 1024;
/** Redis's PROTO_INLINE_MAX_SIZE: an inline command, or a `*N` / `$N` line. */
export const MAX_INLINE_BYTES = 64 * 1024;
/** Limits before AUTH when a password is required (Redis's, for unauthenticated clients). */
export const UNAUTHENTICATED_MAX_ARGS = 10;
export const UNAUTHENTICATED_MAX_BULK_BYTES = 16 * 1024;

/** Limits of a {@link RespReader}. */
export interface RespLimits {
  maxBulkBytes: number;
  maxArgs: number;
  maxQueryBufferBytes: number;
}

export const DEFAULT_LIMITS: RespLimits = {
  maxBulkBytes: MAX_BULK_BYTES_DEFAULT,
  maxArgs: MAX_ARGS_DEFAULT,
  maxQueryBufferBytes: MAX_QUERY_BUFFER_BYTES_DEFAULT,
};

/** The limits of a connection, by whether it has authenticated (see the module documentation). */
export function limitsFor(
  authenticated: boolean,
  maxBulkBytes: number,
  maxQueryBufferBytes: number,
): RespLimits {
  return authenticated ? { maxBulkBytes, maxArgs: MAX_ARGS_DEFAULT, maxQueryBufferBytes } : {
    maxBulkBytes: UNAUTHENTICATED_MAX_BULK_BYTES,
    maxArgs: UNAUTHENTICATED_MAX_ARGS,
    maxQueryBufferBytes,
  };
}

/** Malformed or oversized input: reply `-ERR Protocol error: <message>`, then close. */
export class RespProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RespProtocolError";
  }
}

const CR = 13, LF = 10;
const INITIAL_BYTES = 16 * 1024;

const f = String.fromCharCode;

/**
 * The chars of `buf[start, end)`, one per byte. Up to 32 bytes (command names, most keys): one
 * `fromCharCode` call with the bytes as arguments, the fastest way V8 has to make a short flat
 * string; longer ones in one `apply` per 4 KiB, so that a stored value is one flat string.
 */
export function bytesToBinary(buf: Uint8Array, start: number, end: number): string {
  const b = buf, s = start;
  switch (end - start) {
    case 0:
      return "";
    case 1:
      return f(b[s]);
    case 2:
      return f(b[s], b[s + 1]);
    case 3:
      return f(b[s], b[s + 1], b[s + 2]);
    case 4:
      return f(b[s], b[s + 1], b[s + 2], b[s + 3]);
    case 5:
      return f(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4]);
    case 6:
      return f(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5]);
    case 7:
      return f(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6]);
    case 8:
      return f(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7]);
    case 9:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
      );
    case 10:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
      );
    case 11:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
      );
    case 12:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
      );
    case 13:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
      );
    case 14:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
      );
    case 15:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
      );
    case 16:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
      );
    case 17:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
      );
    case 18:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
      );
    case 19:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
      );
    case 20:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
      );
    case 21:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
      );
    case 22:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
      );
    case 23:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
        b[s + 22],
      );
    case 24:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
        b[s + 22],
        b[s + 23],
      );
    case 25:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
        b[s + 22],
        b[s + 23],
        b[s + 24],
      );
    case 26:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
        b[s + 22],
        b[s + 23],
        b[s + 24],
        b[s + 25],
      );
    case 27:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
        b[s + 22],
        b[s + 23],
        b[s + 24],
        b[s + 25],
        b[s + 26],
      );
    case 28:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
        b[s + 22],
        b[s + 23],
        b[s + 24],
        b[s + 25],
        b[s + 26],
        b[s + 27],
      );
    case 29:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
        b[s + 22],
        b[s + 23],
        b[s + 24],
        b[s + 25],
        b[s + 26],
        b[s + 27],
        b[s + 28],
      );
    case 30:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
        b[s + 22],
        b[s + 23],
        b[s + 24],
        b[s + 25],
        b[s + 26],
        b[s + 27],
        b[s + 28],
        b[s + 29],
      );
    case 31:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
        b[s + 22],
        b[s + 23],
        b[s + 24],
        b[s + 25],
        b[s + 26],
        b[s + 27],
        b[s + 28],
        b[s + 29],
        b[s + 30],
      );
    case 32:
      return f(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
        b[s + 22],
        b[s + 23],
        b[s + 24],
        b[s + 25],
        b[s + 26],
        b[s + 27],
        b[s + 28],
        b[s + 29],
        b[s + 30],
        b[s + 31],
      );
  }
  const n = end - start;
  if (n <= 4096) {
    return f.apply(null, buf.subarray(start, end) as unknown as number[]);
  }
  const parts: string[] = [];
  for (let i = start; i < end; i += 4096) {
    const j = Math.min(end, i + 4096);
    parts.push(f.apply(null, buf.subarray(i, j) as unknown as number[]));
  }
  return parts.join("");
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The bytes of a binary string (chars above 255 are not binary strings: they keep their low byte). */
export function binaryToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  writeBinary(out, 0, s);
  return out;
}

/** Writes binary string `s` at `out[at]` (room for `s.length` bytes); returns the end. */
export function writeBinary(out: Uint8Array, at: number, s: string): number {
  const n = s.length;
  if (n > 64) {
    // Mostly ASCII: the native UTF-8 encoder writes the same bytes, much faster.
    const r = encoder.encodeInto(s, out.subarray(at, at + n));
    if (r.read === n && r.written === n) return at + n;
  }
  for (let i = 0; i < n; i++) out[at + i] = s.charCodeAt(i);
  return at + n;
}

/** UTF-8 text as a binary string (for replies built from JS strings). */
export function utf8ToBinary(s: string): string {
  // deno-lint-ignore no-control-regex
  if (/^[\x00-\x7f]*$/.test(s)) return s;
  const b = encoder.encode(s);
  return bytesToBinary(b, 0, b.length);
}

/** A binary string read as UTF-8 (for names and messages shown to people). */
export function binaryToUtf8(s: string): string {
  // deno-lint-ignore no-control-regex
  if (/^[\x00-\x7f]*$/.test(s)) return s;
  return decoder.decode(binaryToBytes(s));
}

/** Longest word a {@link WordTable} holds (command names are at most 16 bytes). */
const WORD_MAX_CHARS = 32;

/**
 * A fixed set of words (command names), each kept as the very string object the table was built
 * from: {@link intern} maps an equal string to it. A Map lookup with a string just made from a
 * request's bytes hashes that string first (a call into V8's runtime: about 70 ns here, more than
 * the rest of a GET's parsing); a kept string carries its hash already. The table's own hash reads
 * three chars and the length; the table is at most a quarter full, which keeps probes short.
 */
export class WordTable {
  readonly #slots: (string | undefined)[];
  readonly #mask: number;

  constructor(words: Iterable<string>) {
    const list = [...new Set(words)].filter((w) => w.length > 0 && w.length <= WORD_MAX_CHARS);
    let size = 16;
    while (size < list.length * 4) size *= 2;
    this.#slots = new Array<string | undefined>(size).fill(undefined);
    this.#mask = size - 1;
    for (const w of list) {
      let i = WordTable.#hash(w) & this.#mask;
      while (this.#slots[i] !== undefined) i = (i + 1) & this.#mask;
      this.#slots[i] = w;
    }
  }

  /** The kept string equal to `s`, or undefined. */
  intern(s: string): string | undefined {
    const n = s.length;
    if (n === 0 || n > WORD_MAX_CHARS) return undefined;
    const slots = this.#slots, mask = this.#mask;
    for (let i = WordTable.#hash(s) & mask;; i = (i + 1) & mask) {
      const w = slots[i];
      if (w === undefined || w === s) return w;
    }
  }

  /** Length, first, middle and last char, mixed (a non-empty string). */
  static #hash(s: string): number {
    const n = s.length;
    const x = n ^ (s.charCodeAt(0) << 8) ^ (s.charCodeAt(n >> 1) << 4) ^
      (s.charCodeAt(n - 1) << 16);
    return Math.imul(x, 0x9e3779b1) >>> 8;
  }
}

/** Reads commands from a connection's bytes; see the module documentation. */
export class RespReader {
  #buf = new Uint8Array(INITIAL_BYTES);
  #start = 0;
  #end = 0;
  #limits: RespLimits;
  /** The command being read (null between commands). */
  #args: string[] | null = null;
  /** Arguments still to read of it. */
  #need = 0;
  /** Length of the bulk string being read, or -1 while its `$` line is awaited. */
  #bulk = -1;

  constructor(limits: RespLimits = DEFAULT_LIMITS) {
    this.#limits = limits;
  }

  set limits(limits: RespLimits) {
    this.#limits = limits;
  }

  /** Bytes received and not yet consumed. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Bytes of buffer held (for CLIENT LIST's qbuf and the memory report). */
  get capacity(): number {
    return this.#buf.length;
  }

  /** True while a command is partly read. */
  get partial(): boolean {
    return this.#args !== null || this.#end > this.#start;
  }

  /**
   * Room to read into (at least `min` bytes, more when a known bulk string needs it); then
   * {@link commit} the bytes read. Throws past the query buffer limit.
   */
  writable(min = 16 * 1024): Uint8Array {
    let need = min;
    if (this.#bulk >= 0) {
      // Room for the announced bulk string, grown no faster than bytes arrive: a client that
      // announces 512 MB and sends nothing must not make us allocate it.
      need = Math.max(need, Math.min(this.#bulk + 2 - this.buffered, this.buffered + min));
    }
    if (this.#buf.length - this.#end < need) this.#makeRoom(need);
    return this.#buf.subarray(this.#end);
  }

  /** Records `n` bytes written into the last {@link writable} area. */
  commit(n: number): void {
    this.#end += n;
    if (this.#end - this.#start > this.#limits.maxQueryBufferBytes) {
      throw new RespProtocolError("query buffer limit reached");
    }
  }

  /** Copies `chunk` in (tests and callers that own their buffers). */
  push(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length) {
      const w = this.writable(chunk.length - off);
      const n = Math.min(w.length, chunk.length - off);
      w.set(chunk.subarray(off, off + n));
      this.commit(n);
      off += n;
    }
  }

  #makeRoom(need: number): void {
    const used = this.#end - this.#start;
    let cap = this.#buf.length;
    if (this.#start > 0 && cap - used >= need && used < cap / 2) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    } else {
      while (cap - used < need) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = next;
    }
    this.#start = 0;
    this.#end = used;
  }

  /** Releases a large buffer once nothing is pending (a big value must not pin its memory). */
  shrink(): void {
    if (this.#end === this.#start && this.#buf.length > 4 * INITIAL_BYTES) {
      this.#buf = new Uint8Array(INITIAL_BYTES);
      this.#start = this.#end = 0;
    }
  }

  /** The index of the CR of the line starting at `from`, or -1 if it is not complete. */
  #lineEnd(from: number, what: string): number {
    const b = this.#buf, end = this.#end;
    const limit = Math.min(end, from + MAX_INLINE_BYTES);
    for (let i = from; i < limit; i++) {
      if (b[i] === LF) return i > from && b[i - 1] === CR ? i - 1 : i;
    }
    if (end - from >= MAX_INLINE_BYTES) throw new RespProtocolError(`too big ${what}`);
    return -1;
  }

  /** The decimal integer in `buf[from, to)`, or NaN. */
  #int(from: number, to: number): number {
    const b = this.#buf;
    let i = from, neg = false;
    if (i < to && b[i] === 45) {
      neg = true;
      i++;
    }
    if (i === to || to - i > 15) return NaN;
    let v = 0;
    for (; i < to; i++) {
      const d = b[i] - 48;
      if (d < 0 || d > 9) return NaN;
      v = v * 10 + d;
    }
    return neg ? -v : v;
  }

  /**
   * The next complete command's arguments, or null when more bytes are needed. An empty array
   * (`*0`, a blank inline line) is a command with nothing to run: skip it.
   */
  next(): string[] | null {
    const b = this.#buf;
    if (this.#args === null) {
      if (this.#start >= this.#end) return null;
      if (b[this.#start] !== 42) return this.#inline();
      const cr = this.#lineEnd(this.#start + 1, "mbulk count string");
      if (cr < 0) return null;
      const n = this.#int(this.#start + 1, cr);
      if (Number.isNaN(n) || n > this.#limits.maxArgs) {
        throw new RespProtocolError("invalid multibulk length");
      }
      this.#start = cr + (b[cr] === CR ? 2 : 1);
      if (n <= 0) return [];
      this.#args = [];
      this.#need = n;
      this.#bulk = -1;
    }
    const args = this.#args;
    while (this.#need > 0) {
      if (this.#bulk < 0) {
        if (this.#start >= this.#end) return null;
        if (b[this.#start] !== 36) {
          const got = String.fromCharCode(b[this.#start]);
          throw new RespProtocolError(`expected '$', got '${got}'`);
        }
        const cr = this.#lineEnd(this.#start + 1, "bulk count string");
        if (cr < 0) return null;
        const len = this.#int(this.#start + 1, cr);
        if (!(len >= 0 && len <= this.#limits.maxBulkBytes)) {
          throw new RespProtocolError("invalid bulk length");
        }
        this.#bulk = len;
        this.#start = cr + (b[cr] === CR ? 2 : 1);
      }
      const len = this.#bulk;
      if (this.#end - this.#start < len + 2) return null;
      args.push(bytesToBinary(b, this.#start, this.#start + len));
      this.#start += len + 2; // the CRLF after the payload is not checked, as in Redis
      this.#bulk = -1;
      this.#need--;
    }
    this.#args = null;
    // All consumed: the next read lands at the start again (no compaction copies later).
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return args;
  }

  #inline(): string[] | null {
    const b = this.#buf;
    const from = this.#start;
    const cr = this.#lineEnd(from, "inline request");
    if (cr < 0) return null;
    this.#start = cr + (b[cr] === CR ? 2 : 1);
    const args = splitArgs(b, from, cr);
    if (args === null) throw new RespProtocolError("unbalanced quotes in request");
    if (args.length > this.#limits.maxArgs) throw new RespProtocolError("invalid multibulk length");
    return args;
  }
}

const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12;
const hexVal = (c: number) =>
  c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;

/**
 * Splits an inline command as Redis does: spaces separate arguments; "double quotes" take
 * escapes (\n \r \t \b \a \\ \" \xHH); 'single quotes' take \'; a closing quote must be followed
 * by a space or the end. Null for unbalanced quotes.
 */
export function splitArgs(b: Uint8Array, from: number, to: number): string[] | null {
  const out: string[] = [];
  let i = from;
  for (;;) {
    while (i < to && isSpace(b[i])) i++;
    if (i >= to) return out;
    let cur = "";
    let inDq = false, inSq = false;
    for (;;) {
      if (inDq) {
        if (i >= to) return null;
        const c = b[i];
        if (
          c === 92 && i + 3 < to && b[i + 1] === 120 && hexVal(b[i + 2]) >= 0 &&
          hexVal(b[i + 3]) >= 0
        ) {
          cur += String.fromCharCode(hexVal(b[i + 2]) * 16 + hexVal(b[i + 3]));
          i += 3;
        } else if (c === 92 && i + 1 < to) {
          i++;
          const e = b[i];
          cur += e === 110
            ? "\n"
            : e === 114
            ? "\r"
            : e === 116
            ? "\t"
            : e === 98
            ? "\b"
            : e === 97
            ? "\x07"
            : String.fromCharCode(e);
        } else if (c === 34) {
          if (i + 1 < to && !isSpace(b[i + 1])) return null;
          inDq = false;
          i++;
          break;
        } else cur += String.fromCharCode(c);
        i++;
      } else if (inSq) {
        if (i >= to) return null;
        const c = b[i];
        if (c === 92 && i + 1 < to && b[i + 1] === 39) {
          cur += "'";
          i += 2;
          continue;
        }
        if (c === 39) {
          if (i + 1 < to && !isSpace(b[i + 1])) return null;
          inSq = false;
          i++;
          break;
        }
        cur += String.fromCharCode(c);
        i++;
      } else {
        if (i >= to || isSpace(b[i])) break;
        const c = b[i];
        if (c === 34) inDq = true;
        else if (c === 39) inSq = true;
        else cur += String.fromCharCode(c);
        i++;
      }
    }
    out.push(cur);
  }
}

const DIGITS: string[] = Array.from({ length: 1024 }, (_, i) => String(i));

/**
 * Builds replies into one growing buffer, flushed with one write per batch of commands. `resp3`
 * switches the encodings that differ (null, maps, sets, doubles, booleans).
 */
export class RespWriter {
  #buf: Uint8Array;
  #len = 0;
  resp3 = false;

  constructor(initialBytes = 16 * 1024) {
    this.#buf = new Uint8Array(initialBytes);
  }

  get length(): number {
    return this.#len;
  }

  /** The bytes written since the last {@link reset} (a view: copy or write before reusing). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }

  reset(): void {
    this.#len = 0;
    if (this.#buf.length > 1 << 20) this.#buf = new Uint8Array(16 * 1024);
  }

  /** Drops what was written after `mark` (a reply replaced by an error). */
  truncate(mark: number): void {
    this.#len = mark;
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < this.#len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  #ascii(s: string): void {
    const n = s.length;
    this.#room(n);
    const b = this.#buf;
    let p = this.#len;
    for (let i = 0; i < n; i++) b[p++] = s.charCodeAt(i);
    this.#len = p;
  }

  #crlf(): void {
    this.#room(2);
    this.#buf[this.#len++] = CR;
    this.#buf[this.#len++] = LF;
  }

  #head(type: number, n: number): void {
    this.#room(24);
    this.#buf[this.#len++] = type;
    this.#ascii(n >= 0 && n < 1024 ? DIGITS[n] : String(n));
    this.#crlf();
  }

  /** `+OK` style status (no CR or LF in it). */
  simple(s: string): void {
    this.#room(s.length + 3);
    this.#buf[this.#len++] = 43;
    this.#len = writeBinary(this.#buf, this.#len, s);
    this.#crlf();
  }

  /** An error line; `message` starts with its code (`ERR ...`, `WRONGTYPE ...`). */
  error(message: string): void {
    const m = utf8ToBinary(message.replace(/[\r\n]+/g, " "));
    this.#room(m.length + 3);
    this.#buf[this.#len++] = 45;
    this.#len = writeBinary(this.#buf, this.#len, m);
    this.#crlf();
  }

  int(n: number | bigint): void {
    if (typeof n === "number" && n >= 0 && n < 1024) {
      this.#room(8);
      this.#buf[this.#len++] = 58;
      this.#ascii(DIGITS[n]);
      this.#crlf();
      return;
    }
    this.#room(24);
    this.#buf[this.#len++] = 58;
    this.#ascii(String(n));
    this.#crlf();
  }

  /** An integer reply from its decimal text (a counter's stored value: no second conversion). */
  intText(decimal: string): void {
    this.#room(decimal.length + 3);
    this.#buf[this.#len++] = 58;
    this.#ascii(decimal);
    this.#crlf();
  }

  /** A bulk string (binary string), or the null reply for null. */
  bulk(s: string | null): void {
    if (s === null) return this.nil();
    const n = s.length;
    this.#head(36, n);
    this.#room(n + 2);
    this.#len = writeBinary(this.#buf, this.#len, s);
    this.#crlf();
  }

  /** A bulk string of raw bytes. */
  bulkBytes(b: Uint8Array): void {
    this.#head(36, b.length);
    this.#room(b.length + 2);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
    this.#crlf();
  }

  /** The null reply: `$-1` (RESP2) or `_` (RESP3). */
  nil(): void {
    if (this.resp3) this.#ascii("_\r\n");
    else this.#ascii("$-1\r\n");
  }

  /** The null array: `*-1` (RESP2) or `_` (RESP3). */
  nilArray(): void {
    if (this.resp3) this.#ascii("_\r\n");
    else this.#ascii("*-1\r\n");
  }

  array(n: number): void {
    this.#head(42, n);
  }

  /** A map of `n` pairs: `%n` (RESP3) or a flat array of 2n (RESP2). */
  map(n: number): void {
    if (this.resp3) this.#head(37, n);
    else this.#head(42, 2 * n);
  }

  /** A set: `~n` (RESP3) or an array (RESP2). */
  set(n: number): void {
    this.#head(this.resp3 ? 126 : 42, n);
  }

  /** A double: `,x` (RESP3) or its text as a bulk string (RESP2). */
  double(x: number): void {
    const s = formatDouble(x);
    if (this.resp3) {
      this.#room(s.length + 3);
      this.#buf[this.#len++] = 44;
      this.#ascii(s);
      this.#crlf();
    } else this.bulk(s);
  }

  /** A boolean: `#t`/`#f` (RESP3) or `:1`/`:0` (RESP2). */
  bool(b: boolean): void {
    if (this.resp3) this.#ascii(b ? "#t\r\n" : "#f\r\n");
    else this.int(b ? 1 : 0);
  }

  /** A verbatim text (RESP3 `=`), or a bulk string (RESP2). */
  verbatim(text: string): void {
    if (!this.resp3) return this.bulk(text);
    const s = "txt:" + text;
    this.#head(61, s.length);
    this.#room(s.length + 2);
    this.#len = writeBinary(this.#buf, this.#len, s);
    this.#crlf();
  }
}

/** A double as Redis prints it: shortest round-trip digits, `inf`, `-inf`. */
export function formatDouble(x: number): string {
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (Object.is(x, -0)) return "-0";
  return String(x);
}
