/**
 * Which partition a record goes to, as Kafka's default partitioner decides it: a keyed record
 * to `(murmur2(key) & 0x7fffffff) % partitions` (so the same key lands on the same partition as
 * with a Kafka client, given the same partition count), a record without a key round robin.
 *
 * @module
 */

/** MurmurHash2, 32-bit, with the seed Kafka uses (0x9747b28c); a signed 32-bit result. */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const len = data.length;
  let h = 0x9747b28c ^ len;
  const whole = len & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = len & 3;
  if (tail === 3) h ^= data[whole + 2] << 16;
  if (tail >= 2) h ^= data[whole + 1] << 8;
  if (tail >= 1) h = Math.imul(h ^ data[whole], m);
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's partition for a key: the positive part of its murmur2, modulo the partition count. */
export function partitionForKey(key: Uint8Array, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

/** Chooses partitions for a topic's records: by key, else round robin. */
export class Partitioner {
  #next = 0;

  /** `explicit` (the producer's choice) wins; then the key; then round robin. */
  choose(partitions: number, key: Uint8Array | null, explicit?: number): number {
    if (explicit !== undefined) return explicit;
    if (key !== null) return partitionForKey(key, partitions);
    const p = this.#next % partitions;
    this.#next = (this.#next + 1) % 0x40000000;
    return p;
  }
}
