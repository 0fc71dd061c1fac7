/**
 * vLLM KV-cache events, decoded from the msgpack payload of a ZMQ message (or an HTTP body).
 *
 * Layouts accepted (vLLM's msgspec structs are `array_like` and tagged, with defaults omitted):
 * - batch: `[ts, events]`, `[ts, events, data_parallel_rank]`, or a map
 *   `{ts, events, data_parallel_rank?}`;
 * - event as an array: `["BlockStored", block_hashes, parent_block_hash, token_ids, block_size,
 *   lora_id?, medium?, ...]` (older engines stop after `lora_id`, newer ones add `medium` and may
 *   add more fields, which are ignored), `["BlockRemoved", block_hashes, medium?]`,
 *   `["AllBlocksCleared"]`;
 * - event as a map with a `type` key and the same field names.
 *
 * Block hashes are u64 integers (Python may have sent them signed: they are taken modulo 2^64, so
 * the same hash always gives the same key) or byte strings (newer engines' 32-byte digests). A
 * malformed event is skipped and counted (`rejected`, with reasons); a malformed batch throws
 * {@link EventDecodeError}.
 *
 * @module
 */
import { decodeMsgpack, MsgpackError, type MsgpackValue } from "./msgpack.ts";

/** A block hash: a u64 (as a bigint) or the bytes of a digest. */
export type BlockHash = bigint | Uint8Array;

/** One decoded event. */
export type KvEvent =
  | {
    type: "BlockStored";
    blockHashes: BlockHash[];
    parentBlockHash: BlockHash | null;
    tokenIds: number[];
    blockSize: number;
    loraId: number | null;
    medium: string | null;
    /**
     * The event has extra keys (`extra_keys`, newer engines) or a `lora_name` that is not a string:
     * its hashes depend on more than parent, tokens and LoRA (absent in older layouts).
     */
    keyed?: boolean;
    /** The LoRA the blocks were computed under (`lora_name`, newer engines), when it is a string. */
    loraName?: string;
  }
  | { type: "BlockRemoved"; blockHashes: BlockHash[]; medium: string | null }
  | { type: "AllBlocksCleared" };

/** A decoded batch. */
export interface KvEventBatch {
  ts: number;
  dataParallelRank: number | null;
  events: KvEvent[];
  /** Events skipped as malformed, with why. */
  rejected: string[];
}

/** The payload is not a batch at all. */
export class EventDecodeError extends Error {
  constructor(message: string) {
    super(`kv event batch: ${message}`);
    this.name = "EventDecodeError";
  }
}

type Obj = { [key: string]: MsgpackValue };

const isObj = (v: MsgpackValue): v is Obj =>
  v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array) &&
  !(v instanceof Map);

class Bad extends Error {}

function hash(v: MsgpackValue, what: string): BlockHash {
  if (typeof v === "bigint") return BigInt.asUintN(64, v);
  if (typeof v === "number" && Number.isInteger(v)) return BigInt.asUintN(64, BigInt(v));
  if (v instanceof Uint8Array && v.length > 0 && v.length <= 64) return v;
  throw new Bad(`${what} is not a block hash`);
}

function hashes(v: MsgpackValue | undefined, what: string): BlockHash[] {
  if (!Array.isArray(v)) throw new Bad(`${what} is not a list`);
  return v.map((h, i) => hash(h, `${what}[${i}]`));
}

function optInt(v: MsgpackValue | undefined, what: string): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v === "number" && Number.isInteger(v)) return v;
  throw new Bad(`${what} is not an integer`);
}

function optStr(v: MsgpackValue | undefined, what: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === "string") return v;
  throw new Bad(`${what} is not a string`);
}

function tokens(v: MsgpackValue | undefined): number[] {
  if (!Array.isArray(v)) throw new Bad("token_ids is not a list");
  for (const t of v) {
    if (typeof t !== "number" || !Number.isInteger(t) || t < 0) {
      throw new Bad("token_ids holds a non-token");
    }
  }
  return v as number[];
}

const present = (v: MsgpackValue | undefined) => v !== undefined && v !== null;

function blockStored(f: (i: number, name: string) => MsgpackValue | undefined): KvEvent {
  const blockSize = optInt(f(4, "block_size"), "block_size");
  if (blockSize === null || blockSize <= 0) throw new Bad("block_size is missing or not positive");
  const parent = f(2, "parent_block_hash");
  const loraName = f(7, "lora_name");
  return {
    type: "BlockStored",
    blockHashes: hashes(f(1, "block_hashes"), "block_hashes"),
    parentBlockHash: parent === undefined || parent === null
      ? null
      : hash(parent, "parent_block_hash"),
    tokenIds: tokens(f(3, "token_ids")),
    blockSize,
    loraId: optInt(f(5, "lora_id"), "lora_id"),
    medium: optStr(f(6, "medium"), "medium"),
    ...(typeof loraName === "string" ? { loraName } : {}),
    ...((present(loraName) && typeof loraName !== "string") || present(f(8, "extra_keys"))
      ? { keyed: true }
      : {}),
  };
}

