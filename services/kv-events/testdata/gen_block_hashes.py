"""Block-hash vectors for block_hash_test.ts, computed the way vLLM hashes prefix blocks.

hash(block) = H((parent_hash, tuple(block_token_ids), extra_keys or None)), the chain starting
at NONE_HASH = H(PYTHONHASHSEED); extra keys are the LoRA name on every block and the cache salt
on the first block. H is sha256 over canonical CBOR (sha256_cbor) or over pickle protocol 5
(sha256). Run: /usr/bin/python3 testdata/gen_block_hashes.py > testdata/block-hashes.json
"""
import hashlib
import json
import pickle
import random

import cbor2


def sha256_cbor(x):
    return hashlib.sha256(cbor2.dumps(x, canonical=True)).digest()


def sha256_pickle(x):
    return hashlib.sha256(pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL)).digest()


ALGOS = {"sha256_cbor": sha256_cbor, "sha256": sha256_pickle}


def chain(h, seed, block_size, tokens, lora_name, cache_salt):
    none = h(seed)
    parent = none
    out = []
    for i in range(len(tokens) // block_size):
        keys = ([lora_name] if lora_name else []) + ([cache_salt] if i == 0 and cache_salt else [])
        block = tuple(tokens[i * block_size:(i + 1) * block_size])
        parent = h((parent, block, tuple(keys) if keys else None))
        out.append(parent.hex())
    return none.hex(), out


rng = random.Random(7)
specs = [
    ("0", 16, list(range(40)), None, None),
    ("42", 16, [rng.randrange(0, 152064) for _ in range(64)], None, None),
    ("0", 4, [0, 23, 24, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 7, 8], None, None),
    ("1234", 16, [rng.randrange(0, 32000) for _ in range(48)], "sql-lora", None),
    ("0", 8, [rng.randrange(0, 200000) for _ in range(24)], None, "tenant-a"),
    ("0", 8, [rng.randrange(0, 200000) for _ in range(24)], "adapter", "salt-\u00e9"),
    ("x" * 300, 2, [1, 2, 3, 4, 5], "l" * 300, None),
    # Beyond u32 (no tokenizer has them, but the hashes are defined): the 8-byte CBOR head.
    ("0", 4, [2**32, 2**40 + 5, 2**53 - 1, 3, 1, 2**33, 9, 10], None, None),
]
cases = []
for algo, h in ALGOS.items():
    for seed, bs, tokens, lora, salt in specs:
        none, hashes = chain(h, seed, bs, tokens, lora, salt)
        cases.append({"algo": algo, "seed": seed, "block_size": bs, "token_ids": tokens,
                      "lora_name": lora, "cache_salt": salt, "none_hash": none,
                      "block_hashes": hashes})
print(json.dumps({"generator": "testdata/gen_block_hashes.py (cbor2, pickle, hashlib)",
                  "cases": cases}, indent=1))
