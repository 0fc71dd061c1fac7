/**
 * Connection and server commands: PING, ECHO, HELLO, AUTH, SELECT, CLIENT (ID, SETNAME, GETNAME,
 * SETINFO, LIST, INFO, KILL, NO-EVICT, NO-TOUCH), INFO, COMMAND (COUNT, DOCS, INFO, LIST),
 * CONFIG (GET, SET, RESETSTAT), DBSIZE, FLUSHDB, FLUSHALL, TIME, QUIT, RESET; and the
 * transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
 *
 * The server says it speaks Redis 7.2 (`redis_version` in INFO, `version` in HELLO) because
 * clients pick features by it; `kv_server` in INFO says what it really is.
 *
 * @module
 */
import {
  type Client,
  type Command,
  CommandError,
  type Context,
  parseIntArg,
  SYNTAX,
  upper,
} from "../engine.ts";
import { compileGlob } from "../glob.ts";
import { binaryToUtf8, utf8ToBinary } from "../resp.ts";
import type { Value } from "../keyspace.ts";
import { command, WRITE } from "./define.ts";

/** The Redis version we are compatible with (what clients see). */
export const REDIS_COMPAT_VERSION = "7.2.0";
export const SERVER_NAME = "deno-stores-kv";
export const SERVER_VERSION = "0.1.0";

function ping(ctx: Context, args: string[]): void {
  if (args.length > 2) throw new CommandError("ERR wrong number of arguments for 'ping' command");
  if (args.length === 2) ctx.out.bulk(args[1]);
  else ctx.out.simple("PONG");
}

const WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled.";

/** Checks a username/password against `requirepass` (the "default" user only). */
function authenticate(ctx: Context, user: string, pass: string): void {
  const want = ctx.engine.config.requirepass;
  if (user !== "default" || (want !== "" && pass !== want)) throw new CommandError(WRONGPASS);
  ctx.client.authenticated = true;
}

function auth(ctx: Context, args: string[]): void {
  if (args.length > 3) throw new CommandError(SYNTAX);
  if (ctx.engine.config.requirepass === "" && args.length === 2) {
    throw new CommandError(
      "ERR AUTH <password> called without any password configured for the default user. " +
        "Are you sure your configuration is correct?",
    );
  }
  const [user, pass] = args.length === 3 ? [args[1], args[2]] : ["default", args[1]];
  authenticate(ctx, user, pass);
  ctx.out.simple("OK");
}

const NAME_RE = /^[\x21-\x7e]*$/;

function setName(client: Client, name: string): void {
  if (!NAME_RE.test(name)) {
    throw new CommandError(
      "ERR Client names cannot contain spaces, newlines or special characters.",
    );
  }
  client.name = name;
}

function hello(ctx: Context, args: string[]): void {
  const { client, out } = ctx;
  let proto = client.resp;
  let i = 1;
  if (args.length > 1) {
    const v = parseIntArg(args[1], "ERR Protocol version is not an integer or out of range");
    if (v !== 2 && v !== 3) throw new CommandError("NOPROTO unsupported protocol version");
    proto = v;
    i = 2;
  }
  let name: string | null = null, authed = false;
  for (; i < args.length; i++) {
    const o = upper(args[i]);
    if (o === "AUTH" && i + 2 < args.length) {
      authenticate(ctx, args[i + 1], args[i + 2]);
      authed = true;
      i += 2;
    } else if (o === "SETNAME" && i + 1 < args.length) {
      name = args[++i];
    } else throw new CommandError(`ERR Syntax error in HELLO option '${binaryToUtf8(args[i])}'`);
  }
  if (!client.authenticated && !authed) {
    throw new CommandError(
      "NOAUTH HELLO must be called with the client already authenticated, otherwise the " +
        "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and " +
        "select the RESP protocol version at the same time",
    );
  }
  if (name !== null) setName(client, name);
  client.resp = proto;
  out.resp3 = proto === 3;
  const fields: [string, string | number][] = [
    ["server", "redis"],
    ["version", REDIS_COMPAT_VERSION],
    ["proto", proto],
    ["id", client.id],
    ["mode", "standalone"],
    ["role", "master"],
  ];
  out.map(fields.length + 1);
  for (const [k, v] of fields) {
    out.bulk(k);
    if (typeof v === "number") out.int(v);
    else out.bulk(v);
  }
  out.bulk("modules");
  out.array(0);
}

