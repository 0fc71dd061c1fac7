/**
 * Consumer groups' committed offsets, kept as Kafka keeps them: records in an internal compacted
 * topic (`__consumer_offsets`), the group's id choosing its partition, one record per (group,
 * topic, partition) whose latest value is the committed offset; deleting a group writes
 * tombstones. The current offsets are held in memory and rebuilt from the topic at start.
 *
 * Record layout (big-endian; version byte first so the format can change):
 *
 * ```
 * key   = 1 u8 | group length u16 | group UTF-8 | topic length u16 | topic UTF-8 | partition u32
 * value = 1 u8 | offset u64 | commit time ms u64 | metadata length u16 | metadata UTF-8
 * ```
 *
 * @module
 */
import type { DecodedRecord, LogRecord } from "./record_batch.ts";
import { partitionForKey } from "./partitioner.ts";

/** The internal topic's name (Kafka's). */
export const OFFSETS_TOPIC = "__consumer_offsets";

/** A committed offset. */
export interface CommittedOffset {
  topic: string;
  partition: number;
  offset: number;
  metadata: string;
  /** When it was committed (ms since the epoch). */
  timestamp: number;
}

/** One partition of the offsets topic, as the group store uses it. */
export interface OffsetsLog {
  /** Appends and resolves once durable (fsync). */
  append(records: LogRecord[]): Promise<void>;
  /** Every record from the start (replay at open). */
  records(): AsyncIterable<DecodedRecord>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes the key of a committed offset. */
export function encodeOffsetKey(group: string, topic: string, partition: number): Uint8Array {
  const g = encoder.encode(group), t = encoder.encode(topic);
  if (g.length > 0xffff || t.length > 0xffff) throw new RangeError("group or topic too long");
  const out = new Uint8Array(1 + 2 + g.length + 2 + t.length + 4);
  const v = new DataView(out.buffer);
  out[0] = 1;
  v.setUint16(1, g.length);
  out.set(g, 3);
  v.setUint16(3 + g.length, t.length);
  out.set(t, 5 + g.length);
  v.setUint32(5 + g.length + t.length, partition);
  return out;
}

/** Decodes a key, or null when it is not one (another version, damaged). */
export function decodeOffsetKey(
  key: Uint8Array,
): { group: string; topic: string; partition: number } | null {
  try {
    if (key.length < 9 || key[0] !== 1) return null;
    const v = new DataView(key.buffer, key.byteOffset, key.byteLength);
    const gl = v.getUint16(1);
    if (5 + gl > key.length) return null;
    const tl = v.getUint16(3 + gl);
    if (5 + gl + tl + 4 !== key.length) return null;
    return {
      group: decoder.decode(key.subarray(3, 3 + gl)),
      topic: decoder.decode(key.subarray(5 + gl, 5 + gl + tl)),
      partition: v.getUint32(5 + gl + tl),
    };
  } catch {
    return null;
  }
}

/** Encodes the value of a committed offset. */
export function encodeOffsetValue(offset: number, timestamp: number, metadata: string): Uint8Array {
  const m = encoder.encode(metadata);
  if (m.length > 0xffff) throw new RangeError("metadata too long");
  const out = new Uint8Array(1 + 8 + 8 + 2 + m.length);
  const v = new DataView(out.buffer);
  out[0] = 1;
  v.setBigUint64(1, BigInt(offset));
  v.setBigUint64(9, BigInt(timestamp));
  v.setUint16(17, m.length);
  out.set(m, 19);
  return out;
}

/** Decodes a value, or null when it is not one. */
export function decodeOffsetValue(
  value: Uint8Array,
): { offset: number; timestamp: number; metadata: string } | null {
  try {
    if (value.length < 19 || value[0] !== 1) return null;
    const v = new DataView(value.buffer, value.byteOffset, value.byteLength);
    const ml = v.getUint16(17);
    if (19 + ml !== value.length) return null;
    const offset = Number(v.getBigUint64(1)), timestamp = Number(v.getBigUint64(9));
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(timestamp)) return null;
    return { offset, timestamp, metadata: decoder.decode(value.subarray(19)) };
  } catch {
    return null;
  }
}

