/**
 * String commands: GET, SET (EX PX EXAT PXAT NX XX KEEPTTL GET), SETNX, SETEX, PSETEX, GETSET,
 * GETDEL, GETEX, MGET, MSET, MSETNX, APPEND, STRLEN, GETRANGE, SETRANGE, and the counters INCR,
 * DECR, INCRBY, DECRBY, INCRBYFLOAT. Semantics and error texts are Redis 7's.
 *
 * @module
 */
import {
  addInt64,
  type Command,
  CommandError,
  type Context,
  getString,
  parseFloatArg,
  parseInt64,
  parseIntArg,
  SYNTAX,
  upper,
} from "../engine.ts";
import { formatDouble, MAX_BULK_BYTES_DEFAULT } from "../resp.ts";
import { command, expireAtMs, WRITE } from "./define.ts";

/** Largest string (Redis's proto-max-bulk-len default). */
export const STRING_BYTES_MAX = MAX_BULK_BYTES_DEFAULT;
const TOO_BIG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

function get(ctx: Context, args: string[]): void {
  const v = getString(ctx.db, args[1]);
  if (v === undefined) ctx.engine.stats.keyspaceMisses++;
  else ctx.engine.stats.keyspaceHits++;
  ctx.out.bulk(v ?? null);
}

function set(ctx: Context, args: string[]): void {
  const { db, out, engine } = ctx;
  const key = args[1], value = args[2];
  let nx = false, xx = false, keepTtl = false, getOld = false;
  let expireUnit: "EX" | "PX" | "EXAT" | "PXAT" | null = null, expireArg = "";
  for (let i = 3; i < args.length; i++) {
    const o = upper(args[i]);
    if (o === "NX" && !xx) nx = true;
    else if (o === "XX" && !nx) xx = true;
    else if (o === "GET") getOld = true;
    else if (o === "KEEPTTL" && expireUnit === null) keepTtl = true;
    else if (
      (o === "EX" || o === "PX" || o === "EXAT" || o === "PXAT") && expireUnit === null &&
      !keepTtl && i + 1 < args.length
    ) {
      expireUnit = o;
      expireArg = args[++i];
    } else throw new CommandError(SYNTAX);
  }
  const at = expireUnit === null
    ? undefined
    : expireAtMs(expireArg, expireUnit, engine.now(), "set", true);
  const old = getOld ? getString(db, key) : undefined;
  const exists = getOld ? old !== undefined : (nx || xx) && db.has(key);
  if ((nx && exists) || (xx && !exists)) {
    ctx.propagated = [];
    if (getOld) out.bulk(old ?? null);
    else out.nil();
    return;
  }
  db.set(key, value, keepTtl);
  if (at !== undefined) {
    db.expireAt(key, at);
    // Relative expiry replays as the absolute time it meant.
    ctx.propagated = [["SET", key, value, "PXAT", String(at)]];
  }
  // Otherwise the command itself replays to the same state (NX/XX hold again at replay).
  if (getOld) out.bulk(old ?? null);
  else out.simple("OK");
}

function setnx(ctx: Context, args: string[]): void {
  if (ctx.db.has(args[1])) return ctx.out.int(0);
  ctx.db.set(args[1], args[2]);
  ctx.out.int(1);
}

function setexWith(unit: "EX" | "PX", name: string) {
  return (ctx: Context, args: string[]) => {
    const at = expireAtMs(args[2], unit, ctx.engine.now(), name, true);
    ctx.db.set(args[1], args[3]);
    ctx.db.expireAt(args[1], at);
    ctx.propagated = [["SET", args[1], args[3], "PXAT", String(at)]];
    ctx.out.simple("OK");
  };
}

function getset(ctx: Context, args: string[]): void {
  const old = getString(ctx.db, args[1]);
  ctx.db.set(args[1], args[2]);
  ctx.out.bulk(old ?? null);
}