function select(ctx: Context, args: string[]): void {
  const i = parseIntArg(args[1]);
  ctx.client.db = ctx.engine.db(i);
  ctx.out.simple("OK");
}

function clientLine(ctx: Context, c: Client): string {
  const now = ctx.engine.now();
  const flags = (c.multi !== null ? "x" : "") || "N";
  return `id=${c.id} addr=${c.addr} laddr=${c.laddr} fd=-1 name=${c.name} age=${
    Math.floor((now - c.createdMs) / 1000)
  } idle=${Math.floor((now - c.lastCommandMs) / 1000)} flags=${flags} db=${c.db.id} sub=0 ` +
    `psub=0 ssub=0 multi=${c.multi?.length ?? -1} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 ` +
    `rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=${c.lastCommand || "NULL"} ` +
    `user=default redir=-1 resp=${c.resp} lib-name=${c.libName} lib-ver=${c.libVersion}\n`;
}

function client(ctx: Context, args: string[]): void {
  const { client: me, engine, out } = ctx;
  const sub = upper(args[1]);
  const n = args.length;
  if (sub === "ID" && n === 2) return out.int(me.id);
  if (sub === "GETNAME" && n === 2) return out.bulk(me.name === "" ? null : me.name);
  if (sub === "SETNAME" && n === 3) {
    setName(me, args[2]);
    return out.simple("OK");
  }
  if (sub === "SETINFO" && n === 4) {
    const attr = upper(args[2]);
    if (!NAME_RE.test(args[3])) {
      throw new CommandError(
        `ERR ${attr} cannot contain spaces, newlines or special characters.`,
      );
    }
    if (attr === "LIB-NAME") me.libName = args[3];
    else if (attr === "LIB-VER") me.libVersion = args[3];
    else throw new CommandError(`ERR Unrecognized option '${binaryToUtf8(args[2])}'`);
    return out.simple("OK");
  }
  if (sub === "LIST") {
    let cs = [...engine.clients.values()];
    if (n >= 4 && upper(args[2]) === "ID") {
      const ids = new Set(args.slice(3).map((a) => parseIntArg(a)));
      cs = cs.filter((c) => ids.has(c.id));
    } else if (n !== 2) throw new CommandError(SYNTAX);
    return out.verbatim(utf8ToBinary(cs.map((c) => clientLine(ctx, c)).join("")));
  }
  if (sub === "INFO" && n === 2) return out.verbatim(utf8ToBinary(clientLine(ctx, me)));
  if (sub === "KILL" && n === 4 && upper(args[2]) === "ID") {
    const target = engine.clients.get(parseIntArg(args[3]));
    if (target === undefined) throw new CommandError("ERR No such client");
    target.closing = true;
    if (target !== me) engine.killHook?.(target.id);
    return out.int(1);
  }
  if ((sub === "NO-EVICT" || sub === "NO-TOUCH") && n === 3) {
    const v = upper(args[2]);
    if (v !== "ON" && v !== "OFF") throw new CommandError(SYNTAX);
    return out.simple("OK");
  }
  throw new CommandError(
    `ERR unknown subcommand or wrong number of arguments for '${
      binaryToUtf8(args[1])
    }'. Try CLIENT HELP.`,
  );
}

