import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { BlockHasher, type HashAlgo, intBlockHash, noneHash } from "./block_hash.ts";
import { chooseSha256, jsSha256, openNativeSha256, type Sha256, sha256 } from "./sha256.ts";

/** Both implementations where the native one loads (libcrypto is on this project's machines). */
const native = openNativeSha256();
const impls: Sha256[] = native.ok ? [jsSha256, native.sha256] : [jsSha256];

interface Vector {
  algo: HashAlgo;
  seed: string;
  block_size: number;
  token_ids: number[];
  lora_name: string | null;
  cache_salt: string | null;
  none_hash: string;
  block_hashes: string[];
}
const vectors: { cases: Vector[] } = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/block-hashes.json", import.meta.url)),
);
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("block hashes: vLLM's chains for sha256_cbor and sha256 (vectors from Python)", () => {
  assert.ok(vectors.cases.filter((v) => v.algo === "sha256").length >= 5);
  assert.ok(vectors.cases.filter((v) => v.algo === "sha256_cbor").length >= 5);
  for (const v of vectors.cases) {
    for (const impl of impls) {
      const what = `${v.algo} seed ${v.seed.slice(0, 8)} bs ${v.block_size} ${impl.name}`;
      checkVector(
        v,
        new BlockHasher({ algo: v.algo, seed: v.seed, blockSize: v.block_size, sha256: impl }),
        what,
      );
    }
  }
});

function checkVector(v: Vector, h: BlockHasher, what: string): void {
  {
    assert.equal(toHex(noneHash(v.seed, v.algo)), v.none_hash, `NONE_HASH, ${what}`);
    const keys = { loraName: v.lora_name, cacheSalt: v.cache_salt };
    assert.deepEqual(h.all(v.token_ids, keys).map(toHex), v.block_hashes, what);
    // The int form, block by block, and a second run over the same hasher.
    const n = h.start(v.token_ids, keys);
    assert.equal(n, v.block_hashes.length);
    for (let i = 0; i < n; i++) {
      h.next();
      const int = (BigInt(h.hi) << 32n) | BigInt(h.lo);
      assert.equal(int, BigInt("0x" + v.block_hashes[i].slice(48)), `${what} block ${i}`);
    }
    assert.throws(() => h.next(), RangeError);
  }
}

Deno.test("block hashes: partial blocks left out, bad tokens and options refused", () => {
  const h = new BlockHasher({ algo: "sha256_cbor", seed: "0", blockSize: 16 });
  assert.equal(h.start(new Array(15).fill(1)), 0);
  assert.equal(h.start(new Array(33).fill(1)), 2);
  for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53]) {
    h.start([...new Array(15).fill(1), bad]);
    assert.throws(() => h.next(), RangeError, String(bad));
  }
  assert.throws(() => new BlockHasher({ algo: "sha256_cbor", seed: "0", blockSize: 0 }));
  assert.throws(() => new BlockHasher({ algo: "md5" as HashAlgo, seed: "0", blockSize: 16 }));
  assert.equal(intBlockHash(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x18191a1b1c1d1e1fn);
});

Deno.test("sha256: both implementations equal node:crypto for every length to 300 bytes", () => {
  for (const impl of impls) {
    for (let n = 0; n <= 300; n++) {
      const b = Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 0xff);
      const want = createHash("sha256").update(b).digest("hex");
      assert.equal(toHex(sha256(b, impl)), want, `${impl.name}, length ${n}`);
      // In place, the digest written past the message as block hashing does.
      const buf = new Uint8Array(n + 128);
      buf.set(b);
      impl.digestInto(buf, n, buf, n + 80);
      assert.equal(toHex(buf.subarray(n + 80, n + 112)), want, `${impl.name} in place, ${n}`);
    }
  }
});

Deno.test("sha256: digests into the same place in turn, and no digest past the end", () => {
  for (const impl of impls) {
    const out = new Uint8Array(40);
    for (const msg of ["a", "bb", "a"]) {
      const b = new TextEncoder().encode(msg.padEnd(80, "\0")).subarray(0, msg.length);
      const buf = new Uint8Array(128);
      buf.set(b);
      impl.digestInto(buf, b.length, out, 8);
      const want = createHash("sha256").update(b).digest("hex");
      assert.equal(toHex(out.subarray(8, 40)), want, `${impl.name} ${msg}`);
    }
    if (impl.name === "native") {
      assert.throws(() => impl.digestInto(new Uint8Array(64), 1, out, 9), RangeError);
      // The same array after its buffer went elsewhere: refused, not written through.
      const gone = new Uint8Array(40);
      impl.digestInto(new Uint8Array(64), 1, gone, 8);
      gone.buffer.transfer();
      assert.throws(() => impl.digestInto(new Uint8Array(64), 1, gone, 8), RangeError);
    }
  }
});

Deno.test("sha256: the native one loads here, and says why when it cannot", () => {
  // libcrypto is part of every machine this project runs on (Debian's libssl3).
  assert.ok(native.ok, native.ok ? "" : native.reason);
  assert.equal(
    new BlockHasher({ algo: "sha256_cbor", seed: "0", blockSize: 16 }).sha256Impl,
    "native",
  );
  const missing = openNativeSha256(["libnot-a-crypto.so.9"]);
  assert.ok(!missing.ok && /libnot-a-crypto/.test(missing.reason));
  // A library without the symbols is refused, not called.
  const wrong = openNativeSha256(["libc.so.6"]);
  assert.ok(!wrong.ok && /SHA256_/.test(wrong.reason), wrong.ok ? "" : wrong.reason);
  assert.throws(() => chooseSha256("native-please" as "native"));
});

Deno.test("block hashes: a range of a token array hashes as that slice, keys and all", () => {
  for (const algo of ["sha256_cbor", "sha256"] as HashAlgo[]) {
    const h = new BlockHasher({ algo, seed: "7", blockSize: 4 });
    assert.deepEqual([h.hi, h.lo], [0, 0], "nothing hashed yet");
    const tokens = Uint32Array.from({ length: 40 }, (_, i) => i * 7919 + 3);
    for (const keys of [undefined, { loraName: "sql" }, { loraName: "sql", cacheSalt: "s" }]) {
      for (const [from, to] of [[0, 40], [4, 12], [5, 19], [36, 40], [9, 9]]) {
        const want = h.all(Array.from(tokens.subarray(from, to)), keys);
        const n = h.start(tokens, keys, from, to);
        assert.equal(n, want.length, `${algo} [${from}, ${to})`);
        for (let i = 0; i < n; i++) {
          h.next();
          assert.deepEqual(h.digest(), want[i], `${algo} [${from}, ${to}) block ${i}`);
          const v = new DataView(want[i].buffer);
          assert.deepEqual([h.hi, h.lo], [v.getUint32(24), v.getUint32(28)]);
        }
        assert.throws(() => h.next(), RangeError, "past the range's last block");
      }
    }
    // After start, before next: the parent of the first block (NONE_HASH's low words).
    h.start(tokens, undefined, 4, 8);
    const none = new DataView(h.noneHash.buffer, h.noneHash.byteOffset);
    assert.deepEqual([h.hi, h.lo], [none.getUint32(24), none.getUint32(28)]);
    for (const [from, to] of [[-1, 4], [0, 41], [8, 4], [0.5, 4], [0, NaN]]) {
      assert.throws(() => h.start(tokens, undefined, from, to), RangeError, `[${from}, ${to})`);
    }
  }
});
