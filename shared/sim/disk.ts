/**
 * `SimDisk`: an in-memory {@link FileSystem} that models what survives a power failure.
 *
 * Model (simplifications are marked):
 *
 * - Every file (inode) has a volatile image (what reads see) and a durable image. Writes,
 *   appends and truncations change the volatile image and are queued as pending operations;
 *   `FileHandle.sync()` applies the queue to the durable image.
 * - Names: each directory has a volatile and a durable table of entries. `open({create})`,
 *   `rename` and `remove` change the volatile table; `syncDir(dir)` copies it to the durable
 *   table. A file synced but never made durable in its directory disappears on crash; a
 *   removed file whose removal was not made durable comes back (with its durable data).
 * - `crash()` throws away everything volatile: each directory reverts to its durable table,
 *   each surviving file to its durable image. Open handles become invalid (any use throws
 *   {@link StaleHandleError}), and so does every `mount()` made before the crash: give each
 *   incarnation of the code under test its own mount so that operations the "dead" process
 *   still had in flight cannot touch the disk after the crash. `crash({ torn: true })` instead keeps, per file, a random
 *   prefix of the pending operations, the last of them possibly cut short (a torn write: a
 *   random prefix of its bytes). Simplification: operations reach the medium in order;
 *   sector-level reordering inside one write is not modelled (use `writeGarbage`/`flipByte`
 *   to model that damage explicitly).
 * - Simplification: `mkdir` is durable at once (directories are created at start-up only).
 * - Fault injection: `flipByte`, `truncateFile` and `writeGarbage` change both images (media
 *   corruption), and `failWith` makes chosen operations throw (an EIO on fsync, a full disk).
 *
 * Every operation is async and completes in a microtask; nothing depends on wall time.
 *
 * @module
 */

import type { FileHandle, FileStat, FileSystem, OpenOptions } from "../wal/fs.ts";
import type { Rand } from "./prng.ts";

/** Use of a file handle opened before `crash()`. */
export class StaleHandleError extends Error {
  constructor(path: string) {
    super(`stale handle for ${path}: the disk crashed after it was opened`);
    this.name = "StaleHandleError";
  }
}

/** An operation about to run, shown to a fault hook. */
export interface DiskOp {
  op:
    | "open"
    | "read"
    | "write"
    | "truncate"
    | "sync"
    | "syncDir"
    | "rename"
    | "remove"
    | "readFile"
    | "readDir"
    | "mkdir"
    | "stat";
  path: string;
}

/** Options for {@link SimDisk}. */
export interface SimDiskOptions {
  /** Needed for `crash({ torn: true })`. */
  rand?: Rand;
}

/** Options for {@link SimDisk.crash}. */
export interface CrashOptions {
  /** Keep a random prefix of each file's unsynced writes (the last possibly torn). */
  torn?: boolean;
}

/** Counters since construction (or the last `resetStats`). */
export interface DiskStats {
  writes: number;
  bytesWritten: number;
  syncs: number;
  dirSyncs: number;
  reads: number;
  crashes: number;
}

type PendingOp = { kind: "write"; offset: number; data: Uint8Array } | {
  kind: "truncate";
  size: number;
};

/** A growable byte buffer. */
class Bytes {
  buf: Uint8Array;
  size: number;

  constructor(initial?: Uint8Array) {
    this.buf = initial ? initial.slice() : new Uint8Array(64);
    this.size = initial ? initial.length : 0;
  }

  #reserve(n: number): void {
    if (n <= this.buf.length) return;
    let cap = Math.max(64, this.buf.length);
    while (cap < n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.size));
    this.buf = next;
  }

  write(offset: number, data: Uint8Array): void {
    const end = offset + data.length;
    this.#reserve(end);
    if (offset > this.size) this.buf.fill(0, this.size, offset);
    this.buf.set(data, offset);
    if (end > this.size) this.size = end;
  }

  truncate(size: number): void {
    if (size > this.size) {
      this.#reserve(size);
      this.buf.fill(0, this.size, size);
    }
    this.size = size;
  }

  apply(op: PendingOp): void {
    if (op.kind === "write") this.write(op.offset, op.data);
    else this.truncate(op.size);
  }

  view(): Uint8Array {
    return this.buf.subarray(0, this.size);
  }

  copy(): Bytes {
    return new Bytes(this.view());
  }
}

interface Inode {
  id: number;
  volatile: Bytes;
  durable: Bytes;
  pending: PendingOp[];
}

const DIR = 0;
type Entry = number; // inode id, or DIR for a subdirectory

function normalize(path: string): string {
  const parts: string[] = [];
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  return "/" + parts.join("/");
}

function split(path: string): [string, string] {
  const norm = normalize(path);
  const i = norm.lastIndexOf("/");
  return [i === 0 ? "/" : norm.slice(0, i), norm.slice(i + 1)];
}