/** INFO's sections, in Redis's order. */
function infoText(ctx: Context, sections: Set<string>): string {
  const { engine } = ctx;
  const all = sections.size === 0 || sections.has("all") || sections.has("everything");
  const want = (s: string) =>
    all || sections.has(s) || (sections.has("default") && s !== "commandstats");
  const mem = Deno.memoryUsage();
  const lines: string[] = [];
  const section = (name: string, kv: [string, string | number][]) => {
    if (!want(name.toLowerCase())) return;
    if (lines.length > 0) lines.push("");
    lines.push(`# ${name}`);
    for (const [k, v] of kv) lines.push(`${k}:${v}`);
  };
  const now = engine.now();
  section("Server", [
    ["redis_version", REDIS_COMPAT_VERSION],
    ["kv_server", SERVER_NAME],
    ["kv_server_version", SERVER_VERSION],
    ["redis_mode", "standalone"],
    ["os", `${Deno.build.os} ${Deno.build.arch}`],
    ["arch_bits", 64],
    ["multiplexing_api", engine.multiplexingApi],
    ["process_id", Deno.pid],
    ["runtime", `deno ${Deno.version.deno} v8 ${Deno.version.v8}`],
    ["uptime_in_seconds", Math.floor((now - engine.startedMs) / 1000)],
    ["uptime_in_days", Math.floor((now - engine.startedMs) / 86_400_000)],
  ]);
  section("Clients", [
    ["connected_clients", engine.clients.size],
    ["maxclients", engine.config.maxclients],
    ["blocked_clients", 0],
  ]);
  section("Memory", [
    ["used_memory", mem.heapUsed + mem.external],
    ["used_memory_human", `${((mem.heapUsed + mem.external) / 1048576).toFixed(2)}M`],
    ["used_memory_rss", mem.rss],
    ["used_memory_heap", mem.heapUsed],
    ["used_memory_external", mem.external],
    ["maxmemory", 0],
    ["maxmemory_policy", "noeviction"],
  ]);
  section("Persistence", [
    ["loading", 0],
    ...(engine.persistence?.info() ?? [["aof_enabled", 0]] as [string, number][]),
  ]);
  const s = engine.stats;
  section("Stats", [
    ["total_connections_received", s.connectionsReceived],
    ["total_commands_processed", s.commands],
    ["rejected_connections", s.rejectedConnections],
    ["expired_keys", engine.keyspace.expiredKeys],
    ["evicted_keys", 0],
    ["keyspace_hits", s.keyspaceHits],
    ["keyspace_misses", s.keyspaceMisses],
    ["total_error_replies", s.errorReplies],
    ["internal_errors", s.internalErrors],
  ]);
  section("Replication", [["role", "master"], ["connected_slaves", 0]]);
  section("CPU", []);
  if (all || sections.has("commandstats")) {
    section(
      "Commandstats",
      [...engine.commandStats].map(([name, st]) => [
        `cmdstat_${name}`,
        `calls=${st.calls},rejected_calls=0,failed_calls=${st.failed}`,
      ]),
    );
  }
  section(
    "Keyspace",
    engine.keyspace.dbs.filter((db) => db.size > 0).map((db) => [
      `db${db.id}`,
      `keys=${db.size},expires=${db.expires.size},avg_ttl=0`,
    ]),
  );
  return lines.join("\r\n") + "\r\n";
}

function info(ctx: Context, args: string[]): void {
  const sections = new Set(args.slice(1).map((a) => a.toLowerCase()));
  ctx.out.verbatim(utf8ToBinary(infoText(ctx, sections)));
}

/** COMMAND's per-command flags (what clients look at). */
function flagsOf(c: Command): string[] {
  const f: string[] = [];
  if (c.flags.write) f.push("write");
  else f.push("readonly");
  if (c.flags.noAuth) f.push("no_auth");
  if (c.flags.noMulti) f.push("no_multi");
  return f;
}

function commandInfo(ctx: Context, c: Command): void {
  const o = ctx.out;
  o.array(10);
  o.bulk(c.name);
  o.int(c.arity);
  const f = flagsOf(c);
  o.set(f.length);
  for (const x of f) o.simple(x);
  o.int(c.keys[0]);
  o.int(c.keys[1]);
  o.int(c.keys[2]);
  o.set(1);
  o.simple(`@${c.group}`);
  o.set(0);
  o.array(0);
  o.array(0);
}