function getdel(ctx: Context, args: string[]): void {
  const old = getString(ctx.db, args[1]);
  if (old !== undefined) ctx.db.delete(args[1]);
  ctx.out.bulk(old ?? null);
}

function getex(ctx: Context, args: string[]): void {
  const { db, engine } = ctx;
  const key = args[1];
  let at: number | undefined, persist = false;
  for (let i = 2; i < args.length; i++) {
    const o = upper(args[i]);
    if (
      (o === "EX" || o === "PX" || o === "EXAT" || o === "PXAT") && at === undefined &&
      !persist && i + 1 < args.length
    ) {
      at = expireAtMs(args[++i], o, engine.now(), "getex", true);
    } else if (o === "PERSIST" && at === undefined) persist = true;
    else throw new CommandError(SYNTAX);
  }
  const v = getString(db, key);
  ctx.propagated = [];
  if (v !== undefined) {
    if (at !== undefined) {
      db.expireAt(key, at);
      ctx.propagated = [["PEXPIREAT", key, String(at)]];
    } else if (persist) {
      db.persist(key);
      ctx.propagated = [["PERSIST", key]];
    }
  }
  ctx.out.bulk(v ?? null);
}

function mget(ctx: Context, args: string[]): void {
  ctx.out.array(args.length - 1);
  for (let i = 1; i < args.length; i++) {
    const v = ctx.db.get(args[i]);
    ctx.out.bulk(typeof v === "string" ? v : null);
  }
}

function mset(ctx: Context, args: string[]): void {
  if (args.length % 2 === 0) {
    throw new CommandError(`ERR wrong number of arguments for '${args[0].toLowerCase()}' command`);
  }
  for (let i = 1; i < args.length; i += 2) ctx.db.set(args[i], args[i + 1]);
  ctx.out.simple("OK");
}

function msetnx(ctx: Context, args: string[]): void {
  if (args.length % 2 === 0) {
    throw new CommandError(`ERR wrong number of arguments for 'msetnx' command`);
  }
  for (let i = 1; i < args.length; i += 2) if (ctx.db.has(args[i])) return ctx.out.int(0);
  for (let i = 1; i < args.length; i += 2) ctx.db.set(args[i], args[i + 1]);
  ctx.out.int(1);
}

function append(ctx: Context, args: string[]): void {
  const old = getString(ctx.db, args[1]) ?? "";
  if (old.length + args[2].length > STRING_BYTES_MAX) throw new CommandError(TOO_BIG);
  const v = old + args[2];
  ctx.db.set(args[1], v, true);
  ctx.out.int(v.length);
}

function strlen(ctx: Context, args: string[]): void {
  ctx.out.int((getString(ctx.db, args[1]) ?? "").length);
}

function getrange(ctx: Context, args: string[]): void {
  let start = parseIntArg(args[2]), end = parseIntArg(args[3]);
  const v = getString(ctx.db, args[1]) ?? "";
  const n = v.length;
  if (start < 0 && end < 0 && start > end) return ctx.out.bulk("");
  if (start < 0) start = Math.max(0, n + start);
  if (end < 0) end = Math.max(0, n + end);
  if (end >= n) end = n - 1;
  if (n === 0 || start > end) return ctx.out.bulk("");
  ctx.out.bulk(v.slice(start, end + 1));
}

function setrange(ctx: Context, args: string[]): void {
  const offset = parseIntArg(args[2]);
  if (offset < 0) throw new CommandError("ERR offset is out of range");
  const part = args[3];
  const old = getString(ctx.db, args[1]);
  if (part.length === 0) return ctx.out.int(old?.length ?? 0);
  if (offset + part.length > STRING_BYTES_MAX) throw new CommandError(TOO_BIG);
  let v = old ?? "";
  if (v.length < offset) v += "\0".repeat(offset - v.length);
  v = v.slice(0, offset) + part + v.slice(offset + part.length);
  ctx.db.set(args[1], v, true);
  ctx.out.int(v.length);
}