/**
 * Whether a stored event can teach chain links: its hashes depend on nothing but parent, tokens
 * (u32) and a LoRA named by `lora_name` (a `lora_id` alone does not name the LoRA the hashes used),
 * and its block size is a u32 (the batches keep it in 32 bits: 2^32 + 16 would read as 16).
 */
export function learnable(e: Extract<KvEvent, { type: "BlockStored" }>): boolean {
  return !e.keyed && (e.loraId === null || e.loraName !== undefined) &&
    e.blockSize <= 0xffffffff && e.tokenIds.every((t) => t < 0x100000000);
}

function event(v: MsgpackValue): KvEvent {
  let tag: MsgpackValue | undefined;
  let f: (i: number, name: string) => MsgpackValue | undefined;
  if (Array.isArray(v)) {
    tag = v[0];
    f = (i) => v[i];
  } else if (isObj(v)) {
    tag = v.type;
    f = (_, name) => v[name];
  } else throw new Bad("an event is neither a list nor a map");
  switch (tag) {
    case "BlockStored":
      return blockStored(f);
    case "BlockRemoved":
      return {
        type: "BlockRemoved",
        blockHashes: hashes(f(1, "block_hashes"), "block_hashes"),
        medium: optStr(f(2, "medium"), "medium"),
      };
    case "AllBlocksCleared":
      return { type: "AllBlocksCleared" };
    default:
      throw new Bad(`unknown event type ${JSON.stringify(describe(tag)).slice(0, 40)}`);
  }
}

/**
 * A decoded value named in a message. `String()` throws on a map decoded without a prototype
 * (msgpack maps are), so an event tagged with one would have stopped the whole batch.
 */
function describe(v: MsgpackValue | undefined): string {
  if (v === null || typeof v !== "object") return String(v);
  if (Array.isArray(v)) return "an array";
  if (v instanceof Uint8Array) return "bytes";
  return "a map";
}

/** A hash as the index keys it: the low 64 bits, as two u32. */
export function hashKey(h: BlockHash, out: [number, number]): void {
  if (typeof h === "bigint") {
    out[0] = Number((h >> 32n) & 0xffffffffn);
    out[1] = Number(h & 0xffffffffn);
    return;
  }
  // Bytes: the last 8, big-endian (shorter ones as a big-endian integer).
  let hi = 0, lo = 0;
  const from = Math.max(0, h.length - 8);
  for (let i = from; i < h.length; i++) {
    hi = ((hi << 8) | (lo >>> 24)) >>> 0;
    lo = ((lo << 8) | h[i]) >>> 0;
  }
  out[0] = hi;
  out[1] = lo;
}

/** Decodes a batch from its msgpack bytes. */
export function decodeEventBatch(payload: Uint8Array): KvEventBatch {
  let v: MsgpackValue;
  try {
    v = decodeMsgpack(payload, { maxDepth: 16 });
  } catch (e) {
    if (e instanceof MsgpackError) throw new EventDecodeError(e.message);
    throw e;
  }
  let ts: MsgpackValue | undefined;
  let events: MsgpackValue | undefined;
  let rank: MsgpackValue | undefined;
  if (Array.isArray(v)) [ts, events, rank] = v;
  else if (isObj(v)) {
    ts = v.ts;
    events = v.events;
    rank = v.data_parallel_rank;
  } else throw new EventDecodeError("not a list or a map");
  if (typeof ts !== "number") throw new EventDecodeError("ts is not a number");
  if (!Array.isArray(events)) throw new EventDecodeError("events is not a list");
  let dataParallelRank: number | null;
  try {
    dataParallelRank = optInt(rank, "data_parallel_rank");
  } catch (e) {
    throw new EventDecodeError((e as Error).message);
  }
  const out: KvEvent[] = [];
  const rejected: string[] = [];
  for (let i = 0; i < events.length; i++) {
    try {
      out.push(event(events[i]));
    } catch (e) {
      if (!(e instanceof Bad)) throw e;
      rejected.push(`event ${i}: ${e.message}`);
    }
  }
  return { ts, dataParallelRank, events: out, rejected };
}