function commandCmd(ctx: Context, args: string[]): void {
  const { engine, out } = ctx;
  if (args.length === 1) {
    const all = [...engine.commands];
    out.array(all.length);
    for (const c of all) commandInfo(ctx, c);
    return;
  }
  const sub = upper(args[1]);
  if (sub === "COUNT" && args.length === 2) return out.int([...engine.commands].length);
  if (sub === "LIST") {
    const names = [...engine.commands].map((c) => c.name);
    out.array(names.length);
    for (const n of names) out.bulk(n);
    return;
  }
  if (sub === "INFO") {
    const names = args.length > 2 ? args.slice(2) : [...engine.commands].map((c) => c.name);
    out.array(names.length);
    for (const n of names) {
      const c = engine.command(n);
      if (c === undefined) out.nilArray();
      else commandInfo(ctx, c);
    }
    return;
  }
  if (sub === "DOCS") {
    const cs = args.length > 2
      ? args.slice(2).map((n) => engine.command(n)).filter((c) => c !== undefined)
      : [...engine.commands];
    out.map(cs.length);
    for (const c of cs) {
      out.bulk(c.name);
      out.map(3);
      out.bulk("summary");
      out.bulk(c.summary);
      out.bulk("since");
      out.bulk("1.0.0");
      out.bulk("group");
      out.bulk(c.group);
    }
    return;
  }
  throw new CommandError(
    `ERR unknown subcommand or wrong number of arguments for '${
      binaryToUtf8(args[1])
    }'. Try COMMAND HELP.`,
  );
}

/** CONFIG SET can change these (the others are read-only). */
const SETTABLE: Record<string, (v: string) => string | number> = {
  requirepass: (v) => v,
  maxclients: (v) => {
    const n = parseIntArg(v);
    if (n < 1) throw new Error("argument must be at least 1");
    return n;
  },
  appendfsync: (v) => {
    const s = v.toLowerCase();
    if (s !== "always" && s !== "everysec" && s !== "no") {
      throw new Error("argument(s) must be one of the following: always, everysec, no");
    }
    return s;
  },
  "active-expire-keys": (v) => parseIntArg(v),
};

/** Read-only settings clients ask about, with Redis's defaults where we have no such thing. */
const FIXED: Record<string, string> = {
  save: "",
  "maxmemory": "0",
  "maxmemory-policy": "noeviction",
};

function config(ctx: Context, args: string[]): void {
  const { engine, out } = ctx;
  const sub = upper(args[1]);
  if (sub === "GET" && args.length >= 3) {
    const cfg = engine.config as unknown as Record<string, string | number>;
    const all: [string, string][] = [
      ...Object.entries(cfg).map(([k, v]) => [k, String(v)] as [string, string]),
      ...Object.entries(FIXED),
    ];
    const found = new Map<string, string>();
    for (const pat of args.slice(2)) {
      const match = compileGlob(pat.toLowerCase());
      for (const [k, v] of all) if (match(k)) found.set(k, v);
    }
    out.map(found.size);
    for (const [k, v] of found) {
      out.bulk(k);
      out.bulk(v);
    }
    return;
  }
  if (sub === "SET" && args.length >= 4 && args.length % 2 === 0) {
    const updates: [string, string | number][] = [];
    for (let i = 2; i < args.length; i += 2) {
      const k = args[i].toLowerCase();
      const set = SETTABLE[k];
      if (set === undefined) {
        throw new CommandError(
          `ERR Unknown option or number of arguments for CONFIG SET - '${binaryToUtf8(args[i])}'`,
        );
      }
      try {
        updates.push([k, set(args[i + 1])]);
      } catch (e) {
        throw new CommandError(
          `ERR CONFIG SET failed (possibly related to argument '${k}') - ${(e as Error).message}`,
        );
      }
    }
    for (const [k, v] of updates) {
      (engine.config as unknown as Record<string, unknown>)[k] = v;
      if (k === "appendfsync") engine.persistence?.setFsync(v as "always" | "everysec" | "no");
    }
    return out.simple("OK");
  }
  if (sub === "RESETSTAT" && args.length === 2) {
    engine.commandStats.clear();
    for (const k of Object.keys(engine.stats) as (keyof typeof engine.stats)[]) engine.stats[k] = 0;
    return out.simple("OK");
  }
  throw new CommandError(
    `ERR unknown subcommand or wrong number of arguments for '${
      binaryToUtf8(args[1])
    }'. Try CONFIG HELP.`,
  );
}

