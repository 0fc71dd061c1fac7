/**
 * Deno KV's request limits (the numbers of denokv's `proto/limits.rs`, which the Deno CLI's
 * own checks mirror) and the validation of decoded requests against them and against the
 * schema's rules (versionstamps of 10 bytes, known value encodings, 8-byte LE64 values).
 *
 * A request that breaks one is refused as a whole with a {@link KvConnectError} (HTTP 400),
 * before anything is read or written.
 *
 * @module
 */
import {
  type AtomicWrite,
  type KvValue,
  MutationType,
  type SnapshotRead,
  ValueEncoding,
  type Watch,
} from "./messages.ts";

/** The limits a request must respect. */
export const KV_CONNECT_LIMITS = {
  /** Bytes in a key that is written (mutations, watched keys). */
  maxWriteKeyBytes: 2048,
  /** Bytes in a key that is read or checked: one more, for range ends past a prefix. */
  maxReadKeyBytes: 2049,
  /** Bytes in a value. */
  maxValueBytes: 65536,
  /** Ranges in one snapshot read. */
  maxReadRanges: 10,
  /** Sum of the limits of the ranges of one snapshot read. */
  maxReadEntries: 1000,
  /** Checks in one atomic write. */
  maxChecks: 10,
  /** Mutations plus enqueues in one atomic write. */
  maxMutations: 1000,
  /** Bytes of checked keys, mutated keys and values in one atomic write. */
  maxTotalMutationBytes: 819200,
  /** Keys in one watch. */
  maxWatchedKeys: 10,
} as const;

/** A refused request: `status` is the HTTP status to answer with, the message says why. */
export class KvConnectError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = "KvConnectError";
    this.status = status;
  }
}

function bad(message: string): never {
  throw new KvConnectError(400, message);
}

function checkKey(key: Uint8Array, max: number, where: string): void {
  if (key.length > max) bad(`${where}: key of ${key.length} bytes exceeds the limit of ${max}`);
}

/** Checks a value's encoding and size; LE64 values must be exactly 8 bytes. */
export function validateValue(value: KvValue, where: string): void {
  const { data, encoding } = value;
  if (
    encoding !== ValueEncoding.V8 && encoding !== ValueEncoding.LE64 &&
    encoding !== ValueEncoding.BYTES
  ) {
    bad(`${where}: unknown value encoding ${encoding}`);
  }
  if (encoding === ValueEncoding.LE64 && data.length !== 8) {
    bad(`${where}: an LE64 value must be 8 bytes, got ${data.length}`);
  }
  if (data.length > KV_CONNECT_LIMITS.maxValueBytes) {
    bad(
      `${where}: value of ${data.length} bytes exceeds the limit of ` +
        `${KV_CONNECT_LIMITS.maxValueBytes}`,
    );
  }
}

/** Validates a snapshot read (range count, limits, key sizes). */
export function validateSnapshotRead(read: SnapshotRead): void {
  const L = KV_CONNECT_LIMITS;
  if (read.ranges.length > L.maxReadRanges) {
    bad(`too many ranges in one read: ${read.ranges.length}, at most ${L.maxReadRanges}`);
  }
  let total = 0;
  read.ranges.forEach((r, i) => {
    if (r.limit <= 0) bad(`ranges[${i}]: the limit must be positive, got ${r.limit}`);
    checkKey(r.start, L.maxReadKeyBytes, `ranges[${i}].start`);
    checkKey(r.end, L.maxReadKeyBytes, `ranges[${i}].end`);
    total += r.limit;
  });
  if (total > L.maxReadEntries) {
    bad(`the ranges of one read ask for ${total} entries, at most ${L.maxReadEntries}`);
  }
}

/** Validates an atomic write's shape and sizes (not the semantics of its mutations). */
export function validateAtomicWrite(write: AtomicWrite): void {
  const L = KV_CONNECT_LIMITS;
  if (write.checks.length > L.maxChecks) {
    bad(`too many checks in one atomic write: ${write.checks.length}, at most ${L.maxChecks}`);
  }
  const ops = write.mutations.length + write.enqueues.length;
  if (ops > L.maxMutations) {
    bad(`too many mutations in one atomic write: ${ops}, at most ${L.maxMutations}`);
  }
  let total = 0;
  write.checks.forEach((c, i) => {
    checkKey(c.key, L.maxReadKeyBytes, `checks[${i}]`);
    if (c.versionstamp.length !== 0 && c.versionstamp.length !== 10) {
      bad(`checks[${i}]: a versionstamp is 10 bytes (or empty), got ${c.versionstamp.length}`);
    }
    total += c.key.length;
  });
  write.mutations.forEach((m, i) => {
    const where = `mutations[${i}]`;
    checkKey(m.key, L.maxWriteKeyBytes, where);
    total += m.key.length;
    switch (m.mutationType) {
      case MutationType.DELETE:
        // The client sends an empty value with deletes; it is ignored, but not its size.
        if (m.value !== null) total += m.value.data.length;
        break;
      case MutationType.SET:
      case MutationType.SUM:
      case MutationType.MIN:
      case MutationType.MAX:
      case MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY:
        if (m.value === null) bad(`${where}: this mutation type needs a value`);
        validateValue(m.value, where);
        total += m.value.data.length;
        break;
      default:
        bad(`${where}: unknown mutation type ${m.mutationType}`);
    }
    if (m.expireAtMs < -1) bad(`${where}: invalid expire_at_ms ${m.expireAtMs}`);
  });
  write.enqueues.forEach((e, i) => {
    total += e.payload.length;
    for (const k of e.keysIfUndelivered) {
      checkKey(k, L.maxWriteKeyBytes, `enqueues[${i}].keys_if_undelivered`);
      total += k.length;
    }
  });
  if (total > L.maxTotalMutationBytes) {
    bad(`the atomic write carries ${total} bytes, at most ${L.maxTotalMutationBytes}`);
  }
}

/** Validates a watch request (key count and sizes). */
export function validateWatch(watch: Watch): void {
  const L = KV_CONNECT_LIMITS;
  if (watch.keys.length > L.maxWatchedKeys) {
    bad(`too many keys in one watch: ${watch.keys.length}, at most ${L.maxWatchedKeys}`);
  }
  if (watch.keys.length === 0) bad("a watch needs at least one key");
  watch.keys.forEach((k, i) => checkKey(k, L.maxWriteKeyBytes, `keys[${i}]`));
}
