/**
 * Atomic snapshot files: `snap-<index zero-padded to 20 digits>.snap`, each a 32-byte header and
 * the payload, CRC-checked. Written to a `.tmp` file, fsynced, renamed into place, and the
 * directory fsynced, so a crash leaves either the old set of snapshots or the new one complete.
 *
 * Header (little-endian):
 *
 * | offset | size | field                                   |
 * | ------ | ---- | --------------------------------------- |
 * | 0      | 4    | magic `DSNP`                            |
 * | 4      | 4    | format version (1)                      |
 * | 8      | 8    | index (u64)                             |
 * | 16     | 8    | payload length (u64)                    |
 * | 24     | 4    | crc32c of the payload                   |
 * | 28     | 4    | crc32c of bytes 0..28 of the header     |
 *
 * @module
 */

import { crc32c, crc32cUpdate } from "./crc32c.ts";
import { dirname, type FileSystem, joinPath } from "./fs.ts";
import type { WalLogger } from "./wal.ts";

const MAGIC = [0x44, 0x53, 0x4e, 0x50]; // "DSNP"
const VERSION = 1;
/** Size of the snapshot file header. */
export const SNAPSHOT_HEADER_BYTES = 32;
const NAME_RE = /^snap-(\d{20})\.snap$/;
const TMP_RE = /^snap-(\d{20})\.snap\.tmp$/;

/** A snapshot file on disk. */
export interface SnapshotInfo {
  name: string;
  index: number;
}

/** A loaded, verified snapshot. */
export interface LoadedSnapshot extends SnapshotInfo {
  data: Uint8Array;
}

/** Options for {@link SnapshotFiles}. */
export interface SnapshotFilesOptions {
  fs: FileSystem;
  /** Directory of the snapshot files (created on first write). */
  dir: string;
  /** Reports skipped corrupt snapshots and removed temp files. Default `console.warn`. */
  logger?: WalLogger;
}

/** File name of the snapshot at `index`. */
export function snapshotName(index: number): string {
  return `snap-${String(index).padStart(20, "0")}.snap`;
}

/** Encodes a snapshot file (header + payload). */
export function encodeSnapshot(index: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(SNAPSHOT_HEADER_BYTES + data.length);
  out.set(snapshotHeader(index, data.length, crc32c(data)), 0);
  out.set(data, SNAPSHOT_HEADER_BYTES);
  return out;
}

function snapshotHeader(index: number, length: number, payloadCrc: number): Uint8Array {
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new RangeError(`bad snapshot index ${index}`);
  }
  const out = new Uint8Array(SNAPSHOT_HEADER_BYTES);
  const dv = new DataView(out.buffer);
  out.set(MAGIC, 0);
  dv.setUint32(4, VERSION, true);
  dv.setBigUint64(8, BigInt(index), true);
  dv.setBigUint64(16, BigInt(length), true);
  dv.setUint32(24, payloadCrc, true);
  dv.setUint32(28, crc32cUpdate(0, out, 0, 28), true);
  return out;
}

/** Bytes checksummed between two yields to the event loop while a large snapshot is written. */
const CRC_SLICE_BYTES = 1 << 20;