function flushArgs(args: string[]): void {
  if (args.length > 2) throw new CommandError(SYNTAX);
  if (args.length === 2 && !["ASYNC", "SYNC"].includes(upper(args[1]))) {
    throw new CommandError(SYNTAX);
  }
}

function time(ctx: Context): void {
  const ms = ctx.engine.now();
  const us = Math.floor(performance.timeOrigin * 1000 + performance.now() * 1000) % 1_000_000;
  ctx.out.array(2);
  ctx.out.bulk(String(Math.floor(ms / 1000)));
  ctx.out.bulk(String(us));
}

function reset(ctx: Context): void {
  const { client, engine, out } = ctx;
  client.multi = null;
  client.multiFailed = false;
  client.unwatchAll();
  client.db = engine.keyspace.dbs[0];
  client.name = "";
  client.resp = 2;
  out.resp3 = false;
  client.authenticated = engine.config.requirepass === "";
  out.simple("RESET");
}

/** MEMORY USAGE's estimate for a value: the payload plus V8's per-object and per-entry costs. */
function memoryOf(key: string, v: Value): number {
  const entry = 48 + key.length;
  if (typeof v === "string") return entry + 16 + v.length;
  return entry + v.bytes;
}

function memory(ctx: Context, args: string[]): void {
  const sub = upper(args[1]);
  if (sub === "USAGE" && (args.length === 3 || args.length === 5)) {
    const v = ctx.db.get(args[2]);
    return v === undefined ? ctx.out.nil() : ctx.out.int(memoryOf(args[2], v));
  }
  if (sub === "PURGE" && args.length === 2) {
    // With --v8-flags=--expose-gc, a full collection: used_memory then counts live data only.
    const gc = (globalThis as { gc?: () => void }).gc;
    // Twice: the second collection finds the first one's sweeping done.
    gc?.();
    gc?.();
    return ctx.out.simple("OK");
  }
  if (sub === "STATS" && args.length === 2) {
    const m = Deno.memoryUsage();
    const keys = ctx.engine.keyspace.size;
    const fields: [string, number][] = [
      ["peak.allocated", m.heapTotal + m.external],
      ["total.allocated", m.heapUsed + m.external],
      ["keys.count", keys],
      ["keys.bytes-per-key", keys === 0 ? 0 : Math.round((m.heapUsed + m.external) / keys)],
      ["rss", m.rss],
    ];
    ctx.out.map(fields.length);
    for (const [k, v] of fields) {
      ctx.out.bulk(k);
      ctx.out.int(v);
    }
    return;
  }
  throw new CommandError(
    `ERR unknown subcommand or wrong number of arguments for '${
      binaryToUtf8(args[1])
    }'. Try MEMORY HELP.`,
  );
}

function bgrewriteaof(ctx: Context): void {
  const p = ctx.engine.persistence;
  if (p === null) throw new CommandError("ERR append only file is off (APPENDONLY=no)");
  if (p.rewriteInProgress) {
    throw new CommandError("ERR Background append only file rewriting already in progress");
  }
  p.rewrite().catch(() => {/* reported by INFO persistence */});
  ctx.out.simple("Background append only file rewriting started");
}

// --- Transactions ----------------------------------------------------------------------------

function multi(ctx: Context): void {
  if (ctx.client.multi !== null) throw new CommandError("ERR MULTI calls can not be nested");
  ctx.client.multi = [];
  ctx.client.multiFailed = false;
  ctx.out.simple("OK");
}

function exec(ctx: Context): void {
  const { client, engine, out } = ctx;
  const queued = client.multi;
  if (queued === null) throw new CommandError("ERR EXEC without MULTI");
  client.multi = null;
  // A watched key that expired since WATCH counts as changed: reading it expires it now.
  for (const [db, keys] of client.watched) for (const k of keys) db.get(k);
  const failed = client.multiFailed, dirty = client.dirty;
  client.multiFailed = false;
  client.unwatchAll();
  if (failed) {
    throw new CommandError("EXECABORT Transaction discarded because of previous errors.");
  }
  if (dirty) return out.nilArray();
  out.array(queued.length);
  engine.atomically(client, () => {
    for (const args of queued) engine.run(client, engine.command(args[0])!, args, out);
  });
}

