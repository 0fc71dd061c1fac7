/**
 * Learned block chains: what the engines' `BlockStored` events teach about their hash chains. An
 * event carries the parent's hash, the blocks' token ids and the blocks' hashes, so for each block
 * it says "after block P, these tokens are block H". The index (index.ts) keeps that as the
 * block's place among the records and a tag of its tokens, so a router follows a prompt block by
 * block, from the chain's start, comparing tags, without computing a single SHA-256 (tags need no
 * seed of the engines; the cache map checks chains' first blocks with the service's hasher, see
 * store.ts).
 *
 * This module makes the tags and the keys of chains' first blocks, and counts. A tag is a 61-bit
 * fingerprint of one block's token ids under a per-process random seed: two blocks after the same
 * parent with different tokens share a tag with probability ~2^-61, and an outsider cannot aim for
 * a collision. A chain's first block is found by a root key: its tag mixed with the chain's
 * namespace, the LoRA name and cache salt that enter a prompt's block hashes. Past the first
 * block, a chain's namespace is its parent's: engines put the LoRA in every block's hash, so a
 * block's parent is always of its own chain.
 *
 * Events teach the base model's chains and those of the LoRAs they name (`lora_name`); a cache
 * salt is never in an event, nor a LoRA's name in older engines' events, so the first blocks of
 * those chains are taught by routers alone: a prompt's first route hashes it, the next follow its
 * links.
 *
 * A stored event whose parent is not indexed (the engine stored it before this process started
 * and the parent is gone, or it was refused) is an orphan: its blocks are indexed but not linked,
 * and routing hashes such prompts (a router links the blocks it hashes and finds in the index, so
 * the chain heals).
 *
 * @module
 */

import { TokenFingerprint } from "./fingerprint.ts";
import { type BlockIndex, LINK_CONFLICT, LINK_NEW, TAG_HI_MASK } from "./index.ts";

/** The parent of a chain's first block (events say `null`, prompts start there). */
export const ROOT_HI = 0x9e3779b9, ROOT_LO = 0x7f4a7c15;

/** Longest LoRA name and salt (together) whose namespace is remembered between calls. */
const NS_REMEMBER = 1024;

/** Counters of a {@link ChainTable}. */
export interface ChainStats {
  /** Blocks linked (their tag and parent learned). */
  learned: number;
  /** Of those, blocks right after their parent's record (a router reads them in memory order). */
  inOrder: number;
  /** Route steps that followed a link. */
  hits: number;
  /** Route steps that found none (the prompt is hashed from there). */
  misses: number;
  /** Blocks or links found ambiguous (never followed). */
  ambiguous: number;
  /** Blocks not linked: their parent was not indexed. */
  orphans: number;
  /**
   * Stored events not learned: their LoRA name was empty (the engine hashed an empty name, which
   * prompts cannot name).
   */
  loraRefused: number;
  /**
   * Chains whose first block was not learned: the service's hasher gave another hash for it (a
   * cache salt or extra keys the event hid, or an engine hashing with another seed; see CacheMap).
   */
  rootsRefused: number;
}

/** Tags and root keys under one per-process seed, and the counters of the learned chains. */
export class ChainTable {
  /** The last {@link tag}, or {@link rootKey}. */
  tagHi = 0;
  tagLo = 1;
  learned = 0;
  inOrder = 0;
  hits = 0;
  misses = 0;
  ambiguous = 0;
  orphans = 0;
  loraRefused = 0;
  rootsRefused = 0;
  #seedHi: number;
  #seedLo: number;
  #fp = new TokenFingerprint();

  constructor(seed: Uint32Array = crypto.getRandomValues(new Uint32Array(2))) {
    this.#seedHi = seed[0];
    this.#seedLo = seed[1];
  }

  stats(): ChainStats {
    return {
      learned: this.learned,
      inOrder: this.inOrder,
      hits: this.hits,
      misses: this.misses,
      ambiguous: this.ambiguous,
      orphans: this.orphans,
      loraRefused: this.loraRefused,
      rootsRefused: this.rootsRefused,
    };
  }

