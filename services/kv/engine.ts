/**
 * The command engine: a command table, the connection (client) state, and `execute`, which does
 * what Redis's `processCommand` does before a command runs: lookup (any case), arity, AUTH,
 * MULTI queueing; then runs it, writing the reply into the connection's {@link RespWriter}.
 *
 * Handlers validate before they write: an error thrown as {@link CommandError} replaces whatever
 * the handler wrote with `-<message>`. Anything else thrown is a bug: answered `-ERR internal
 * error`, counted and logged, never allowed to kill the connection or the server.
 *
 * @module
 */
import { type Db, Keyspace, type Value, type Watcher } from "./keyspace.ts";
import {
  binaryToUtf8,
  limitsFor,
  MAX_BULK_BYTES_DEFAULT,
  MAX_QUERY_BUFFER_BYTES_DEFAULT,
  type RespLimits,
  type RespReader,
  RespWriter,
  WordTable,
} from "./resp.ts";

/** What the commands see of the persistence layer. */
export interface PersistenceHandle {
  /** INFO persistence's fields. */
  info(): [string, string | number][];
  /** Starts a rewrite (compaction); resolves when it is done. */
  rewrite(): Promise<void>;
  readonly rewriteInProgress: boolean;
  /** Changes `appendfsync`. */
  setFsync(policy: "always" | "everysec" | "no"): void;
}

/** What a write did, for persistence: its database and the commands that replay it. */
export interface LoggedWrite {
  db: number;
  commands: readonly (readonly string[])[];
}

/** A reply error: `message` starts with its code (`ERR`, `WRONGTYPE`, `NOAUTH`...). */
export class CommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CommandError";
  }
}

export const WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value";
export const NOT_INTEGER = "ERR value is not an integer or out of range";
export const NOT_FLOAT = "ERR value is not a valid float";
export const SYNTAX = "ERR syntax error";
export const OVERFLOW = "ERR increment or decrement would overflow";

/** Command flags that change how the engine treats a command. */
export interface CommandFlags {
  /** Changes data: logged for persistence, refused (MISCONF) when writes cannot be made durable. */
  write?: boolean;
  /** Runs before AUTH (AUTH, HELLO, QUIT...). */
  noAuth?: boolean;
  /** Runs immediately inside MULTI instead of being queued (EXEC, DISCARD, MULTI, WATCH...). */
  noQueue?: boolean;
  /** Not allowed inside MULTI (it is refused when queued). */
  noMulti?: boolean;
}

/** A command. `arity` as Redis: N exactly N arguments (name included), -N at least N. */
export interface Command {
  name: string;
  arity: number;
  flags: CommandFlags;
  /** First key argument (0: none), last (-1: the last argument), step between keys. */
  keys: [first: number, last: number, step: number];
  /** One-line summary (COMMAND DOCS). */
  summary: string;
  /** The Redis command group (COMMAND DOCS). */
  group: string;
  run(ctx: Context, args: string[]): void;
}

/** A connection's state. */
export class Client implements Watcher {
  readonly id: number;
  name = "";
  libName = "";
  libVersion = "";
  db: Db;
  authenticated: boolean;
  resp: 2 | 3 = 2;
  /** Queued commands while in MULTI (null outside). */
  multi: string[][] | null = null;
  /** A command refused while queueing: EXEC aborts. */
  multiFailed = false;
  /** Watched keys, per database. */
  watched = new Map<Db, Set<string>>();
  dirty = false;
  /** The transaction being executed (EXEC), collecting its writes. */
  tx: { startDb: number; db: number; commands: string[][] } | null = null;
  /** Set by QUIT: the server closes the connection once the reply is written. */
  closing = false;
  readonly createdMs: number;
  lastCommandMs: number;
  lastCommand = "";
  readonly addr: string;
  readonly laddr: string;