const slot = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/** The committed offsets of every group. Use {@link GroupStore.open}. */
export class GroupStore {
  readonly #logs: OffsetsLog[];
  readonly #now: () => number;
  readonly #groups = new Map<string, Map<string, CommittedOffset>>();
  /** Records of the offsets topic that did not decode (counted at open). */
  skipped = 0;

  private constructor(logs: OffsetsLog[], now: () => number) {
    this.#logs = logs;
    this.#now = now;
  }

  /** Rebuilds the offsets from the topic's partitions. */
  static async open(logs: OffsetsLog[], now: () => number = Date.now): Promise<GroupStore> {
    const s = new GroupStore(logs, now);
    for (const log of logs) {
      for await (const r of log.records()) s.#apply(r.key, r.value);
    }
    return s;
  }

  #apply(keyBytes: Uint8Array | null, valueBytes: Uint8Array | null): void {
    const key = keyBytes === null ? null : decodeOffsetKey(keyBytes);
    if (key === null) {
      this.skipped++;
      return;
    }
    let g = this.#groups.get(key.group);
    if (valueBytes === null) {
      g?.delete(slot(key.topic, key.partition));
      if (g !== undefined && g.size === 0) this.#groups.delete(key.group);
      return;
    }
    const value = decodeOffsetValue(valueBytes);
    if (value === null) {
      this.skipped++;
      return;
    }
    if (g === undefined) this.#groups.set(key.group, g = new Map());
    g.set(slot(key.topic, key.partition), { topic: key.topic, partition: key.partition, ...value });
  }

  #logOf(group: string): OffsetsLog {
    return this.#logs[partitionForKey(encoder.encode(group), this.#logs.length)];
  }

  /** Commits offsets for a group; resolves once durable. */
  async commit(
    group: string,
    offsets: readonly { topic: string; partition: number; offset: number; metadata?: string }[],
  ): Promise<void> {
    const now = this.#now();
    const records: LogRecord[] = offsets.map((o) => ({
      key: encodeOffsetKey(group, o.topic, o.partition),
      value: encodeOffsetValue(o.offset, now, o.metadata ?? ""),
      timestamp: now,
    }));
    await this.#logOf(group).append(records);
    for (const r of records) this.#apply(r.key, r.value);
  }

  /** A group's committed offsets (optionally of one topic), by topic and partition. */
  offsets(group: string, topic?: string): CommittedOffset[] {
    const g = this.#groups.get(group);
    if (g === undefined) return [];
    return [...g.values()]
      .filter((o) => topic === undefined || o.topic === topic)
      .sort((a, b) => a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition);
  }

  /** Every group with committed offsets. */
  groups(): string[] {
    return [...this.#groups.keys()].sort();
  }

  /** Forgets a group (tombstones for each of its offsets); false if it had none. */
  async deleteGroup(group: string): Promise<boolean> {
    const g = this.#groups.get(group);
    if (g === undefined) return false;
    const records: LogRecord[] = [...g.values()].map((o) => ({
      key: encodeOffsetKey(group, o.topic, o.partition),
      value: null,
    }));
    await this.#logOf(group).append(records);
    for (const r of records) this.#apply(r.key, null);
    return true;
  }

  /** Forgets every group's offsets of a deleted topic (tombstones). */
  async forgetTopic(topic: string): Promise<void> {
    for (const group of this.groups()) {
      const gone = this.offsets(group, topic);
      if (gone.length === 0) continue;
      const records: LogRecord[] = gone.map((o) => ({
        key: encodeOffsetKey(group, o.topic, o.partition),
        value: null,
      }));
      await this.#logOf(group).append(records);
      for (const r of records) this.#apply(r.key, null);
    }
  }
}
