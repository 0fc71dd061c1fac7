/**
 * The small async file-system interface the WAL and snapshot files are written against, and
 * its real implementation on `Deno.*`. `shared/sim` provides `SimDisk`, a crash-simulating
 * implementation of the same interface.
 *
 * Durability contract (what callers may rely on, and what `SimDisk` enforces):
 *
 * - Data written through a {@link FileHandle} is durable only after `handle.sync()` returns.
 * - Creating, renaming and removing a file are durable only after `syncDir(dir)` on the
 *   directory holding the name (both directories for a cross-directory rename).
 * - `rename` atomically replaces an existing target.
 * - `mkdir` creates missing parents. Make a new directory durable with `syncDir(parent)`.
 *
 * Errors: a missing path raises `Deno.errors.NotFound`, `createNew` on an existing path raises
 * `Deno.errors.AlreadyExists` (in both implementations).
 *
 * @module
 */

/** Result of {@link FileSystem.stat}. */
export interface FileStat {
  size: number;
  isFile: boolean;
  isDirectory: boolean;
}

/** Options for {@link FileSystem.open}. The file is always opened for reading and writing. */
export interface OpenOptions {
  /** Create the file if it does not exist (default false). */
  create?: boolean;
  /** Fail with `AlreadyExists` if the file exists (implies `create`). */
  createNew?: boolean;
  /** Truncate to zero length on open. */
  truncate?: boolean;
}

/** An open file. Single writer: the handle caches the file's size. */
export interface FileHandle {
  readonly path: string;
  /** Current size in bytes (including unsynced writes). */
  size(): number;
  /** Reads up to `length` bytes at `offset`; the result is shorter only at the end of file. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Optional: like {@link read} into the caller's buffer (`into.length` bytes at most), so that a
   * reader can reuse one buffer; the count read. Implementations without it get `read`.
   */
  readInto?(offset: number, into: Uint8Array): Promise<number>;
  /** Writes all of `data` at `offset`; writing past the end extends the file (gap reads as 0). */
  writeAt(offset: number, data: Uint8Array): Promise<void>;
  /** Writes all of `data` at the end of the file. */
  append(data: Uint8Array): Promise<void>;
  /** Sets the file's length (shrinks or extends with zeros). */
  truncate(size: number): Promise<void>;
  /** fdatasync: makes this file's data and size durable (not its directory entry). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** The file-system operations the WAL and snapshot files need. Paths use `/`. */
export interface FileSystem {
  /** Opens (and maybe creates) a file for reading and writing. */
  open(path: string, options?: OpenOptions): Promise<FileHandle>;
  /** The whole content of a file. */
  readFile(path: string): Promise<Uint8Array>;
  /** Size and kind of `path`, or `null` if it does not exist. */
  stat(path: string): Promise<FileStat | null>;
  /** Names of the entries of a directory, sorted. */
  readDir(path: string): Promise<string[]>;
  /** Creates a directory and its missing parents; no error if it exists. */
  mkdir(path: string): Promise<void>;
  /** Atomically renames a file, replacing `to` if it exists. */
  rename(from: string, to: string): Promise<void>;
  /** Removes a file (or an empty directory). */
  remove(path: string): Promise<void>;
  /** fsyncs a directory, making creates/renames/removes of its entries durable. */
  syncDir(path: string): Promise<void>;
}

/** Joins path segments with `/` (no normalization beyond collapsing duplicate slashes). */
export function joinPath(...parts: string[]): string {
  return parts.filter((p) => p !== "").join("/").replace(/\/{2,}/g, "/");
}

/** The directory part of a path (`"."` when there is none, `"/"` for a top-level entry). */
export function dirname(path: string): string {
  const trimmed = path.length > 1 ? path.replace(/\/+$/, "") : path;
  const i = trimmed.lastIndexOf("/");
  if (i < 0) return ".";
  if (i === 0) return "/";
  return trimmed.slice(0, i);
}

/** The last segment of a path. */
export function basename(path: string): string {
  const trimmed = path.length > 1 ? path.replace(/\/+$/, "") : path;
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/**
 * Replaces the file at `path` with `data` atomically: written to a temporary file (`tmpPath`,
 * default `<path>.tmp`), fsynced, renamed over `path`, then the directory fsynced (unless
 * `syncDir` is false, for a file whose previous version is as good after a crash). A crash leaves
 * the old or the new content, never a mix; a leftover temporary file is the caller's to remove.
 */
export async function writeFileAtomic(
  fs: FileSystem,
  path: string,
  data: Uint8Array,
  options: { tmpPath?: string; syncDir?: boolean } = {},
): Promise<void> {
  const tmp = options.tmpPath ?? `${path}.tmp`;
  const f = await fs.open(tmp, { create: true, truncate: true });
  try {
    await f.writeAt(0, data);
    await f.sync();
  } finally {
    await f.close();
  }
  await fs.rename(tmp, path);
  if (options.syncDir ?? true) await fs.syncDir(dirname(path));
}

class DenoFileHandle implements FileHandle {
  readonly path: string;
  #file: Deno.FsFile;
  /** Kernel file position, or -1 when unknown. */
  #pos = 0;
  #size: number;
  readonly #syncIo: boolean;

  constructor(path: string, file: Deno.FsFile, size: number, syncIo: boolean) {
    this.path = path;
    this.#file = file;
    this.#size = size;
    this.#syncIo = syncIo;
  }

  #seekSync(offset: number): void {
    if (this.#pos !== offset) {
      this.#pos = -1;
      this.#file.seekSync(offset, Deno.SeekMode.Start);
      this.#pos = offset;
    }
  }

  #readSync(offset: number, out: Uint8Array): number {
    this.#seekSync(offset);
    let n = 0;
    try {
      while (n < out.length) {
        const r = this.#file.readSync(out.subarray(n));
        if (r === null) break;
        n += r;
      }
    } finally {
      this.#pos = n === out.length ? offset + n : -1;
    }
    return n;
  }