  constructor(id: number, db: Db, authenticated: boolean, nowMs: number, addr = "", laddr = "") {
    this.id = id;
    this.db = db;
    this.authenticated = authenticated;
    this.createdMs = nowMs;
    this.lastCommandMs = nowMs;
    this.addr = addr;
    this.laddr = laddr;
  }

  unwatchAll(): void {
    for (const [db, keys] of this.watched) for (const k of keys) db.unwatch(k, this);
    this.watched.clear();
    this.dirty = false;
  }
}

/** What a handler gets. */
export interface Context {
  engine: Engine;
  client: Client;
  out: RespWriter;
  /**
   * What a write command did, as commands that replay to the same state later (persistence):
   * absolute expiry times, results of floats, members chosen at random; an empty list when it
   * changed nothing. Unset (null), the command itself is logged.
   */
  propagated: string[][] | null;
  db: Db;
}

/** Settings CONFIG GET/SET can see (names as Redis's). */
export interface EngineConfig {
  requirepass: string;
  databases: number;
  "proto-max-bulk-len": number;
  "client-query-buffer-limit": number;
  maxclients: number;
  appendonly: string;
  appendfsync: string;
  /** Keys examined per database per active-expiry tick. */
  "active-expire-keys": number;
}

/** Counters for INFO stats. */
export interface EngineStats {
  commands: number;
  connectionsReceived: number;
  rejectedConnections: number;
  keyspaceHits: number;
  keyspaceMisses: number;
  internalErrors: number;
  errorReplies: number;
}

/** Per command counters (INFO commandstats). */
export interface CommandStat {
  calls: number;
  failed: number;
}

/** Options of an {@link Engine}. */
export interface EngineOptions {
  config?: Partial<EngineConfig>;
  now?: () => number;
  random?: () => number;
  /** Called with what every write command that succeeded did, in order (persistence). */
  onWrite?: (write: LoggedWrite) => void;
  /** Internal errors (bugs) go here. */
  onInternalError?: (e: unknown, args: string[]) => void;
}

/** The server-wide state commands run against. */
export class Engine {
  readonly keyspace: Keyspace;
  readonly config: EngineConfig;
  readonly now: () => number;
  readonly random: () => number;
  readonly startedMs: number;
  readonly stats: EngineStats = {
    commands: 0,
    connectionsReceived: 0,
    rejectedConnections: 0,
    keyspaceHits: 0,
    keyspaceMisses: 0,
    internalErrors: 0,
    errorReplies: 0,
  };
  readonly commandStats = new Map<string, CommandStat>();
  readonly clients = new Map<number, Client>();
  /** Every spelling seen: lower case, capitals, and mixed ones met since. */
  #commands = new Map<string, Command>();
  /** One entry per command. */
  #byName = new Map<string, Command>();
  /** The keys of #commands in lower case and capitals (see {@link command}). */
  readonly #words: WordTable;
  /** The name last looked up by {@link command} and found, and its command. */
  #lastName = "";
  #lastCommand: Command | undefined = undefined;
  #nextClient = 1;
  /** Receives what write commands did (persistence); see {@link Context.propagated}. */
  writeHook: ((write: LoggedWrite) => void) | null;
  /** Closes a connection at once (CLIENT KILL); set by the listener that owns connections. */
  killHook: ((clientId: number) => void) | null = null;
  /** How the listener waits for sockets (INFO's `multiplexing_api`); set by the listener. */
  multiplexingApi = "deno";
  /** The append-only file, when persistence is on (INFO, BGREWRITEAOF, CONFIG SET). */
  persistence: PersistenceHandle | null = null;
  /** Set when writes cannot be made durable: write commands are refused with it (MISCONF). */
  writeError: string | null = null;
  #onInternalError: (e: unknown, args: string[]) => void;

