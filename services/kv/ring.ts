/**
 * A single-producer single-consumer ring of frames in a SharedArrayBuffer: how the I/O worker
 * isolates and the executing isolate hand bytes to each other (io_threads.ts).
 *
 * Frame: `length u32 LE` (of what follows) `| conn u32 LE | type u8 | payload`. Frames wrap
 * around the end of the buffer. `head` (next byte to read) is written by the consumer only,
 * `tail` (next byte to write) by the producer only, both as ever-growing byte counts (modulo
 * 2^32 in the Int32Array, compared by difference), so full and empty are never confused.
 *
 * Waking: the producer bumps a doorbell word and notifies it after writing; consumers wait on a
 * doorbell with `Atomics.waitAsync` (several rings may share one doorbell, so that one isolate
 * waits for all of its producers at once). A producer facing a full ring waits on the `head`
 * word, which the consumer notifies after reading.
 *
 * @module
 */

const HEAD = 0, TAIL = 1;
const FRAME_HEADER = 9;

/** What creates a ring in another isolate (postMessage it). */
export interface RingHandle {
  control: SharedArrayBuffer;
  data: SharedArrayBuffer;
  doorbell: SharedArrayBuffer;
}

/** Frame types: worker → executor, then executor → worker. */
export const FRAME = {
  OPEN: 1,
  DATA: 2,
  CLOSED: 3,
  REPLY: 10,
  CLOSE: 11,
  FORGET: 12,
} as const;

/** A new doorbell (one Int32) to share between rings. */
export function newDoorbell(): SharedArrayBuffer {
  return new SharedArrayBuffer(4);
}

export class Ring {
  readonly handle: RingHandle;
  readonly capacity: number;
  #ctl: Int32Array;
  #data: Uint8Array;
  #mask: number;
  #header = new Uint8Array(FRAME_HEADER);
  #headerView = new DataView(this.#header.buffer);

  private constructor(handle: RingHandle) {
    this.handle = handle;
    this.#ctl = new Int32Array(handle.control);
    this.#data = new Uint8Array(handle.data);
    this.capacity = this.#data.length;
    this.#mask = this.capacity - 1;
  }

  /** A new ring of `capacity` bytes (a power of two), rung through `doorbell`. */
  static create(capacity: number, doorbell: SharedArrayBuffer = newDoorbell()): Ring {
    if (capacity < 64 || (capacity & (capacity - 1)) !== 0) {
      throw new RangeError(`ring capacity ${capacity} is not a power of two >= 64`);
    }
    return new Ring({
      control: new SharedArrayBuffer(8),
      data: new SharedArrayBuffer(capacity),
      doorbell,
    });
  }

  /** The same ring, from a handle sent by another isolate. */
  static attach(handle: RingHandle): Ring {
    return new Ring(handle);
  }

  /** Largest payload one frame can carry. */
  get maxPayload(): number {
    return this.capacity - FRAME_HEADER;
  }

  #used(): number {
    return (Atomics.load(this.#ctl, TAIL) - Atomics.load(this.#ctl, HEAD)) >>> 0;
  }

  /** Bytes waiting to be read. */
  get used(): number {
    return this.#used();
  }

  #copyIn(at: number, src: Uint8Array): void {
    const pos = at & this.#mask;
    const first = Math.min(src.length, this.capacity - pos);
    this.#data.set(src.subarray(0, first), pos);
    if (first < src.length) this.#data.set(src.subarray(first), 0);
  }

  #copyOut(at: number, dst: Uint8Array): void {
    const pos = at & this.#mask;
    const first = Math.min(dst.length, this.capacity - pos);
    dst.set(this.#data.subarray(pos, pos + first));
    if (first < dst.length) dst.set(this.#data.subarray(0, dst.length - first), first);
  }

  /** Writes a frame if it fits now; false when the ring is too full (nothing written). */
  tryWrite(conn: number, type: number, payload: Uint8Array): boolean {
    const size = FRAME_HEADER + payload.length;
    if (payload.length > this.maxPayload) throw new RangeError(`frame of ${size} bytes`);
    if (this.capacity - this.#used() < size) return false;
    const tail = Atomics.load(this.#ctl, TAIL);
    const h = this.#headerView;
    h.setUint32(0, 5 + payload.length, true);
    h.setUint32(4, conn, true);
    h.setUint8(8, type);
    this.#copyIn(tail, this.#header);
    this.#copyIn(tail + FRAME_HEADER, payload);
    Atomics.store(this.#ctl, TAIL, (tail + size) | 0);
    return true;
  }

  /** Writes a frame, waiting for room when the ring is full. */
  async write(conn: number, type: number, payload: Uint8Array): Promise<void> {
    while (!this.tryWrite(conn, type, payload)) {
      const head = Atomics.load(this.#ctl, HEAD);
      if (this.capacity - this.#used() >= FRAME_HEADER + payload.length) continue;
      const r = Atomics.waitAsync(this.#ctl, HEAD, head, 1000);
      if (r.async) await r.value;
    }
  }

  /** Tells the consumer there is something to read. */
  ring(): void {
    ringDoorbell(this.handle.doorbell);
  }

  /** Reads every complete frame there is; frees their room (and wakes a waiting producer). */
  drain(each: (conn: number, type: number, payload: Uint8Array) => void): number {
    let n = 0;
    let head = Atomics.load(this.#ctl, HEAD);
    const h = this.#header;
    while (((Atomics.load(this.#ctl, TAIL) - head) >>> 0) >= FRAME_HEADER) {
      this.#copyOut(head, h);
      const len = this.#headerView.getUint32(0, true);
      const conn = this.#headerView.getUint32(4, true);
      const type = h[8];
      const payload = new Uint8Array(len - 5);
      this.#copyOut(head + FRAME_HEADER, payload);
      head = (head + 4 + len) | 0;
      Atomics.store(this.#ctl, HEAD, head);
      each(conn, type, payload);
      n++;
    }
    if (n > 0) Atomics.notify(this.#ctl, HEAD);
    return n;
  }
}

/** Waits on a doorbell until it moves past `seen` (or `timeoutMs`); returns its value. */
export async function waitDoorbell(
  doorbell: SharedArrayBuffer,
  seen: number,
  timeoutMs = 1000,
): Promise<number> {
  const bell = new Int32Array(doorbell);
  const r = Atomics.waitAsync(bell, 0, seen, timeoutMs);
  if (r.async) await r.value;
  return Atomics.load(bell, 0);
}

/** Bumps a doorbell and wakes whoever waits on it. */
export function ringDoorbell(doorbell: SharedArrayBuffer): void {
  const bell = new Int32Array(doorbell);
  Atomics.add(bell, 0, 1);
  Atomics.notify(bell, 0);
}

/** The doorbell's value now. */
export function doorbellValue(doorbell: SharedArrayBuffer): number {
  return Atomics.load(new Int32Array(doorbell), 0);
}