function notFound(path: string): Error {
  return new Deno.errors.NotFound(`No such file or directory: ${path}`);
}

class SimFileHandle implements FileHandle {
  readonly path: string;
  #closed = false;

  constructor(
    private readonly disk: SimDisk,
    private readonly inode: Inode,
    private readonly generation: number,
    path: string,
  ) {
    this.path = path;
  }

  #check(op: DiskOp["op"]): void {
    if (this.#closed) throw new Deno.errors.BadResource(`${this.path}: handle is closed`);
    if (this.generation !== this.disk.generation) throw new StaleHandleError(this.path);
    this.disk.fault(op, this.path);
  }

  size(): number {
    return this.inode.volatile.size;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    await Promise.resolve();
    this.#check("read");
    this.disk.stats.reads++;
    const v = this.inode.volatile;
    const start = Math.min(offset, v.size);
    const end = Math.min(offset + length, v.size);
    return v.buf.slice(start, end);
  }

  async writeAt(offset: number, data: Uint8Array): Promise<void> {
    await Promise.resolve();
    this.#check("write");
    if (!(offset >= 0)) throw new RangeError(`bad offset ${offset}`);
    const copy = data.slice();
    this.inode.volatile.write(offset, copy);
    this.inode.pending.push({ kind: "write", offset, data: copy });
    this.disk.stats.writes++;
    this.disk.stats.bytesWritten += copy.length;
  }

  append(data: Uint8Array): Promise<void> {
    return this.writeAt(this.inode.volatile.size, data);
  }

  async truncate(size: number): Promise<void> {
    await Promise.resolve();
    this.#check("truncate");
    this.inode.volatile.truncate(size);
    this.inode.pending.push({ kind: "truncate", size });
  }

  async sync(): Promise<void> {
    await Promise.resolve();
    this.#check("sync");
    for (const op of this.inode.pending) this.inode.durable.apply(op);
    this.inode.pending = [];
    this.disk.stats.syncs++;
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}

/** A crash-simulating in-memory file system. See the module documentation for the model. */
export class SimDisk implements FileSystem {
  /** Incremented by each crash; handles from an older generation are stale. */
  generation = 0;
  readonly stats: DiskStats = {
    writes: 0,
    bytesWritten: 0,
    syncs: 0,
    dirSyncs: 0,
    reads: 0,
    crashes: 0,
  };
  readonly #rand: Rand | undefined;
  #nextIno = 1;
  readonly #inodes = new Map<number, Inode>();
  #dirs = new Map<string, Map<string, Entry>>([["/", new Map()]]);
  #durableDirs = new Map<string, Map<string, Entry>>([["/", new Map()]]);
  #fault: ((op: DiskOp) => Error | undefined) | null = null;

  constructor(options: SimDiskOptions = {}) {
    this.#rand = options.rand;
  }

  /**
   * Installs a hook run before every operation; returning an Error makes the operation throw it
   * (before it has any effect). `null` removes the hook.
   */
  failWith(hook: ((op: DiskOp) => Error | undefined) | null): void {
    this.#fault = hook;
  }

  /** @internal Runs the fault hook. */
  fault(op: DiskOp["op"], path: string): void {
    const err = this.#fault?.({ op, path });
    if (err !== undefined) throw err;
  }

  resetStats(): void {
    for (const k of Object.keys(this.stats) as (keyof DiskStats)[]) this.stats[k] = 0;
  }

  #lookup(path: string): Entry | undefined {
    const norm = normalize(path);
    if (this.#dirs.has(norm)) return DIR;
    const [dir, name] = split(norm);
    return this.#dirs.get(dir)?.get(name);
  }

  #inodeAt(path: string): Inode {
    const e = this.#lookup(path);
    if (e === undefined) throw notFound(path);
    if (e === DIR) throw new Deno.errors.IsADirectory(`${path} is a directory`);
    return this.#inodes.get(e)!;
  }