  #writeSync(offset: number, data: Uint8Array): void {
    this.#seekSync(offset);
    let n = 0;
    try {
      while (n < data.length) n += this.#file.writeSync(data.subarray(n));
    } finally {
      this.#pos = n === data.length ? offset + n : -1;
      if (offset + n > this.#size) this.#size = offset + n;
    }
  }

  size(): number {
    return this.#size;
  }

  async #seek(offset: number): Promise<void> {
    if (this.#pos !== offset) {
      this.#pos = -1;
      await this.#file.seek(offset, Deno.SeekMode.Start);
      this.#pos = offset;
    }
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(Math.max(0, Math.min(length, this.#size - offset)));
    const n = await this.readInto(offset, out);
    return n === out.length ? out : out.subarray(0, n);
  }

  async readInto(offset: number, into: Uint8Array): Promise<number> {
    const want = Math.max(0, Math.min(into.length, this.#size - offset));
    if (want === 0) return 0;
    const out = want === into.length ? into : into.subarray(0, want);
    if (this.#syncIo) return this.#readSync(offset, out);
    await this.#seek(offset);
    let n = 0;
    try {
      while (n < want) {
        const r = await this.#file.read(out.subarray(n));
        if (r === null) break;
        n += r;
      }
    } finally {
      this.#pos = n === want ? offset + n : -1;
    }
    return n;
  }

  async writeAt(offset: number, data: Uint8Array): Promise<void> {
    if (this.#syncIo) return this.#writeSync(offset, data);
    await this.#seek(offset);
    let n = 0;
    try {
      while (n < data.length) n += await this.#file.write(data.subarray(n));
    } finally {
      this.#pos = n === data.length ? offset + n : -1;
      if (offset + n > this.#size) this.#size = offset + n;
    }
  }

  append(data: Uint8Array): Promise<void> {
    return this.writeAt(this.#size, data);
  }

  async truncate(size: number): Promise<void> {
    await this.#file.truncate(size);
    this.#size = size;
  }

  sync(): Promise<void> {
    return this.#file.syncData();
  }

  close(): Promise<void> {
    this.#file.close();
    return Promise.resolve();
  }
}

/**
 * {@link FileSystem} on the real disk through `Deno.*`.
 *
 * - `FileHandle.sync()` is `Deno.FsFile.syncData()` (fdatasync: data plus the size change,
 *   not unrelated metadata such as mtime).
 * - `syncDir(dir)` opens the directory read-only and calls `syncData()` on it. Deno 2 allows
 *   opening a directory with `Deno.open(dir, { read: true })` on Linux and macOS, and the
 *   call issues `fdatasync(2)` on the directory descriptor (checked with strace). On Windows
 *   directories cannot be opened this way; there `syncDir` is a no-op (NTFS journals
 *   metadata), which is documented, not hidden: set `strictDirSync` to make it throw.
 * - Needs `--allow-read` and `--allow-write` for the paths used.
 */
export class DenoFileSystem implements FileSystem {
  readonly #strictDirSync: boolean;
  readonly #syncIo: boolean;

  /**
   * `syncIo`: handles read and write with Deno's synchronous file calls (`seekSync`,
   * `readSync`, `writeSync`) instead of the asynchronous ones, which each take a trip through
   * the runtime's blocking thread pool (~80 µs for a 2 KiB read from the page cache against
   * ~5 µs synchronously, here). Right when the data is mostly in the page cache (a log's tail);
   * a read that goes to the disk then blocks the event loop for the disk's latency. fsync stays
   * asynchronous either way.
   */
  constructor(options: { strictDirSync?: boolean; syncIo?: boolean } = {}) {
    this.#strictDirSync = options.strictDirSync ?? false;
    this.#syncIo = options.syncIo ?? false;
  }

  async open(path: string, options: OpenOptions = {}): Promise<FileHandle> {
    const file = await Deno.open(path, {
      read: true,
      write: true,
      create: options.create === true && options.createNew !== true,
      createNew: options.createNew === true,
      truncate: options.truncate === true,
    });
    try {
      const info = await file.stat();
      return new DenoFileHandle(path, file, info.size, this.#syncIo);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  readFile(path: string): Promise<Uint8Array> {
    return Deno.readFile(path);
  }

  async stat(path: string): Promise<FileStat | null> {
    try {
      const s = await Deno.stat(path);
      return { size: s.size, isFile: s.isFile, isDirectory: s.isDirectory };
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  }

  async readDir(path: string): Promise<string[]> {
    const names: string[] = [];
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
    return names.sort();
  }

  mkdir(path: string): Promise<void> {
    return Deno.mkdir(path, { recursive: true });
  }

  rename(from: string, to: string): Promise<void> {
    return Deno.rename(from, to);
  }

  remove(path: string): Promise<void> {
    return Deno.remove(path);
  }

  async syncDir(path: string): Promise<void> {
    if (Deno.build.os === "windows" && !this.#strictDirSync) return;
    const dir = await Deno.open(path, { read: true });
    try {
      await dir.syncData();
    } finally {
      dir.close();
    }
  }
}
