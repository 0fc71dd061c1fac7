/**
 * The topic manager: creates, lists, describes, reconfigures and deletes topics, and owns their
 * partitions. On disk:
 *
 * ```
 * <dataDir>/topics/<name>/topic.json     { name, id, partitions, config, created }
 * <dataDir>/topics/<name>/<p>/           one directory of segments per partition
 * ```
 *
 * `topic.json` is written atomically (temporary file, fsync, rename, directory fsync) after the
 * partition directories exist, so a topic is there after a crash exactly when its creation was
 * acknowledged. Deletion removes `topic.json` first (durably), then the partitions' files: a
 * directory without `topic.json` is a topic whose deletion did not finish, removed at the next
 * start. Topic settings use Kafka's names (`retention.ms`, `cleanup.policy`, ...); unset ones
 * follow the server's defaults.
 *
 * @module
 */
import { type FileSystem, joinPath, writeFileAtomic } from "@deno-stores/shared/wal";
import type { TopicConfig } from "./schemas.ts";
import { TOPIC_NAME } from "./schemas.ts";
import { Partitioner } from "./partitioner.ts";

/** Topics whose names start with this are internal (the consumer offsets): not user-managed. */
export const INTERNAL_PREFIX = "__";

/** Kafka's defaults, the server's unless its LOG_* variables say otherwise. */
export const DEFAULT_TOPIC_CONFIG: Readonly<TopicConfig> = Object.freeze({
  "cleanup.policy": "delete",
  "segment.bytes": 1024 * 1024 * 1024,
  "segment.ms": 7 * 24 * 3600_000,
  "index.interval.bytes": 4096,
  "retention.bytes": -1,
  "retention.ms": 7 * 24 * 3600_000,
  "delete.retention.ms": 24 * 3600_000,
  "max.message.bytes": 1024 * 1024 + 12,
  "message.timestamp.type": "CreateTime",
});

/** What the manager needs of a partition (partition.ts's `Partition`). */
export interface PartitionHandle {
  readonly highWatermark: number;
  readonly logStartOffset: number;
  /** Bytes on disk. */
  readonly size: number;
  readonly segmentCount: number;
  close(): Promise<void>;
}

/** Opens (recovering) the partition in `dir` with a topic's settings. */
export type PartitionOpener<P extends PartitionHandle> = (
  dir: string,
  config: TopicConfig,
  topic: string,
  partition: number,
) => Promise<P>;

/** A topic: its settings and open partitions. */
export class Topic<P extends PartitionHandle> {
  readonly partitioner = new Partitioner();
  constructor(
    readonly name: string,
    readonly id: string,
    public config: TopicConfig,
    /** Settings given explicitly (the rest follow the server's defaults). */
    public overrides: Partial<TopicConfig>,
    readonly partitions: P[],
    readonly created: number,
  ) {}

  get internal(): boolean {
    return this.name.startsWith(INTERNAL_PREFIX);
  }

  get compacted(): boolean {
    return this.config["cleanup.policy"].includes("compact");
  }
}

/** A topic error the API maps to a status: not found, already exists, invalid, internal. */
export class TopicError extends Error {
  constructor(
    readonly code: "unknown_topic" | "topic_exists" | "invalid_topic" | "internal_topic",
    message: string,
  ) {
    super(message);
    this.name = "TopicError";
  }
}

interface TopicFile {
  name: string;
  id: string;
  partitions: number;
  config: Partial<TopicConfig>;
  created: number;
}

export interface TopicManagerOptions<P extends PartitionHandle> {
  fs: FileSystem;
  dataDir: string;
  open: PartitionOpener<P>;
  /** Applies changed settings to an open partition. */
  reconfigure: (partition: P, config: TopicConfig) => void;
  /** The server's defaults for unset settings. */
  defaults?: Partial<TopicConfig>;
  now?: () => number;
  /** Told about what recovery found (removed leftovers). */
  log?: (message: string, fields: Record<string, unknown>) => void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Owns every topic of a data directory. Use {@link TopicManager.open}. */
export class TopicManager<P extends PartitionHandle> {
  readonly #fs: FileSystem;
  readonly #root: string;
  readonly #open: PartitionOpener<P>;
  readonly #reconfigure: (partition: P, config: TopicConfig) => void;
  readonly #defaults: TopicConfig;
  readonly #now: () => number;
  readonly #log: (message: string, fields: Record<string, unknown>) => void;
  readonly #topics = new Map<string, Topic<P>>();
  /** Topic names being created or deleted (one change per name at a time). */
  readonly #busy = new Set<string>();
  /** Per topic, the tail of its queue of changes. */
  readonly #changes = new Map<string, Promise<unknown>>();
  #closed = false;