/** crc32c of the concatenated parts, a slice at a time with the event loop free in between. */
async function crc32cOfParts(parts: readonly Uint8Array[]): Promise<number> {
  let crc = 0;
  for (const part of parts) {
    for (let at = 0; at < part.length; at += CRC_SLICE_BYTES) {
      crc = crc32cUpdate(crc, part, at, Math.min(part.length, at + CRC_SLICE_BYTES));
      if (part.length > CRC_SLICE_BYTES) await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }
  return crc;
}

/** Decodes and verifies a snapshot file; throws an Error naming the problem. */
export function decodeSnapshot(file: Uint8Array): { index: number; data: Uint8Array } {
  if (file.length < SNAPSHOT_HEADER_BYTES) {
    throw new Error(`short header (${file.length} bytes)`);
  }
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  for (let i = 0; i < 4; i++) if (file[i] !== MAGIC[i]) throw new Error("bad magic");
  if (dv.getUint32(28, true) !== crc32cUpdate(0, file, 0, 28)) {
    throw new Error("header crc mismatch");
  }
  const version = dv.getUint32(4, true);
  if (version !== VERSION) throw new Error(`unsupported version ${version}`);
  const index = Number(dv.getBigUint64(8, true));
  const length = Number(dv.getBigUint64(16, true));
  if (file.length - SNAPSHOT_HEADER_BYTES !== length) {
    throw new Error(
      `payload is ${file.length - SNAPSHOT_HEADER_BYTES} bytes, header says ${length}`,
    );
  }
  const data = file.subarray(SNAPSHOT_HEADER_BYTES);
  if (crc32c(data) !== dv.getUint32(24, true)) throw new Error("payload crc mismatch");
  return { index, data };
}

const consoleLogger: WalLogger = { warn: (msg, fields) => console.warn(msg, fields ?? "") };

/** Snapshot files in one directory. */
export class SnapshotFiles {
  readonly #fs: FileSystem;
  readonly #dir: string;
  readonly #logger: WalLogger;
  #dirReady = false;

  constructor(options: SnapshotFilesOptions) {
    this.#fs = options.fs;
    this.#dir = options.dir;
    this.#logger = options.logger ?? consoleLogger;
  }

  async #ensureDir(): Promise<void> {
    if (this.#dirReady) return;
    if ((await this.#fs.stat(this.#dir)) === null) {
      await this.#fs.mkdir(this.#dir);
      await this.#fs.syncDir(dirname(this.#dir));
    }
    this.#dirReady = true;
  }

  /**
   * Writes the snapshot at `index` atomically: temp file, fsync, rename, directory fsync.
   * When it resolves the snapshot survives a crash; if it is interrupted, the previous
   * snapshots are intact and at most a `.tmp` file is left (removed by `loadNewest`).
   */
  async write(index: number, data: Uint8Array | readonly Uint8Array[]): Promise<SnapshotInfo> {
    // Parts are written one after another, never concatenated: a snapshot can be large, and the
    // checksum is computed in slices so that the event loop is not held for long.
    const parts = data instanceof Uint8Array ? [data] : data;
    const length = parts.reduce((n, p) => n + p.length, 0);
    const header = snapshotHeader(index, length, await crc32cOfParts(parts));
    await this.#ensureDir();
    const name = snapshotName(index);
    const tmp = joinPath(this.#dir, `${name}.tmp`);
    const file = await this.#fs.open(tmp, { create: true, truncate: true });
    try {
      await file.writeAt(0, header);
      let at = SNAPSHOT_HEADER_BYTES;
      for (const part of parts) {
        await file.writeAt(at, part);
        at += part.length;
      }
      await file.sync();
    } finally {
      await file.close();
    }
    await this.#fs.rename(tmp, joinPath(this.#dir, name));
    await this.#fs.syncDir(this.#dir);
    return { name, index };
  }

  /** Snapshot files present (complete names only, not temp files), newest first. */
  async list(): Promise<SnapshotInfo[]> {
    if ((await this.#fs.stat(this.#dir)) === null) return [];
    const out: SnapshotInfo[] = [];
    for (const name of await this.#fs.readDir(this.#dir)) {
      const m = NAME_RE.exec(name);
      if (m) out.push({ name, index: Number(m[1]) });
    }
    return out.sort((a, b) => b.index - a.index);
  }

  /**
   * The newest snapshot that verifies, or null. Corrupt snapshots are logged and skipped
   * (left on disk for inspection); leftover `.tmp` files are removed.
   */
  async loadNewest(): Promise<LoadedSnapshot | null> {
    if ((await this.#fs.stat(this.#dir)) === null) return null;
    for (const name of await this.#fs.readDir(this.#dir)) {
      if (TMP_RE.test(name)) {
        this.#logger.warn("snapshot: removing incomplete temp file", { file: name });
        await this.#fs.remove(joinPath(this.#dir, name));
      }
    }
    for (const info of await this.list()) {
      const path = joinPath(this.#dir, info.name);
      try {
        const decoded = decodeSnapshot(await this.#fs.readFile(path));
        if (decoded.index !== info.index) {
          throw new Error(`header index ${decoded.index} does not match the file name`);
        }
        return { ...info, data: decoded.data };
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue;
        this.#logger.warn("snapshot: skipping corrupt snapshot", {
          file: path,
          reason: e instanceof Error ? e.message : String(e),
        });
      }
    }
    return null;
  }

  /** Deletes snapshots older than `index` (keeps `index` and newer). Returns the names removed. */
  async deleteOlderThan(index: number): Promise<string[]> {
    const removed: string[] = [];
    for (const info of await this.list()) {
      if (info.index < index) {
        await this.#fs.remove(joinPath(this.#dir, info.name));
        removed.push(info.name);
      }
    }
    if (removed.length > 0) await this.#fs.syncDir(this.#dir);
    return removed;
  }
}