  /** The tag of the block `tokens[from, from + count)` into {@link tagHi}/{@link tagLo}. */
  tag(tokens: Uint32Array, from: number, count: number): void {
    const fp = this.#fp;
    fp.hi = this.#seedHi;
    fp.lo = this.#seedLo;
    fp.mix(tokens, from, count);
    this.#finish(fp.hi, fp.lo);
  }

  /** A 61-bit tag of a 64-bit fingerprint, never (0, 0) (that is "no tag"). */
  #finish(hi: number, lo: number): void {
    const f = Math.imul(hi ^ (hi >>> 16), 0x21f0aaad) ^ lo;
    this.tagHi = (f ^ (f >>> 15)) & TAG_HI_MASK;
    this.tagLo = (lo ^ (lo >>> 16)) >>> 0;
    if ((this.tagHi | this.tagLo) === 0) this.tagLo = 1;
  }

  /**
   * Links block record `rec` of `ix` after record `parent` (0: a chain's start) under the tag (or
   * root key) made last, and counts what it did (an ambiguity once, when found). Returns
   * {@link BlockIndex.link}'s answer.
   */
  link(ix: BlockIndex, parent: number, rec: number): number {
    const r = ix.link(parent, this.tagHi, this.tagLo, rec);
    if (r === LINK_NEW) {
      this.learned++;
      if (ix.inOrder) this.inOrder++;
    } else if (r === LINK_CONFLICT) this.ambiguous++;
    return r;
  }

  /**
   * The root key of a chain's first block, whose tag {@link tag} just made, under LoRA `lora` and
   * cache salt `salt` (none: the base model's chain), into {@link tagHi}/{@link tagLo}. An empty
   * string is no key, as to the hasher.
   */
  rootKey(lora?: string | null, salt?: string | null): void {
    this.#keysNamespace(lora, salt);
    const fp = this.#fp, u = this.#units;
    fp.hi = this.#nsHi ^ this.#seedLo ^ 0x2545f491;
    fp.lo = this.#nsLo ^ this.#seedHi ^ 0x9e3779b9;
    u[0] = this.tagHi;
    u[1] = this.tagLo;
    fp.mix(u, 0, 2);
    this.#finish(fp.hi, fp.lo);
  }

  /**
   * The namespace of a chain: (0, 0) for the base model, else a seeded fingerprint of its LoRA
   * name and cache salt (what the engines put in the blocks' extra keys), into #nsHi/#nsLo. The
   * last pair is remembered (events and prompts repeat their LoRA) when it is short.
   */
  #keysNamespace(lora: string | null | undefined, salt: string | null | undefined): void {
    const l = lora ?? "", s = salt ?? "";
    if (l === this.#lastLora && s === this.#lastSalt) return;
    const remember = l.length + s.length <= NS_REMEMBER;
    this.#lastLora = remember ? l : null;
    this.#lastSalt = remember ? s : null;
    if (l === "" && s === "") {
      this.#nsHi = this.#nsLo = 0;
      return;
    }
    this.#fingerprintKeys(l, s);
    this.#nsHi = this.#fp.hi;
    this.#nsLo = this.#fp.lo;
  }

  /** Seeded fingerprint of the pair: lengths, then both strings' UTF-16 code units (injective). */
  #fingerprintKeys(l: string, s: string): void {
    const fp = this.#fp, u = this.#units;
    fp.hi = this.#seedLo ^ 0x5851f42d;
    fp.lo = this.#seedHi ^ 0x4c957f2d;
    u[0] = l.length;
    u[1] = s.length;
    fp.mix(u, 0, 2);
    // Through a fixed scratch, a chunk at a time: a long name costs time, not memory.
    for (const str of [l, s]) {
      for (let at = 0; at < str.length; at += u.length) {
        const n = Math.min(u.length, str.length - at);
        for (let i = 0; i < n; i++) u[i] = str.charCodeAt(at + i);
        fp.mix(u, 0, n);
      }
    }
  }

  #lastLora: string | null = "";
  #lastSalt: string | null = "";
  #nsHi = 0;
  #nsLo = 0;
  #units = new Uint32Array(256);
}