  constructor(commands: Iterable<Command>, options: EngineOptions = {}) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.config = {
      requirepass: "",
      databases: 16,
      "proto-max-bulk-len": MAX_BULK_BYTES_DEFAULT,
      "client-query-buffer-limit": MAX_QUERY_BUFFER_BYTES_DEFAULT,
      maxclients: 10_000,
      appendonly: "no",
      appendfsync: "everysec",
      "active-expire-keys": 200,
      ...options.config,
    };
    this.keyspace = new Keyspace(this.config.databases, this.now);
    this.startedMs = this.now();
    this.writeHook = options.onWrite ?? null;
    this.#onInternalError = options.onInternalError ?? (() => {});
    for (const c of commands) {
      this.#byName.set(c.name, c);
      // Clients send names in capitals or in lower case: both hit the first lookup.
      this.#commands.set(c.name, c);
      this.#commands.set(c.name.toUpperCase(), c);
    }
    this.#words = new WordTable(this.#commands.keys());
  }

  /** The command called `name` (any case). */
  command(name: string): Command | undefined {
    // The command before, again (a pipeline of one command; the same string object compares at
    // once, an equal one char by char).
    if (name === this.#lastName) return this.#lastCommand;
    // As the very string #commands is keyed by, when it is one: no new string to hash.
    const c = this.#commands.get(this.#words.intern(name) ?? name);
    if (c !== undefined) {
      this.#lastName = name;
      this.#lastCommand = c;
    }
    if (c !== undefined || name.length > 64) return c;
    // Mixed case: remembered (a bounded number of spellings), so that it costs one lookup next time.
    const found = this.#commands.get(name.toLowerCase());
    if (found !== undefined && this.#commands.size < 4096) this.#commands.set(name, found);
    return found;
  }

  get commands(): IterableIterator<Command> {
    return this.#byName.values();
  }

  /** A new connection's state. */
  connect(addr = "", laddr = ""): Client {
    const c = this.session(addr, laddr);
    c.authenticated = this.config.requirepass === "";
    this.clients.set(c.id, c);
    this.stats.connectionsReceived++;
    return c;
  }

  /**
   * Connection state for work that is not a client connection (an HTTP request, the log
   * replay): not listed by CLIENT LIST, not counted against `maxclients`; authenticated.
   */
  session(addr: string, laddr: string): Client {
    return new Client(
      this.#nextClient++,
      this.keyspace.dbs[0],
      true,
      this.now(),
      addr,
      laddr,
    );
  }

  disconnect(c: Client): void {
    c.unwatchAll();
    this.clients.delete(c.id);
  }

  /** The request limits of `client` now (tighter before AUTH). */
  limitsFor(client: Client): RespLimits {
    const c = this.config;
    return limitsFor(client.authenticated, c["proto-max-bulk-len"], c["client-query-buffer-limit"]);
  }

  /**
   * Runs the complete commands `reader` holds for `client`, replies into `out`, until none is
   * left, the client asked to be closed, or the replies reach `maxReplyBytes`: then it returns
   * true (send them, then call again). Raises the reader's limits once the client authenticates.
   * A RespProtocolError from the reader passes through.
   */
  runBatch(client: Client, reader: RespReader, out: RespWriter, maxReplyBytes: number): boolean {
    // One clock read for the batch (the commands of one read arrived together): CLIENT LIST's
    // idle time counts from the client's last read, as Redis's does.
    client.lastCommandMs = this.now();
    for (;;) {
      if (client.closing) return false;
      if (out.length >= maxReplyBytes) return true;
      const args = reader.next();
      if (args === null) return false;
      if (args.length === 0) continue;
      const authed = client.authenticated;
      this.#execute(client, args, out);
      if (client.authenticated !== authed) reader.limits = this.limitsFor(client);
    }
  }

  /** Runs one command of `client`, its reply written to `out`. */
  execute(client: Client, args: string[], out: RespWriter): void {
    client.lastCommandMs = this.now();
    this.#execute(client, args, out);
  }

  #execute(client: Client, args: string[], out: RespWriter): void {
    const name = args[0];
    const cmd = this.command(name);
    this.stats.commands++;
    if (cmd === undefined) {
      const shown = args.slice(1, 21).map((a) => `'${clip(a)}'`).join(" ");
      this.#refuse(
        client,
        out,
        `ERR unknown command '${clip(name)}', with args beginning with: ${shown}${
          shown ? " " : ""
        }`,
      );
      return;
    }
    client.lastCommand = cmd.name;
    if (!client.authenticated && !cmd.flags.noAuth) {
      this.#refuse(client, out, "NOAUTH Authentication required.");
      return;
    }
    if (cmd.flags.write && this.writeError !== null) {
      this.#refuse(client, out, `MISCONF ${this.writeError}`);
      return;
    }
    if (cmd.arity > 0 ? args.length !== cmd.arity : args.length < -cmd.arity) {
      this.#refuse(client, out, `ERR wrong number of arguments for '${cmd.name}' command`);
      return;
    }
    if (client.multi !== null && !cmd.flags.noQueue) {
      if (cmd.flags.noMulti) {
        this.#refuse(client, out, `ERR Command not allowed inside a transaction`);
        return;
      }
      client.multi.push(args);
      out.simple("QUEUED");
      return;
    }
    this.run(client, cmd, args, out);
  }

  /** An error while queueing fails the transaction, as in Redis. */
  #refuse(client: Client, out: RespWriter, message: string): void {
    if (client.multi !== null) client.multiFailed = true;
    this.stats.errorReplies++;
    out.error(message);
  }

  /** Runs a looked-up, checked command (EXEC uses this for the queued ones). */
  run(client: Client, cmd: Command, args: string[], out: RespWriter): void {
    const mark = out.length;
    const stat = this.#stat(cmd.name);
    const ctx: Context = { engine: this, client, out, db: client.db, propagated: null };
    stat.calls++;
    try {
      cmd.run(ctx, args);
      if (cmd.flags.write && this.writeHook !== null) this.#log(client, ctx.propagated ?? [args]);
    } catch (e) {
      out.truncate(mark);
      stat.failed++;
      this.stats.errorReplies++;
      if (e instanceof CommandError) {
        out.error(e.message);
      } else {
        this.stats.internalErrors++;
        this.#onInternalError(e, args);
        out.error("ERR internal error");
      }
    }
  }

  /** Hands a write to the hook, or to the transaction being executed. */
  #log(client: Client, commands: string[][]): void {
    if (commands.length === 0) return;
    const tx = client.tx;
    if (tx === null) {
      this.writeHook!({ db: client.db.id, commands });
      return;
    }
    if (tx.db !== client.db.id) {
      tx.commands.push(["SELECT", String(client.db.id)]);
      tx.db = client.db.id;
    }
    tx.commands.push(...commands);
  }

  /** Runs `fn` as a transaction: its writes reach the hook as one (EXEC). */
  atomically(client: Client, fn: () => void): void {
    const tx = { startDb: client.db.id, db: client.db.id, commands: [] as string[][] };
    client.tx = tx;
    try {
      fn();
    } finally {
      client.tx = null;
      if (tx.commands.length > 0 && this.writeHook !== null) {
        this.writeHook({ db: tx.startDb, commands: tx.commands });
      }
    }
  }

  #stat(name: string): CommandStat {
    let s = this.commandStats.get(name);
    if (s === undefined) this.commandStats.set(name, s = { calls: 0, failed: 0 });
    return s;
  }

  /** A database by index, or a CommandError. */
  db(index: number): Db {
    const db = this.keyspace.dbs[index];
    if (db === undefined) throw new CommandError("ERR DB index is out of range");
    return db;
  }
}

