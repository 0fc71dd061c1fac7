/**
 * The store's snapshot format (v2, binary). Keys, values and lease ids are byte strings (one char
 * per byte), so they are written byte for byte; numbers are unsigned varints (up to 2^53).
 *
 * ```
 * "MVS2" rev compact
 * nLeases { id:bytes ttl }*
 * nKeys { key:bytes nRecs { mod sub create version tomb:u8 lease:bytes value:bytes }* }*
 * bytes = uvarint length, then the bytes
 * ```
 *
 * Encoding is a generator that yields a chunk whenever about {@link CHUNK_BYTES} are written, so
 * the caller can give the event loop back between chunks. Decoding checks every length against
 * the input and throws on anything malformed.
 *
 * @module
 */

/** A record of a key's history as the store keeps it. */
export interface SnapshotRec {
  mod: number;
  sub: number;
  create: number;
  version: number;
  value: string;
  lease: string;
  tomb: boolean;
}

/** A decoded snapshot. */
export interface DecodedSnapshot {
  rev: number;
  compact: number;
  leases: [string, number][];
  keys: [string, SnapshotRec[]][];
}

const MAGIC = [0x4d, 0x56, 0x53, 0x32]; // "MVS2"
/** Bytes written between two yields of the encoder. */
export const CHUNK_BYTES = 64 * 1024;

/** True when `data` starts like a v2 snapshot. */
export function isBinarySnapshot(data: Uint8Array): boolean {
  return data.length >= 4 && MAGIC.every((b, i) => data[i] === b);
}

/**
 * Encodes a captured state: `hists[i]` is the history of `keys[i]`, of which the first
 * `lens[i]` records belong to the snapshot (histories may grow while it is encoded).
 */
export function* encodeSnapshot(
  rev: number,
  compact: number,
  leases: readonly [string, number][],
  keys: readonly string[],
  hists: readonly (readonly SnapshotRec[])[],
  lens: readonly number[],
): Generator<Uint8Array> {
  let buf = new Uint8Array(CHUNK_BYTES * 2);
  let pos = 0;
  const room = (n: number) => {
    if (pos + n <= buf.length) return;
    const bigger = new Uint8Array(Math.max(buf.length * 2, pos + n));
    bigger.set(buf.subarray(0, pos));
    buf = bigger;
  };
  const uv = (x: number) => {
    while (x >= 0x80) {
      buf[pos++] = (x % 0x80) | 0x80;
      x = Math.floor(x / 0x80);
    }
    buf[pos++] = x;
  };
  const bytes = (s: string) => {
    const n = s.length;
    room(n + 10);
    uv(n);
    for (let i = 0; i < n; i++) buf[pos++] = s.charCodeAt(i);
  };
  room(64);
  buf.set(MAGIC, 0);
  pos = 4;
  uv(rev);
  uv(compact);
  uv(leases.length);
  for (const [id, ttl] of leases) {
    bytes(id);
    room(10);
    uv(ttl);
  }
  room(10);
  uv(keys.length);
  for (let k = 0; k < keys.length; k++) {
    bytes(keys[k]);
    const h = hists[k];
    const n = lens[k];
    room(10);
    uv(n);
    for (let j = 0; j < n; j++) {
      const r = h[j];
      room(50);
      uv(r.mod);
      uv(r.sub);
      uv(r.create);
      uv(r.version);
      buf[pos++] = r.tomb ? 1 : 0;
      bytes(r.lease);
      bytes(r.value);
    }
    if (pos >= CHUNK_BYTES) {
      yield buf.subarray(0, pos);
      buf = new Uint8Array(CHUNK_BYTES * 2);
      pos = 0;
    }
  }
  yield buf.subarray(0, pos);
}

class Malformed extends Error {
  constructor(what: string) {
    super(`metastore snapshot: ${what}`);
  }
}

/** Decodes a v2 snapshot (throws on malformed input). */
export function decodeSnapshot(data: Uint8Array): DecodedSnapshot {
  if (!isBinarySnapshot(data)) throw new Malformed("bad magic");
  let pos = 4;
  const uv = (what: string): number => {
    let x = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (pos >= data.length) throw new Malformed(`truncated ${what}`);
      const b = data[pos++];
      x += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(x)) throw new Malformed(`${what} out of range`);
        return x;
      }
      scale *= 0x80;
    }
    throw new Malformed(`${what} varint too long`);
  };
  const bytes = (what: string): string => {
    const n = uv(`${what} length`);
    if (n > data.length - pos) throw new Malformed(`truncated ${what}`);
    let s = "";
    for (let at = pos; at < pos + n; at += 8192) {
      s += String.fromCharCode(...data.subarray(at, Math.min(pos + n, at + 8192)));
    }
    pos += n;
    return s;
  };
  const rev = uv("revision");
  const compact = uv("compact revision");
  const nLeases = uv("lease count");
  if (nLeases > data.length) throw new Malformed("lease count exceeds the input");
  const leases: [string, number][] = [];
  for (let i = 0; i < nLeases; i++) leases.push([bytes("lease id"), uv("lease ttl")]);
  const nKeys = uv("key count");
  if (nKeys > data.length) throw new Malformed("key count exceeds the input");
  const keys: [string, SnapshotRec[]][] = [];
  for (let k = 0; k < nKeys; k++) {
    const key = bytes("key");
    const n = uv("record count");
    if (n === 0 || n > data.length - pos) throw new Malformed("bad record count");
    const recs: SnapshotRec[] = [];
    for (let j = 0; j < n; j++) {
      const mod = uv("mod revision");
      const sub = uv("sub revision");
      const create = uv("create revision");
      const version = uv("version");
      if (pos >= data.length) throw new Malformed("truncated record");
      const t = data[pos++];
      if (t > 1) throw new Malformed("bad tombstone flag");
      const lease = bytes("lease");
      const value = bytes("value");
      recs.push({ mod, sub, create, version, value, lease, tomb: t === 1 });
    }
    keys.push([key, recs]);
  }
  if (pos !== data.length) throw new Malformed(`${data.length - pos} bytes after the end`);
  return { rev, compact, leases, keys };
}
