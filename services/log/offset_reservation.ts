/**
 * The durable "offsets reserved up to N" checkpoint of a partition (file `offsets.reserved`).
 *
 * Offsets are never reused, even when a crash loses records that were written but not fsynced
 * (acks=write) and may already have been read by a consumer. Before the partition hands out an
 * offset `>= N` it raises N in one big step and fsyncs this file; on recovery the next offset is
 * `max(end of the recovered log, N)`. Reservations are rare (one per `step` offsets).
 *
 * Layout: two 24-byte slots, written alternately so that a torn write can only damage the slot
 * being written while the other still holds the previous value. A slot (big-endian) is magic
 * "LORS", generation u32, value u64, CRC-32C of the first 16 bytes, 4 zero bytes. The valid slot
 * with the higher generation wins; generations continue across opens.
 *
 * A clean close lowers the mark to the end of the log (nothing past it was handed out and
 * everything before it is fsynced), so a restart after a clean shutdown leaves no gap.
 *
 * @module
 */

import { crc32cUpdate, type FileHandle, type FileSystem, joinPath } from "@deno-stores/shared/wal";

/** File name of the checkpoint inside a partition directory. */
export const RESERVATION_FILE = "offsets.reserved";
const MAGIC = 0x4c4f5253; // "LORS"
/** Bytes of a slot: magic u32, generation u32, value u64, CRC-32C of the first 16 bytes, pad. */
export const SLOT_BYTES = 24;
const TWO_32 = 4294967296;

/** A checksummed slot holding `value` (a safe integer) under `magic` and generation `gen`. */
export function encodeSlot(magic: number, gen: number, value: number): Uint8Array {
  const b = new Uint8Array(SLOT_BYTES);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, magic);
  dv.setUint32(4, gen >>> 0);
  dv.setUint32(8, Math.floor(value / TWO_32));
  dv.setUint32(12, value >>> 0);
  dv.setUint32(16, crc32cUpdate(0, b, 0, 16));
  return b;
}

/** The slot of `magic` at `at` in `b`, or null when it is short, foreign or damaged. */
export function decodeSlot(
  magic: number,
  b: Uint8Array,
  at: number,
): { gen: number; value: number } | null {
  if (b.length < at + SLOT_BYTES) return null;
  const dv = new DataView(b.buffer, b.byteOffset + at, SLOT_BYTES);
  if (dv.getUint32(0) !== magic) return null;
  if (dv.getUint32(16) !== crc32cUpdate(0, b, at, at + 16)) return null;
  const value = dv.getUint32(8) * TWO_32 + dv.getUint32(12);
  if (!Number.isSafeInteger(value)) return null;
  return { gen: dv.getUint32(4), value };
}

/** What was found on disk when the checkpoint was opened. */
export type ReservationState =
  | { kind: "missing" }
  | { kind: "corrupt" }
  | { kind: "ok"; value: number; generation: number };

/** The reservation checkpoint file of one partition. */
export class OffsetReservation {
  readonly #handle: FileHandle;
  #gen: number;
  #value: number;

  private constructor(handle: FileHandle, gen: number, value: number) {
    this.#handle = handle;
    this.#gen = gen;
    this.#value = value;
  }

  /** Reads the checkpoint in `dir` (without creating it). */
  static async read(fs: FileSystem, dir: string): Promise<ReservationState> {
    let data: Uint8Array;
    try {
      data = await fs.readFile(joinPath(dir, RESERVATION_FILE));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { kind: "missing" };
      throw e;
    }
    const a = decodeSlot(MAGIC, data, 0);
    const b = decodeSlot(MAGIC, data, SLOT_BYTES);
    if (a === null && b === null) return { kind: "corrupt" };
    const best = a === null ? b! : b === null ? a : (b.gen > a.gen ? b : a);
    return { kind: "ok", value: best.value, generation: best.gen };
  }

  /**
   * Opens (creating if needed) the checkpoint and durably stores `value` in it (file fsync,
   * plus a directory fsync when the file is new).
   */
  static async create(
    fs: FileSystem,
    dir: string,
    value: number,
    generation = 0,
  ): Promise<OffsetReservation> {
    const path = joinPath(dir, RESERVATION_FILE);
    const existed = (await fs.stat(path)) !== null;
    const handle = await fs.open(path, { create: true });
    const r = new OffsetReservation(handle, generation, value);
    try {
      await r.advance(value);
      if (!existed) await fs.syncDir(dir);
    } catch (e) {
      await handle.close();
      throw e;
    }
    return r;
  }

  /** The reserved end: offsets below it may be handed out. */
  get value(): number {
    return this.#value;
  }

  /** Durably stores a new reserved end (one slot write and an fsync); it may be lower. */
  async advance(value: number): Promise<void> {
    const gen = this.#gen + 1;
    await this.#handle.writeAt((gen % 2) * SLOT_BYTES, encodeSlot(MAGIC, gen, value));
    await this.#handle.sync();
    this.#gen = gen;
    this.#value = value;
  }

  close(): Promise<void> {
    return this.#handle.close();
  }
}
