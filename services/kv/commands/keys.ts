/**
 * Key commands: DEL, UNLINK, EXISTS, TOUCH, TYPE, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (with NX,
 * XX, GT, LT), TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST, KEYS, SCAN, RENAME, RENAMENX,
 * RANDOMKEY. Semantics and error texts are Redis 7's.
 *
 * @module
 */
import {
  type Command,
  CommandError,
  type Context,
  NOT_INTEGER,
  parseIntArg,
  SYNTAX,
  upper,
} from "../engine.ts";
import { compileGlob } from "../glob.ts";
import { typeName } from "../keyspace.ts";
import { command, expireAtMs, WRITE } from "./define.ts";

function del(ctx: Context, args: string[]): void {
  let n = 0;
  for (let i = 1; i < args.length; i++) if (ctx.db.delete(args[i])) n++;
  ctx.out.int(n);
}

function exists(ctx: Context, args: string[]): void {
  let n = 0;
  for (let i = 1; i < args.length; i++) if (ctx.db.has(args[i])) n++;
  ctx.out.int(n);
}

function type(ctx: Context, args: string[]): void {
  const v = ctx.db.get(args[1]);
  ctx.out.simple(v === undefined ? "none" : typeName(v));
}

function expireWith(unit: "EX" | "PX" | "EXAT" | "PXAT", name: string) {
  return (ctx: Context, args: string[]) => {
    const { db, engine } = ctx;
    const at = expireAtMs(args[2], unit, engine.now(), name, false);
    let nx = false, xx = false, gt = false, lt = false;
    for (let i = 3; i < args.length; i++) {
      const o = upper(args[i]);
      if (o === "NX") nx = true;
      else if (o === "XX") xx = true;
      else if (o === "GT") gt = true;
      else if (o === "LT") lt = true;
      else throw new CommandError(`ERR Unsupported option ${args[i]}`);
    }
    if (nx && (xx || gt || lt)) {
      throw new CommandError("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if (gt && lt) {
      throw new CommandError("ERR GT and LT options at the same time are not compatible");
    }
    ctx.propagated = [];
    if (!db.has(args[1])) return ctx.out.int(0);
    const cur = db.expireTime(args[1]); // undefined: never (infinite)
    if (nx && cur !== undefined) return ctx.out.int(0);
    if (xx && cur === undefined) return ctx.out.int(0);
    if (gt && (cur === undefined || at <= cur)) return ctx.out.int(0);
    if (lt && cur !== undefined && at >= cur) return ctx.out.int(0);
    db.expireAt(args[1], at);
    ctx.propagated = [["PEXPIREAT", args[1], String(at)]];
    ctx.out.int(1);
  };
}

function ttlWith(ms: boolean, absolute: boolean) {
  return (ctx: Context, args: string[]) => {
    const { db, engine } = ctx;
    if (!db.has(args[1])) return ctx.out.int(-2);
    const at = db.expireTime(args[1]);
    if (at === undefined) return ctx.out.int(-1);
    if (absolute) return ctx.out.int(ms ? at : Math.floor(at / 1000));
    const left = Math.max(0, at - engine.now());
    ctx.out.int(ms ? left : Math.floor((left + 500) / 1000));
  };
}

function persist(ctx: Context, args: string[]): void {
  ctx.out.int(ctx.db.persist(args[1]) ? 1 : 0);
}

function keys(ctx: Context, args: string[]): void {
  const match = compileGlob(args[1]);
  const out: string[] = [];
  for (const k of ctx.db.keys()) if (match(k)) out.push(k);
  ctx.out.array(out.length);
  for (const k of out) ctx.out.bulk(k);
}

/** Keys examined per SCAN call at most, whatever COUNT asks (bounds one call's latency). */
export const SCAN_COUNT_MAX = 100_000;

function scan(ctx: Context, args: string[]): void {
  const cursorArg = args[1];
  if (!/^[0-9]{1,20}$/.test(cursorArg) || Number(cursorArg) > Number.MAX_SAFE_INTEGER) {
    throw new CommandError("ERR invalid cursor");
  }
  let count = 10;
  let match: ((k: string) => boolean) | null = null;
  let wantType: string | null = null;
  for (let i = 2; i < args.length; i++) {
    const o = upper(args[i]);
    if (i + 1 >= args.length) throw new CommandError(SYNTAX);
    if (o === "COUNT") {
      count = parseIntArg(args[++i], NOT_INTEGER);
      if (count < 1) throw new CommandError(SYNTAX);
    } else if (o === "MATCH") match = compileGlob(args[++i]);
    else if (o === "TYPE") wantType = args[++i].toLowerCase();
    else throw new CommandError(SYNTAX);
  }
  const db = ctx.db;
  const [next, found] = db.scan(Number(cursorArg), Math.min(count, SCAN_COUNT_MAX), (k) => {
    if (match !== null && !match(k)) return false;
    if (wantType !== null) {
      const v = db.get(k);
      return v !== undefined && typeName(v) === wantType;
    }
    return true;
  });
  ctx.out.array(2);
  ctx.out.bulk(String(next));
  ctx.out.array(found.length);
  for (const k of found) ctx.out.bulk(k);
}

function renameWith(nx: boolean) {
  return (ctx: Context, args: string[]) => {
    const { db } = ctx;
    const from = args[1], to = args[2];
    const v = db.get(from);
    if (v === undefined) throw new CommandError("ERR no such key");
    if (from === to) return nx ? ctx.out.int(0) : ctx.out.simple("OK");
    if (nx && db.has(to)) return ctx.out.int(0);
    const at = db.expireTime(from);
    db.delete(from);
    db.set(to, v);
    if (at !== undefined) db.expireAt(to, at);
    if (nx) ctx.out.int(1);
    else ctx.out.simple("OK");
  };
}

function randomkey(ctx: Context): void {
  ctx.out.bulk(ctx.db.randomKey(ctx.engine.random) ?? null);
}

export const KEY_COMMANDS: Command[] = [
  command("del", -2, [1, -1, 1], "generic", "Deletes keys.", del, WRITE),
  command("unlink", -2, [1, -1, 1], "generic", "Deletes keys.", del, WRITE),
  command("exists", -2, [1, -1, 1], "generic", "Counts the keys that exist.", exists),
  command("touch", -2, [1, -1, 1], "generic", "Counts the keys that exist.", exists),
  command("type", 2, [1, 1, 1], "generic", "Returns the type of a key's value.", type),
  command(
    "expire",
    -3,
    [1, 1, 1],
    "generic",
    "Sets a key's expiry in seconds.",
    expireWith("EX", "expire"),
    WRITE,
  ),
  command(
    "pexpire",
    -3,
    [1, 1, 1],
    "generic",
    "Sets a key's expiry in ms.",
    expireWith("PX", "pexpire"),
    WRITE,
  ),
  command(
    "expireat",
    -3,
    [1, 1, 1],
    "generic",
    "Sets a key's expiry as a Unix time.",
    expireWith("EXAT", "expireat"),
    WRITE,
  ),
  command(
    "pexpireat",
    -3,
    [1, 1, 1],
    "generic",
    "Sets a key's expiry as a Unix time in ms.",
    expireWith("PXAT", "pexpireat"),
    WRITE,
  ),
  command(
    "ttl",
    2,
    [1, 1, 1],
    "generic",
    "Returns a key's time to live in seconds.",
    ttlWith(false, false),
  ),
  command(
    "pttl",
    2,
    [1, 1, 1],
    "generic",
    "Returns a key's time to live in ms.",
    ttlWith(true, false),
  ),
  command(
    "expiretime",
    2,
    [1, 1, 1],
    "generic",
    "Returns a key's expiry as a Unix time.",
    ttlWith(false, true),
  ),
  command(
    "pexpiretime",
    2,
    [1, 1, 1],
    "generic",
    "Returns a key's expiry as a Unix time in ms.",
    ttlWith(true, true),
  ),
  command("persist", 2, [1, 1, 1], "generic", "Removes a key's expiry.", persist, WRITE),
  command("keys", 2, [0, 0, 0], "generic", "Returns the keys matching a pattern.", keys),
  command("scan", -2, [0, 0, 0], "generic", "Iterates over the keys.", scan),
  command("rename", 3, [1, 2, 1], "generic", "Renames a key.", renameWith(false), WRITE),
  command(
    "renamenx",
    3,
    [1, 2, 1],
    "generic",
    "Renames a key if the new name is free.",
    renameWith(true),
    WRITE,
  ),
  command("randomkey", 1, [0, 0, 0], "generic", "Returns a random key.", randomkey),
];