/** The integer a counter holds (absent: 0). */
function counter(ctx: Context, key: string): number | bigint {
  const v = getString(ctx.db, key);
  if (v === undefined) return 0;
  return parseInt64(v);
}

function incrBy(ctx: Context, key: string, by: number | bigint): void {
  const text = String(addInt64(counter(ctx, key), by));
  ctx.db.set(key, text, true);
  ctx.out.intText(text);
}

const INT64_MIN = -9223372036854775808n;

function incrbyfloat(ctx: Context, args: string[]): void {
  const v = getString(ctx.db, args[1]);
  const cur = v === undefined ? 0 : parseFloatArg(v);
  const by = parseFloatArg(args[2]);
  const r = cur + by;
  if (!Number.isFinite(r)) throw new CommandError("ERR increment would produce NaN or Infinity");
  const s = formatDouble(r);
  ctx.db.set(args[1], s, true);
  ctx.propagated = [["SET", args[1], s, "KEEPTTL"]];
  ctx.out.bulk(s);
}

export const STRING_COMMANDS: Command[] = [
  command("get", 2, [1, 1, 1], "string", "Returns the string value of a key.", get),
  command("set", -3, [1, 1, 1], "string", "Sets the string value of a key.", set, WRITE),
  command("setnx", 3, [1, 1, 1], "string", "Sets a key only when it does not exist.", setnx, WRITE),
  command(
    "setex",
    4,
    [1, 1, 1],
    "string",
    "Sets a key and its expiry in seconds.",
    setexWith("EX", "setex"),
    WRITE,
  ),
  command(
    "psetex",
    4,
    [1, 1, 1],
    "string",
    "Sets a key and its expiry in ms.",
    setexWith("PX", "psetex"),
    WRITE,
  ),
  command("getset", 3, [1, 1, 1], "string", "Sets a key, returning the old value.", getset, WRITE),
  command("getdel", 2, [1, 1, 1], "string", "Returns a key's value and deletes it.", getdel, WRITE),
  command(
    "getex",
    -2,
    [1, 1, 1],
    "string",
    "Returns a key's value and sets its expiry.",
    getex,
    WRITE,
  ),
  command("mget", -2, [1, -1, 1], "string", "Returns the values of keys.", mget),
  command("mset", -3, [1, -1, 2], "string", "Sets several keys.", mset, WRITE),
  command(
    "msetnx",
    -3,
    [1, -1, 2],
    "string",
    "Sets several keys only if none exists.",
    msetnx,
    WRITE,
  ),
  command("append", 3, [1, 1, 1], "string", "Appends to a key's value.", append, WRITE),
  command("strlen", 2, [1, 1, 1], "string", "Returns the length of a key's value.", strlen),
  command("getrange", 4, [1, 1, 1], "string", "Returns a substring of a key's value.", getrange),
  command("setrange", 4, [1, 1, 1], "string", "Overwrites part of a key's value.", setrange, WRITE),
  command(
    "incr",
    2,
    [1, 1, 1],
    "string",
    "Increments a counter by one.",
    (c, a) => incrBy(c, a[1], 1),
    WRITE,
  ),
  command(
    "decr",
    2,
    [1, 1, 1],
    "string",
    "Decrements a counter by one.",
    (c, a) => incrBy(c, a[1], -1),
    WRITE,
  ),
  command(
    "incrby",
    3,
    [1, 1, 1],
    "string",
    "Increments a counter.",
    (c, a) => incrBy(c, a[1], parseInt64(a[2])),
    WRITE,
  ),
  command("decrby", 3, [1, 1, 1], "string", "Decrements a counter.", (c, a) => {
    const by = parseInt64(a[2]);
    if (by === INT64_MIN) throw new CommandError("ERR decrement would overflow");
    incrBy(c, a[1], typeof by === "bigint" ? -by : -by);
  }, WRITE),
  command("incrbyfloat", 3, [1, 1, 1], "string", "Increments a float counter.", incrbyfloat, WRITE),
];