/** An argument shown in an error (Redis cuts them at 128 chars). */
function clip(a: string): string {
  const s = binaryToUtf8(a);
  return s.length > 128 ? s.slice(0, 128) + "..." : s;
}

// --- Argument parsing shared by the commands -------------------------------------------------

/** Redis's strict integer syntax: optional '-', digits, no leading zeros, no '+', no spaces. */
const INT_RE = /^(?:0|-?[1-9][0-9]*)$/;
const INT64_MAX = 9223372036854775807n, INT64_MIN = -9223372036854775808n;

/** A 64-bit integer argument as a number when it is safe, else a bigint; CommandError if not. */
export function parseInt64(s: string, message = NOT_INTEGER): number | bigint {
  const n = s.length;
  if (n > 0 && n <= 15) {
    // Up to 15 digits: exact as a double; read by hand (the hot path of INCR and friends).
    let i = 0, neg = false;
    if (s.charCodeAt(0) === 45) {
      neg = true;
      i = 1;
    }
    const first = s.charCodeAt(i) - 48;
    if (i === n || first < 0 || first > 9 || (first === 0 && (neg || n > 1))) {
      throw new CommandError(message);
    }
    let v = 0;
    for (; i < n; i++) {
      const d = s.charCodeAt(i) - 48;
      if (d < 0 || d > 9) throw new CommandError(message);
      v = v * 10 + d;
    }
    return neg ? -v : v;
  }
  if (s.length > 20 || !INT_RE.test(s)) throw new CommandError(message);
  const b = BigInt(s);
  if (b > INT64_MAX || b < INT64_MIN) throw new CommandError(message);
  return Number.isSafeInteger(Number(b)) ? Number(b) : b;
}

