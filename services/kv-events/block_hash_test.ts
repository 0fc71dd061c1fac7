import assert from "node:assert/strict";
import { blockHashes, encodeBlockTriple, intBlockHash, noneHash } from "./block_hash.ts";

interface Vector {
  seed: string;
  block_size: number;
  token_ids: number[];
  extra_keys_first_block: (string | number)[] | null;
  none_hash: string;
  block_hashes: string[];
}
const vectors: { cases: Vector[] } = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/sha256-cbor-blocks.json", import.meta.url)),
);
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("block hashes: the same as vLLM's sha256_cbor chain (vectors from Python's cbor2)", () => {
  assert.ok(vectors.cases.length >= 4);
  for (const v of vectors.cases) {
    const none = noneHash(v.seed);
    assert.equal(toHex(none), v.none_hash, `NONE_HASH for seed ${v.seed}`);
    const got = blockHashes(v.token_ids, {
      blockSize: v.block_size,
      noneHash: none,
      firstBlockExtraKeys: v.extra_keys_first_block,
    });
    assert.deepEqual(got.map(toHex), v.block_hashes);
  }
});

Deno.test("block hashes: canonical CBOR of the triple, partial blocks left out, int form", () => {
  // (b"\x01\x01", (1, 300), None) as cbor2 encodes it canonically.
  assert.equal(
    toHex(encodeBlockTriple(Uint8Array.of(1, 1), [1, 300], 0, 2, null)),
    "83420101820119012cf6",
  );
  const none = noneHash("0");
  assert.equal(blockHashes(new Array(15).fill(1), { blockSize: 16, noneHash: none }).length, 0);
  assert.equal(blockHashes(new Array(33).fill(1), { blockSize: 16, noneHash: none }).length, 2);
  const h = Uint8Array.from({ length: 32 }, (_, i) => i);
  assert.equal(intBlockHash(h), 0x18191a1b1c1d1e1fn);
  assert.throws(() => blockHashes([1, -1], { blockSize: 2, noneHash: none }), RangeError);
  assert.throws(() => blockHashes([1], { blockSize: 0, noneHash: none }), RangeError);
});