  /** Throws if an operation belongs to a mount from before the last crash. */
  #alive(gen: number | undefined): void {
    if (gen !== undefined && gen !== this.generation) {
      throw new StaleHandleError("a mount (the process that used it died in the crash)");
    }
  }

  /**
   * A {@link FileSystem} view for one incarnation of a process. After `crash()`, every
   * operation through it fails with {@link StaleHandleError}, including operations the dead
   * process still had queued (an fsync that "completes" after the power went out must not
   * count). Use one mount per incarnation when a test crashes the disk while operations are in
   * flight; the SimDisk's own methods always act on the current state.
   */
  mount(): FileSystem {
    const gen = this.generation;
    return {
      open: (path, options) => this.#open(gen, path, options),
      readFile: (path) => this.#readFile(gen, path),
      stat: (path) => this.#stat(gen, path),
      readDir: (path) => this.#readDir(gen, path),
      mkdir: (path) => this.#mkdir(gen, path),
      rename: (from, to) => this.#rename(gen, from, to),
      remove: (path) => this.#remove(gen, path),
      syncDir: (path) => this.#syncDir(gen, path),
    };
  }

  open(path: string, options?: OpenOptions): Promise<FileHandle> {
    return this.#open(undefined, path, options);
  }

  readFile(path: string): Promise<Uint8Array> {
    return this.#readFile(undefined, path);
  }

  stat(path: string): Promise<FileStat | null> {
    return this.#stat(undefined, path);
  }

  readDir(path: string): Promise<string[]> {
    return this.#readDir(undefined, path);
  }

  mkdir(path: string): Promise<void> {
    return this.#mkdir(undefined, path);
  }

  rename(from: string, to: string): Promise<void> {
    return this.#rename(undefined, from, to);
  }

  remove(path: string): Promise<void> {
    return this.#remove(undefined, path);
  }

  syncDir(path: string): Promise<void> {
    return this.#syncDir(undefined, path);
  }

  async #open(
    gen: number | undefined,
    path: string,
    options: OpenOptions = {},
  ): Promise<FileHandle> {
    await Promise.resolve();
    this.#alive(gen);
    this.fault("open", path);
    const [dir, name] = split(path);
    const entries = this.#dirs.get(dir);
    if (entries === undefined) throw notFound(path);
    let ino = entries.get(name);
    if (ino === DIR) throw new Deno.errors.IsADirectory(`${path} is a directory`);
    if (ino !== undefined && options.createNew) {
      throw new Deno.errors.AlreadyExists(`File exists: ${path}`);
    }
    if (ino === undefined) {
      if (!options.create && !options.createNew) throw notFound(path);
      ino = this.#nextIno++;
      this.#inodes.set(ino, { id: ino, volatile: new Bytes(), durable: new Bytes(), pending: [] });
      entries.set(name, ino);
    }
    const inode = this.#inodes.get(ino)!;
    if (options.truncate && inode.volatile.size > 0) {
      inode.volatile.truncate(0);
      inode.pending.push({ kind: "truncate", size: 0 });
    }
    return new SimFileHandle(this, inode, this.generation, normalize(path));
  }

  async #readFile(gen: number | undefined, path: string): Promise<Uint8Array> {
    await Promise.resolve();
    this.#alive(gen);
    this.fault("readFile", path);
    this.stats.reads++;
    return this.#inodeAt(path).volatile.view().slice();
  }

  async #stat(gen: number | undefined, path: string): Promise<FileStat | null> {
    await Promise.resolve();
    this.#alive(gen);
    this.fault("stat", path);
    const e = this.#lookup(path);
    if (e === undefined) return null;
    if (e === DIR) return { size: 0, isFile: false, isDirectory: true };
    return { size: this.#inodes.get(e)!.volatile.size, isFile: true, isDirectory: false };
  }

  async #readDir(gen: number | undefined, path: string): Promise<string[]> {
    await Promise.resolve();
    this.#alive(gen);
    this.fault("readDir", path);
    const entries = this.#dirs.get(normalize(path));
    if (entries === undefined) throw notFound(path);
    return [...entries.keys()].sort();
  }

  async #mkdir(gen: number | undefined, path: string): Promise<void> {
    await Promise.resolve();
    this.#alive(gen);
    this.fault("mkdir", path);
    const norm = normalize(path);
    if (this.#dirs.has(norm)) return;
    const [parent, name] = split(norm);
    if (norm !== "/" && !this.#dirs.has(parent)) await this.#mkdir(gen, parent);
    const existing = this.#dirs.get(parent)!.get(name);
    if (existing !== undefined && existing !== DIR) {
      throw new Deno.errors.AlreadyExists(`${norm} exists and is a file`);
    }
    // Simplification: directories are durable at once.
    for (const table of [this.#dirs, this.#durableDirs]) {
      table.set(norm, new Map());
      let p = table.get(parent);
      if (p === undefined) table.set(parent, p = new Map());
      p.set(name, DIR);
    }
  }

  async #rename(gen: number | undefined, from: string, to: string): Promise<void> {
    await Promise.resolve();
    this.#alive(gen);
    this.fault("rename", from);
    const [fromDir, fromName] = split(from);
    const [toDir, toName] = split(to);
    const src = this.#dirs.get(fromDir);
    const ino = src?.get(fromName);
    if (src === undefined || ino === undefined) throw notFound(from);
    if (ino === DIR) throw new Error(`SimDisk: renaming directories is not supported (${from})`);
    const dst = this.#dirs.get(toDir);
    if (dst === undefined) throw notFound(to);
    if (dst.get(toName) === DIR) throw new Deno.errors.IsADirectory(`${to} is a directory`);
    src.delete(fromName);
    dst.set(toName, ino);
  }

  async #remove(gen: number | undefined, path: string): Promise<void> {
    await Promise.resolve();
    this.#alive(gen);
    this.fault("remove", path);
    const norm = normalize(path);
    const [dir, name] = split(norm);
    const entries = this.#dirs.get(dir);
    const e = entries?.get(name);
    if (entries === undefined || e === undefined) throw notFound(path);
    if (e === DIR) {
      if (this.#dirs.get(norm)!.size > 0) throw new Error(`Directory not empty: ${path}`);
      // Directories: durable at once, like mkdir.
      this.#dirs.delete(norm);
      this.#durableDirs.delete(norm);
      this.#durableDirs.get(dir)?.delete(name);
    }
    entries.delete(name);
  }

  async #syncDir(gen: number | undefined, path: string): Promise<void> {
    await Promise.resolve();
    this.#alive(gen);
    this.fault("syncDir", path);
    const norm = normalize(path);
    const entries = this.#dirs.get(norm);
    if (entries === undefined) throw notFound(path);
    this.#durableDirs.set(norm, new Map(entries));
    this.stats.dirSyncs++;
  }

  /**
   * Power failure: loses unsynced data and names (see the module documentation). With
   * `torn`, keeps a random prefix of each file's unsynced operations, the last possibly torn.
   */
  crash(options: CrashOptions = {}): void {
    if (options.torn && this.#rand === undefined) {
      throw new Error("SimDisk.crash({ torn: true }) needs a rand in the SimDisk options");
    }
    this.generation++;
    this.stats.crashes++;
    this.#dirs = new Map([...this.#durableDirs].map(([k, v]) => [k, new Map(v)]));
    const live = new Set<number>();
    for (const entries of this.#dirs.values()) {
      for (const e of entries.values()) if (e !== DIR) live.add(e);
    }
    for (const [ino, inode] of this.#inodes) {
      if (!live.has(ino)) {
        this.#inodes.delete(ino);
        continue;
      }
      if (options.torn && inode.pending.length > 0) {
        const rand = this.#rand!;
        const n = inode.pending.length;
        const keep = rand.nextInt(n + 1);
        for (let i = 0; i < keep; i++) inode.durable.apply(inode.pending[i]);
        const next = inode.pending[keep];
        if (next !== undefined && next.kind === "write" && next.data.length > 1) {
          const cut = rand.nextInt(next.data.length);
          inode.durable.write(next.offset, next.data.subarray(0, cut));
        }
      }
      inode.pending = [];
      inode.volatile = inode.durable.copy();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Inspection and fault injection (test helpers; not part of FileSystem).

  /** Current (volatile) content of a file. */
  contents(path: string): Uint8Array {
    return this.#inodeAt(path).volatile.view().slice();
  }

  /** Content that would survive a crash now (ignores whether the name is durable). */
  durableContents(path: string): Uint8Array {
    return this.#inodeAt(path).durable.view().slice();
  }

  /** Whether the name `path` would survive a crash now. */
  isNameDurable(path: string): boolean {
    const [dir, name] = split(path);
    return this.#durableDirs.get(dir)?.has(name) ?? false;
  }

  /** Whether `path` has writes or truncations not yet synced. */
  hasUnsynced(path: string): boolean {
    return this.#inodeAt(path).pending.length > 0;
  }

  /** Flips bits of the byte at `offset` (XOR `mask`, default 0xff) in both images. */
  flipByte(path: string, offset: number, mask = 0xff): void {
    const inode = this.#inodeAt(path);
    for (const img of [inode.volatile, inode.durable]) {
      if (offset < img.size) img.buf[offset] ^= mask;
    }
    if (offset >= inode.volatile.size) {
      throw new RangeError(`flipByte(${path}, ${offset}): file has ${inode.volatile.size} bytes`);
    }
  }

  /** Cuts a file to `size` bytes in both images (a lost tail). */
  truncateFile(path: string, size: number): void {
    const inode = this.#inodeAt(path);
    for (const img of [inode.volatile, inode.durable]) if (size < img.size) img.truncate(size);
  }

  /** Overwrites bytes at `offset` in both images (garbage, zeros from a lost block, ...). */
  writeGarbage(path: string, offset: number, data: Uint8Array): void {
    const inode = this.#inodeAt(path);
    inode.volatile.write(offset, data);
    inode.durable.write(offset, data);
  }

  /** Every file path, sorted (for debugging and assertions). */
  listFiles(): string[] {
    const out: string[] = [];
    for (const [dir, entries] of this.#dirs) {
      for (const [name, e] of entries) {
        if (e !== DIR) out.push(dir === "/" ? `/${name}` : `${dir}/${name}`);
      }
    }
    return out.sort();
  }
}
