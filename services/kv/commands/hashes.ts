/**
 * Hash commands: HSET, HMSET, HSETNX, HGET, HMGET, HGETALL, HKEYS, HVALS, HDEL, HLEN, HSTRLEN,
 * HEXISTS, HINCRBY, HINCRBYFLOAT. An emptied hash is deleted, as in Redis.
 *
 * @module
 */
import {
  addInt64,
  type Command,
  CommandError,
  type Context,
  getTyped,
  parseFloatArg,
  parseInt64,
} from "../engine.ts";
import { formatDouble } from "../resp.ts";
import { HashValue } from "../values.ts";
import { command, WRITE } from "./define.ts";

function hashFor(ctx: Context, key: string): HashValue {
  let h = getTyped(ctx.db, key, HashValue);
  if (h === undefined) {
    h = new HashValue();
    ctx.db.set(key, h);
  } else ctx.db.touch(key);
  return h;
}

function hsetWith(name: string, replyOk: boolean) {
  return (ctx: Context, args: string[]) => {
    if (args.length % 2 !== 0) {
      throw new CommandError(`ERR wrong number of arguments for '${name}' command`);
    }
    const h = hashFor(ctx, args[1]);
    let added = 0;
    for (let i = 2; i < args.length; i += 2) {
      if (!h.fields.has(args[i])) added++;
      h.fields.set(args[i], args[i + 1]);
    }
    if (replyOk) ctx.out.simple("OK");
    else ctx.out.int(added);
  };
}

function hsetnx(ctx: Context, args: string[]): void {
  const existing = getTyped(ctx.db, args[1], HashValue);
  if (existing?.fields.has(args[2])) return ctx.out.int(0);
  hashFor(ctx, args[1]).fields.set(args[2], args[3]);
  ctx.out.int(1);
}

function hget(ctx: Context, args: string[]): void {
  ctx.out.bulk(getTyped(ctx.db, args[1], HashValue)?.fields.get(args[2]) ?? null);
}

function hmget(ctx: Context, args: string[]): void {
  const h = getTyped(ctx.db, args[1], HashValue);
  ctx.out.array(args.length - 2);
  for (let i = 2; i < args.length; i++) ctx.out.bulk(h?.fields.get(args[i]) ?? null);
}

function hgetall(ctx: Context, args: string[]): void {
  const h = getTyped(ctx.db, args[1], HashValue);
  ctx.out.map(h?.fields.size ?? 0);
  if (h !== undefined) {
    for (const [f, v] of h.fields) {
      ctx.out.bulk(f);
      ctx.out.bulk(v);
    }
  }
}

function hkeysWith(values: boolean) {
  return (ctx: Context, args: string[]) => {
    const h = getTyped(ctx.db, args[1], HashValue);
    ctx.out.array(h?.fields.size ?? 0);
    if (h !== undefined) {
      for (const v of values ? h.fields.values() : h.fields.keys()) ctx.out.bulk(v);
    }
  };
}

function hdel(ctx: Context, args: string[]): void {
  const h = getTyped(ctx.db, args[1], HashValue);
  let n = 0;
  if (h !== undefined) {
    for (let i = 2; i < args.length; i++) if (h.fields.delete(args[i])) n++;
    if (h.fields.size === 0) ctx.db.delete(args[1]);
    else if (n > 0) ctx.db.touch(args[1]);
  }
  ctx.out.int(n);
}

function hlen(ctx: Context, args: string[]): void {
  ctx.out.int(getTyped(ctx.db, args[1], HashValue)?.fields.size ?? 0);
}

function hstrlen(ctx: Context, args: string[]): void {
  ctx.out.int(getTyped(ctx.db, args[1], HashValue)?.fields.get(args[2])?.length ?? 0);
}

function hexists(ctx: Context, args: string[]): void {
  ctx.out.int(getTyped(ctx.db, args[1], HashValue)?.fields.has(args[2]) ? 1 : 0);
}

function hincrby(ctx: Context, args: string[]): void {
  const by = parseInt64(args[3]);
  const cur = getTyped(ctx.db, args[1], HashValue)?.fields.get(args[2]);
  const base = cur === undefined ? 0 : parseInt64(cur, "ERR hash value is not an integer");
  const r = addInt64(base, by);
  hashFor(ctx, args[1]).fields.set(args[2], String(r));
  ctx.out.int(r);
}

function hincrbyfloat(ctx: Context, args: string[]): void {
  const by = parseFloatArg(args[3]);
  const cur = getTyped(ctx.db, args[1], HashValue)?.fields.get(args[2]);
  const base = cur === undefined ? 0 : parseFloatArg(cur, "ERR hash value is not a float");
  const r = base + by;
  if (!Number.isFinite(r)) throw new CommandError("ERR increment would produce NaN or Infinity");
  const s = formatDouble(r);
  hashFor(ctx, args[1]).fields.set(args[2], s);
  ctx.propagated = [["HSET", args[1], args[2], s]];
  ctx.out.bulk(s);
}

export const HASH_COMMANDS: Command[] = [
  command("hset", -4, [1, 1, 1], "hash", "Sets fields of a hash.", hsetWith("hset", false), WRITE),
  command("hmset", -4, [1, 1, 1], "hash", "Sets fields of a hash.", hsetWith("hmset", true), WRITE),
  command("hsetnx", 4, [1, 1, 1], "hash", "Sets a field only if it does not exist.", hsetnx, WRITE),
  command("hget", 3, [1, 1, 1], "hash", "Returns a field's value.", hget),
  command("hmget", -3, [1, 1, 1], "hash", "Returns fields' values.", hmget),
  command("hgetall", 2, [1, 1, 1], "hash", "Returns every field and value.", hgetall),
  command("hkeys", 2, [1, 1, 1], "hash", "Returns every field.", hkeysWith(false)),
  command("hvals", 2, [1, 1, 1], "hash", "Returns every value.", hkeysWith(true)),
  command("hdel", -3, [1, 1, 1], "hash", "Deletes fields.", hdel, WRITE),
  command("hlen", 2, [1, 1, 1], "hash", "Returns the number of fields.", hlen),
  command("hstrlen", 3, [1, 1, 1], "hash", "Returns the length of a field's value.", hstrlen),
  command("hexists", 3, [1, 1, 1], "hash", "Says whether a field exists.", hexists),
  command("hincrby", 4, [1, 1, 1], "hash", "Increments a field's integer.", hincrby, WRITE),
  command("hincrbyfloat", 4, [1, 1, 1], "hash", "Increments a field's float.", hincrbyfloat, WRITE),
];