/** An integer argument within JS's safe range (counts, indexes, seconds). */
export function parseIntArg(s: string, message = NOT_INTEGER): number {
  const v = parseInt64(s, message);
  if (typeof v === "bigint") {
    // Out of JS's exact range but a valid int64: clamp (indexes and counts saturate anyway).
    return v > 0n ? Number.MAX_SAFE_INTEGER : -Number.MAX_SAFE_INTEGER;
  }
  return v;
}

/** Adds two int64 values exactly; CommandError on overflow. */
export function addInt64(a: number | bigint, b: number | bigint): number | bigint {
  if (typeof a === "number" && typeof b === "number") {
    const r = a + b;
    if (Number.isSafeInteger(r)) return r;
  }
  const r = BigInt(a) + BigInt(b);
  if (r > INT64_MAX || r < INT64_MIN) throw new CommandError(OVERFLOW);
  return Number.isSafeInteger(Number(r)) ? Number(r) : r;
}

const FLOAT_RE = /^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity)$/i;

/** A float argument as Redis reads one (strtod: `inf`, `-inf`, exponents; no NaN, no spaces). */
export function parseFloatArg(s: string, message = NOT_FLOAT): number {
  if (!FLOAT_RE.test(s)) throw new CommandError(message);
  const t = s.toLowerCase().replace("infinity", "inf");
  const v = t === "inf" || t === "+inf" ? Infinity : t === "-inf" ? -Infinity : Number(s);
  if (Number.isNaN(v)) throw new CommandError(message);
  return v;
}

/** The value of `key` if it is a string; undefined if absent; WRONGTYPE otherwise. */
export function getString(db: Db, key: string): string | undefined {
  const v = db.get(key);
  if (v === undefined || typeof v === "string") return v;
  throw new CommandError(WRONGTYPE);
}

/** The value of `key` if it is of class `type`; undefined if absent; WRONGTYPE otherwise. */
export function getTyped<T extends Value>(
  db: Db,
  key: string,
  type: abstract new (...a: never[]) => T,
): T | undefined {
  const v = db.get(key);
  if (v === undefined) return undefined;
  if (v instanceof type) return v;
  throw new CommandError(WRONGTYPE);
}

/** Upper-cased option name (options are ASCII). */
export function upper(s: string): string {
  return s.toUpperCase();
}
