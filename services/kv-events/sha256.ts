/**
 * SHA-256 (FIPS 180-4) for short messages built in place, as block hashing needs: the caller
 * writes the message into a scratch buffer with room for the padding, and the digest is computed
 * without copying or allocating.
 *
 * Two implementations behind one interface ({@link Sha256}):
 * - `js`: ours, the compression function generated with its rounds unrolled (gen_sha256.ts);
 * - `native`: the system's OpenSSL `libcrypto` through Deno's FFI (`SHA256_Init/Update/Final`,
 *   three fast calls a digest with the buffers' addresses, no allocation), which uses the CPU's SHA
 *   extensions where it has them.
 *   It needs `--allow-ffi` and a `libcrypto.so.3` (or 1.1); {@link openNativeSha256} says why
 *   not when it cannot load, and checks the library against known digests before use.
 *
 * `node:crypto`'s `createHash` costs an object and several calls per digest, more than the
 * ~100-byte block triples it would hash; it is not used.
 *
 * @module
 */
import { compress } from "./sha256_compress.ts";

const H0 = new Int32Array([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

/** Bytes a message of `len` bytes takes once padded. */
export function paddedLength(len: number): number {
  return Math.ceil((len + 9) / 64) * 64;
}

/** A SHA-256 implementation for messages built in place. */
export interface Sha256 {
  readonly name: "js" | "native";
  /**
   * The digest of `buf[0, len)`, written as 32 bytes at `out[outOff]`. `out` may be `buf`, even
   * over the message (the block hasher writes each digest where the next block's parent goes):
   * the whole message is read before the digest is written. `buf` must hold
   * {@link paddedLength}(len) bytes: the padding may be written into it.
   */
  digestInto(buf: Uint8Array, len: number, out: Uint8Array, outOff: number): void;
}

/** Ours, in JS: runs anywhere. */
export const jsSha256: Sha256 = { name: "js", digestInto: sha256InPlace };

const state = new Int32Array(8);

/** The JS digest of `buf[0, len)` (see {@link Sha256.digestInto}). */
export function sha256InPlace(buf: Uint8Array, len: number, out: Uint8Array, outOff = 0): void {
  const total = paddedLength(len);
  if (buf.length < total) throw new RangeError(`sha256: buffer of ${buf.length} < ${total} bytes`);
  buf[len] = 0x80;
  buf.fill(0, len + 1, total - 8);
  const bits = len * 8;
  const hi = Math.floor(bits / 0x100000000);
  buf[total - 8] = hi >>> 24;
  buf[total - 7] = hi >>> 16;
  buf[total - 6] = hi >>> 8;
  buf[total - 5] = hi;
  buf[total - 4] = bits >>> 24;
  buf[total - 3] = bits >>> 16;
  buf[total - 2] = bits >>> 8;
  buf[total - 1] = bits;
  const h = state;
  h.set(H0);
  for (let off = 0; off < total; off += 64) compress(h, buf, off);
  for (let i = 0; i < 8; i++) {
    const v = h[i];
    const o = outOff + i * 4;
    out[o] = v >>> 24;
    out[o + 1] = v >>> 16;
    out[o + 2] = v >>> 8;
    out[o + 3] = v;
  }
}

/** SHA-256 of any byte string (copies it into a padded buffer). */
export function sha256(bytes: Uint8Array, impl: Sha256 = jsSha256): Uint8Array {
  const buf = new Uint8Array(paddedLength(bytes.length));
  buf.set(bytes);
  const out = new Uint8Array(32);
  impl.digestInto(buf, bytes.length, out, 0);
  return out;
}

const LIBCRYPTO_NAMES = [
  "libcrypto.so.3",
  "libcrypto.so.1.1",
  "libcrypto.so",
  "libcrypto.3.dylib",
  "libcrypto.dylib",
];

/** Pointer arguments: FFI's fast path takes a pointer for ~10 ns, a typed array for ~25 ns more. */
const LIBCRYPTO_SYMBOLS = {
  SHA256_Init: { parameters: ["pointer"], result: "i32" },
  SHA256_Update: { parameters: ["pointer", "pointer", "usize"], result: "i32" },
  SHA256_Final: { parameters: ["pointer", "pointer"], result: "i32" },
} as const;

/**
 * V8 keeps a typed array of at most this many bytes (its whole buffer) on its own heap, where it
 * can move: such arrays are copied into a buffer of our own rather than passed by address.
 */
const MAX_ON_HEAP_BYTES = 64;

/** Known answers the native library must give before it is used (FIPS 180-4 examples). */
const KNOWN: [string, string][] = [
  ["", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
  ["abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
  [
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  ],
];

/** Message lengths as bigints, made once: block triples are shorter than this. */
const SMALL_LENGTHS: readonly bigint[] = Array.from({ length: 4096 }, (_, i) => BigInt(i));

/** Where {@link NativeSha256} stages messages and digests of small arrays, after its context. */
const STAGE_IN = 128, STAGE_OUT = STAGE_IN + MAX_ON_HEAP_BYTES;

/** OpenSSL's SHA-256 through FFI (see the module docs). */
class NativeSha256 implements Sha256 {
  readonly name = "native";
  readonly library: string;
  #lib: Deno.DynamicLibrary<typeof LIBCRYPTO_SYMBOLS>;
  /**
   * Off V8's heap: a SHA256_CTX (112 bytes in OpenSSL 1.1 and 3) at 0, then where a message in an
   * array V8 may move is copied (at STAGE_IN) and its digest lands (at STAGE_OUT).
   */
  #own = new Uint8Array(STAGE_OUT + 32);
  #ctx: Deno.PointerValue;
  #stageIn: Deno.PointerValue;
  #stageOut: Deno.PointerValue;
  /** The last input buffer and its address (null: staged). */
  #in: Uint8Array | null = null;
  #inPtr: Deno.PointerValue = null;
  /** Where the last digest went and the address the library writes it to (null: staged). */
  #out: Uint8Array | null = null;
  #outOff = -1;
  #view: Uint8Array = new Uint8Array(32);
  #viewPtr: Deno.PointerValue = null;

  constructor(lib: Deno.DynamicLibrary<typeof LIBCRYPTO_SYMBOLS>, library: string) {
    this.#lib = lib;
    this.library = library;
    this.#ctx = Deno.UnsafePointer.of(this.#own);
    this.#stageIn = Deno.UnsafePointer.offset(this.#ctx!, STAGE_IN);
    this.#stageOut = Deno.UnsafePointer.offset(this.#ctx!, STAGE_OUT);
  }

  digestInto(buf: Uint8Array, len: number, out: Uint8Array, outOff: number): void {
    if (len < 0 || len > buf.length) throw new RangeError(`sha256: ${len} bytes of ${buf.length}`);
    // A view of a buffer since detached or shrunk reads as length 0: made again (and checked).
    if (out !== this.#out || outOff !== this.#outOff || this.#view.length !== 32) {
      if (outOff < 0 || outOff + 32 > out.length) {
        throw new RangeError(`sha256: no room for a digest at ${outOff} of ${out.length}`);
      }
      this.#out = out;
      this.#outOff = outOff;
      this.#view = out.subarray(outOff, outOff + 32);
      this.#viewPtr = out.buffer.byteLength > MAX_ON_HEAP_BYTES
        ? Deno.UnsafePointer.of(this.#view)
        : null;
    }
    if (buf !== this.#in) {
      this.#in = buf;
      this.#inPtr = buf.buffer.byteLength > MAX_ON_HEAP_BYTES ? Deno.UnsafePointer.of(buf) : null;
    }
    let input = this.#inPtr;
    if (input === null) {
      this.#own.set(buf.subarray(0, len), STAGE_IN); // at most 64 bytes
      input = this.#stageIn;
    }
    const s = this.#lib.symbols;
    // A usize takes a bigint on FFI's fast path (a number falls to the slow one).
    const n = len < SMALL_LENGTHS.length ? SMALL_LENGTHS[len] : BigInt(len);
    const ok = s.SHA256_Init(this.#ctx) === 1 && s.SHA256_Update(this.#ctx, input, n) === 1 &&
      s.SHA256_Final(this.#viewPtr ?? this.#stageOut, this.#ctx) === 1;
    if (!ok) throw new Error("libcrypto SHA-256 failed");
    if (this.#viewPtr === null) this.#view.set(this.#own.subarray(STAGE_OUT, STAGE_OUT + 32));
  }

  close(): void {
    this.#lib.close();
  }
}

/** What {@link openNativeSha256} found. */
export type NativeSha256Result =
  | { ok: true; sha256: Sha256 & { readonly library: string } }
  | { ok: false; reason: string };

/**
 * Loads the system's libcrypto SHA-256 and checks it against known digests. Fails (with the
 * reason) without `--allow-ffi`, without a libcrypto, or when its answers are wrong.
 */
export function openNativeSha256(names: readonly string[] = LIBCRYPTO_NAMES): NativeSha256Result {
  if (typeof Deno.dlopen !== "function") return { ok: false, reason: "no FFI in this runtime" };
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return { ok: false, reason: "no --allow-ffi permission" };
  }
  const errors: string[] = [];
  for (const name of names) {
    let lib: Deno.DynamicLibrary<typeof LIBCRYPTO_SYMBOLS>;
    try {
      lib = Deno.dlopen(name, LIBCRYPTO_SYMBOLS);
    } catch (e) {
      errors.push(`${name}: ${(e as Error).message}`);
      continue;
    }
    const impl = new NativeSha256(lib, name);
    const te = new TextEncoder();
    // Both ways of calling it: small arrays (staged in its own buffer), and a large buffer with
    // the digest written into it (passed by address).
    const big = new Uint8Array(256);
    const inPlace = (msg: Uint8Array) => {
      big.set(msg);
      impl.digestInto(big, msg.length, big, 200);
      return big.subarray(200, 232);
    };
    const wrong = KNOWN.find(([msg, hex]) =>
      toHex(sha256(te.encode(msg), impl)) !== hex || toHex(inPlace(te.encode(msg))) !== hex
    );
    if (wrong === undefined) return { ok: true, sha256: impl };
    impl.close();
    errors.push(`${name}: wrong digest of ${JSON.stringify(wrong[0])}`);
  }
  return { ok: false, reason: errors.join("; ") };
}

function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Which implementation to use: `auto` takes the native one when it loads. */
export type Sha256Choice = "auto" | "js" | "native";
export const SHA256_CHOICES: readonly Sha256Choice[] = ["auto", "js", "native"];

/**
 * The implementation for `choice`; `native` throws (with the reason) when it cannot load.
 * Native loads once per process.
 */
export function chooseSha256(choice: Sha256Choice): Sha256 {
  if (!SHA256_CHOICES.includes(choice)) throw new RangeError(`SHA-256 implementation ${choice}`);
  if (choice === "js") return jsSha256;
  nativeOnce ??= openNativeSha256();
  if (nativeOnce.ok) return nativeOnce.sha256;
  if (choice === "native") throw new Error(`native SHA-256 unavailable: ${nativeOnce.reason}`);
  return jsSha256;
}
let nativeOnce: NativeSha256Result | undefined;