function discard(ctx: Context): void {
  if (ctx.client.multi === null) throw new CommandError("ERR DISCARD without MULTI");
  ctx.client.multi = null;
  ctx.client.multiFailed = false;
  ctx.client.unwatchAll();
  ctx.out.simple("OK");
}

function watch(ctx: Context, args: string[]): void {
  const { client, db } = ctx;
  if (client.multi !== null) throw new CommandError("ERR WATCH inside MULTI is not allowed");
  let keys = client.watched.get(db);
  if (keys === undefined) client.watched.set(db, keys = new Set());
  for (let i = 1; i < args.length; i++) {
    // A key that has already expired counts as changed when it is read at EXEC: touch it now.
    db.get(args[i]);
    keys.add(args[i]);
    db.watch(args[i], client);
  }
  ctx.out.simple("OK");
}

function unwatch(ctx: Context): void {
  ctx.client.unwatchAll();
  ctx.out.simple("OK");
}

const CONN = { noAuth: true, noQueue: true };

export const SERVER_COMMANDS: Command[] = [
  command("ping", -1, [0, 0, 0], "connection", "Returns PONG, or the message.", ping),
  command("echo", 2, [0, 0, 0], "connection", "Returns the message.", (c, a) => c.out.bulk(a[1])),
  command("hello", -1, [0, 0, 0], "connection", "Handshakes: protocol, auth, name.", hello, {
    noAuth: true,
    noMulti: true,
  }),
  command("auth", -2, [0, 0, 0], "connection", "Authenticates the connection.", auth, {
    noAuth: true,
    noMulti: true,
  }),
  command("select", 2, [0, 0, 0], "connection", "Selects a database.", select),
  command("client", -2, [0, 0, 0], "connection", "Connection management.", client, {
    noMulti: true,
  }),
  command("quit", -1, [0, 0, 0], "connection", "Closes the connection.", (c) => {
    c.client.closing = true;
    c.out.simple("OK");
  }, CONN),
  command("reset", 1, [0, 0, 0], "connection", "Resets the connection.", reset, CONN),
  command("info", -1, [0, 0, 0], "server", "Returns server information.", info),
  command("command", -1, [0, 0, 0], "server", "Returns details about commands.", commandCmd),
  command("config", -2, [0, 0, 0], "server", "Reads or changes settings.", config, {
    noMulti: true,
  }),
  command(
    "dbsize",
    1,
    [0, 0, 0],
    "server",
    "Returns the number of keys.",
    (c) => c.out.int(c.db.size),
  ),
  command("flushdb", -1, [0, 0, 0], "server", "Deletes every key of the database.", (c, a) => {
    flushArgs(a);
    c.db.flush();
    c.out.simple("OK");
  }, WRITE),
  command("flushall", -1, [0, 0, 0], "server", "Deletes every key.", (c, a) => {
    flushArgs(a);
    for (const db of c.engine.keyspace.dbs) db.flush();
    c.out.simple("OK");
  }, WRITE),
  command("time", 1, [0, 0, 0], "server", "Returns the server time.", time),
  command("bgrewriteaof", 1, [0, 0, 0], "server", "Compacts the append-only file.", bgrewriteaof, {
    noMulti: true,
  }),
  command("memory", -2, [0, 0, 0], "server", "Memory usage of keys and the server.", memory),
  command("multi", 1, [0, 0, 0], "transactions", "Starts a transaction.", multi, { noQueue: true }),
  command("exec", 1, [0, 0, 0], "transactions", "Runs the queued commands.", exec, {
    noQueue: true,
  }),
  command("discard", 1, [0, 0, 0], "transactions", "Drops the queued commands.", discard, {
    noQueue: true,
  }),
  command("watch", -2, [1, -1, 1], "transactions", "Watches keys for EXEC.", watch, {
    noQueue: true,
  }),
  command("unwatch", 1, [0, 0, 0], "transactions", "Forgets watched keys.", unwatch),
];