  private constructor(options: TopicManagerOptions<P>) {
    this.#fs = options.fs;
    this.#root = joinPath(options.dataDir, "topics");
    this.#open = options.open;
    this.#reconfigure = options.reconfigure;
    this.#defaults = { ...DEFAULT_TOPIC_CONFIG, ...options.defaults };
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? (() => {});
  }

  /** Opens every topic under `dataDir` (recovering its partitions). */
  static async open<P extends PartitionHandle>(
    options: TopicManagerOptions<P>,
  ): Promise<TopicManager<P>> {
    const m = new TopicManager(options);
    await m.#load();
    return m;
  }

  get defaults(): Readonly<TopicConfig> {
    return this.#defaults;
  }

  async #load(): Promise<void> {
    const fs = this.#fs;
    await fs.mkdir(this.#root);
    for (const name of await fs.readDir(this.#root)) {
      const dir = joinPath(this.#root, name);
      const st = await fs.stat(dir);
      if (st === null || !st.isDirectory) continue;
      const metaPath = joinPath(dir, "topic.json");
      if ((await fs.stat(metaPath)) === null) {
        // A creation that never finished, or a deletion that did not: its files go.
        this.#log("removing an incomplete topic directory", { dir });
        await this.#removeTree(dir);
        continue;
      }
      // Temporary files of settings changes a crash cut short.
      for (const f of await fs.readDir(dir)) {
        if (/^topic\.json\..*\.tmp$/.test(f)) await fs.remove(joinPath(dir, f));
      }
      let meta: TopicFile;
      try {
        meta = JSON.parse(decoder.decode(await fs.readFile(metaPath))) as TopicFile;
      } catch (e) {
        throw new Error(`${metaPath} is damaged: ${(e as Error).message}`);
      }
      if (meta.name !== name || !TOPIC_NAME.test(name)) {
        throw new Error(`${metaPath} names topic ${JSON.stringify(meta.name)}`);
      }
      const config = { ...this.#defaults, ...meta.config };
      const partitions: P[] = [];
      try {
        for (let p = 0; p < meta.partitions; p++) {
          partitions.push(await this.#open(joinPath(dir, String(p)), config, name, p));
        }
      } catch (e) {
        await Promise.allSettled(partitions.map((x) => x.close()));
        throw e;
      }
      this.#topics.set(
        name,
        new Topic(name, meta.id, config, meta.config, partitions, meta.created),
      );
    }
  }

  /** Every topic, by name. */
  list(): Topic<P>[] {
    return [...this.#topics.values()].sort((a, b) => a.name < b.name ? -1 : 1);
  }

  /** The topic, or undefined. */
  get(name: string): Topic<P> | undefined {
    return this.#topics.get(name);
  }

  /** The topic, or a TopicError("unknown_topic"). */
  require(name: string): Topic<P> {
    const t = this.#topics.get(name);
    if (t === undefined) {
      throw new TopicError("unknown_topic", `topic ${JSON.stringify(name)} not found`);
    }
    return t;
  }

  /**
   * Creates a topic (durable when this resolves). `internal` allows the `__` prefix (the
   * consumer offsets topic).
   */
  async create(
    name: string,
    partitions: number,
    overrides: Partial<TopicConfig> = {},
    internal = false,
  ): Promise<Topic<P>> {
    this.#check();
    if (!TOPIC_NAME.test(name) || name === "." || name === "..") {
      throw new TopicError("invalid_topic", `invalid topic name ${JSON.stringify(name)}`);
    }
    if (name.startsWith(INTERNAL_PREFIX) && !internal) {
      throw new TopicError("internal_topic", `topic names starting with __ are internal`);
    }
    if (!Number.isInteger(partitions) || partitions < 1) {
      throw new TopicError("invalid_topic", `a topic needs at least one partition`);
    }
    if (this.#topics.has(name) || this.#busy.has(name)) {
      throw new TopicError("topic_exists", `topic ${JSON.stringify(name)} already exists`);
    }
    this.#busy.add(name);
    const fs = this.#fs;
    const dir = joinPath(this.#root, name);
    const config = { ...this.#defaults, ...overrides };
    const opened: P[] = [];
    try {
      // A leftover directory of the same name (a deletion cut short) goes first.
      if ((await fs.stat(dir)) !== null) await this.#removeTree(dir);
      await fs.mkdir(dir);
      for (let p = 0; p < partitions; p++) {
        opened.push(await this.#open(joinPath(dir, String(p)), config, name, p));
      }
      const meta: TopicFile = {
        name,
        id: crypto.randomUUID(),
        partitions,
        config: overrides,
        created: this.#now(),
      };
      await this.#writeMeta(dir, meta);
      await fs.syncDir(this.#root);
      const topic = new Topic(name, meta.id, config, overrides, opened, meta.created);
      this.#topics.set(name, topic);
      return topic;
    } catch (e) {
      await Promise.allSettled(opened.map((x) => x.close()));
      await this.#removeTree(dir).catch(() => {});
      throw e;
    } finally {
      this.#busy.delete(name);
    }
  }

  /** Runs `fn` after every earlier change of topic `name` (reconfigure, delete) finished. */
  #serial<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#changes.get(name) ?? Promise.resolve();
    const run = prev.then(fn);
    const tail = run.catch(() => {});
    this.#changes.set(name, tail);
    tail.then(() => {
      if (this.#changes.get(name) === tail) this.#changes.delete(name);
    });
    return run;
  }

  /** Changes settings of a topic (durable when this resolves); returns the new settings. */
  reconfigure(name: string, changes: Partial<TopicConfig>): Promise<TopicConfig> {
    this.#check();
    this.require(name);
    return this.#serial(name, () => this.#reconfigureNow(name, changes));
  }

  async #reconfigureNow(name: string, changes: Partial<TopicConfig>): Promise<TopicConfig> {
    this.#check();
    const t = this.require(name); // deleted meanwhile: unknown_topic
    const overrides = { ...t.overrides, ...changes };
    const config = { ...this.#defaults, ...overrides };
    await this.#writeMeta(joinPath(this.#root, name), {
      name,
      id: t.id,
      partitions: t.partitions.length,
      config: overrides,
      created: t.created,
    });
    t.overrides = overrides;
    t.config = config;
    for (const p of t.partitions) this.#reconfigure(p, config);
    return config;
  }

  /** Deletes a topic and its data. */
  delete(name: string, internal = false): Promise<void> {
    this.#check();
    const t = this.require(name);
    if (t.internal && !internal) {
      throw new TopicError("internal_topic", `internal topic ${name} cannot be deleted`);
    }
    return this.#serial(name, () => this.#deleteNow(name, internal));
  }

  async #deleteNow(name: string, internal: boolean): Promise<void> {
    this.#check();
    const t = this.require(name);
    if (t.internal && !internal) {
      throw new TopicError("internal_topic", `internal topic ${name} cannot be deleted`);
    }
    this.#topics.delete(name);
    this.#busy.add(name);
    try {
      const dir = joinPath(this.#root, name);
      await this.#fs.remove(joinPath(dir, "topic.json"));
      await this.#fs.syncDir(dir);
      await Promise.allSettled(t.partitions.map((p) => p.close()));
      await this.#removeTree(dir);
      await this.#fs.syncDir(this.#root);
    } finally {
      this.#busy.delete(name);
    }
  }

  /** Closes every partition. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const all = [...this.#topics.values()].flatMap((t) => t.partitions);
    this.#topics.clear();
    await Promise.allSettled(all.map((p) => p.close()));
  }

  #check(): void {
    if (this.#closed) throw new Error("topic manager is closed");
  }

  #writeMeta(dir: string, meta: TopicFile): Promise<void> {
    // A temporary name of its own: two writers never share a temporary file.
    return writeFileAtomic(
      this.#fs,
      joinPath(dir, "topic.json"),
      encoder.encode(JSON.stringify(meta, null, 2) + "\n"),
      { tmpPath: joinPath(dir, `topic.json.${crypto.randomUUID()}.tmp`) },
    );
  }

  async #removeTree(path: string): Promise<void> {
    const fs = this.#fs;
    const st = await fs.stat(path);
    if (st === null) return;
    if (st.isDirectory) {
      for (const e of await fs.readDir(path)) await this.#removeTree(joinPath(path, e));
    }
    await fs.remove(path);
  }
}
