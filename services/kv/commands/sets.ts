/**
 * Set commands: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, SPOP, SRANDMEMBER. An emptied
 * set is deleted, as in Redis.
 *
 * @module
 */
import { type Command, CommandError, type Context, getTyped, parseIntArg } from "../engine.ts";
import { SetValue } from "../values.ts";
import { command, WRITE } from "./define.ts";

function sadd(ctx: Context, args: string[]): void {
  let s = getTyped(ctx.db, args[1], SetValue);
  if (s === undefined) {
    s = new SetValue();
    ctx.db.set(args[1], s);
  }
  let n = 0;
  for (let i = 2; i < args.length; i++) if (s.add(args[i])) n++;
  if (n > 0) ctx.db.touch(args[1]);
  ctx.out.int(n);
}

function srem(ctx: Context, args: string[]): void {
  const s = getTyped(ctx.db, args[1], SetValue);
  let n = 0;
  if (s !== undefined) {
    for (let i = 2; i < args.length; i++) if (s.delete(args[i])) n++;
    if (s.size === 0) ctx.db.delete(args[1]);
    else if (n > 0) ctx.db.touch(args[1]);
  }
  ctx.out.int(n);
}

function smembers(ctx: Context, args: string[]): void {
  const s = getTyped(ctx.db, args[1], SetValue);
  ctx.out.set(s?.size ?? 0);
  if (s !== undefined) { for (const m of s.values()) ctx.out.bulk(m); }
}

function sismember(ctx: Context, args: string[]): void {
  ctx.out.int(getTyped(ctx.db, args[1], SetValue)?.has(args[2]) ? 1 : 0);
}

function smismember(ctx: Context, args: string[]): void {
  const s = getTyped(ctx.db, args[1], SetValue);
  ctx.out.array(args.length - 2);
  for (let i = 2; i < args.length; i++) ctx.out.int(s?.has(args[i]) ? 1 : 0);
}

function scard(ctx: Context, args: string[]): void {
  ctx.out.int(getTyped(ctx.db, args[1], SetValue)?.size ?? 0);
}

const COUNT_RANGE = "ERR value is out of range, must be positive";

function spop(ctx: Context, args: string[]): void {
  if (args.length > 3) throw new CommandError("ERR syntax error");
  const { db, out, engine } = ctx;
  let count = -1;
  if (args.length === 3) {
    count = parseIntArg(args[2], COUNT_RANGE);
    if (count < 0) throw new CommandError(COUNT_RANGE);
  }
  const s = getTyped(db, args[1], SetValue);
  ctx.propagated = [];
  if (s === undefined) return count < 0 ? out.nil() : out.set(0);
  if (count < 0) {
    const m = s.random(engine.random)!;
    ctx.propagated = [["SREM", args[1], m]];
    s.delete(m);
    if (s.size === 0) db.delete(args[1]);
    else db.touch(args[1]);
    return out.bulk(m);
  }
  const n = Math.min(count, s.size);
  out.set(n);
  const removed = ["SREM", args[1]];
  for (let i = 0; i < n; i++) {
    const m = s.random(engine.random)!;
    s.delete(m);
    removed.push(m);
    out.bulk(m);
  }
  if (n > 0) ctx.propagated = [removed];
  if (s.size === 0) db.delete(args[1]);
  else if (n > 0) db.touch(args[1]);
}

function srandmember(ctx: Context, args: string[]): void {
  if (args.length > 3) throw new CommandError("ERR syntax error");
  const { out, engine } = ctx;
  const s = getTyped(ctx.db, args[1], SetValue);
  if (args.length === 2) return out.bulk(s?.random(engine.random) ?? null);
  const count = parseIntArg(args[2]);
  if (s === undefined || count === 0) return out.array(0);
  if (count < 0) {
    // Repeats allowed: |count| draws.
    const n = Math.min(-count, 10_000_000);
    out.array(n);
    for (let i = 0; i < n; i++) out.bulk(s.random(engine.random)!);
    return;
  }
  if (count >= s.size) {
    out.array(s.size);
    for (const m of s.values()) out.bulk(m);
    return;
  }
  const picked = new Set<string>();
  while (picked.size < count) picked.add(s.random(engine.random)!);
  out.array(picked.size);
  for (const m of picked) out.bulk(m);
}

export const SET_COMMANDS: Command[] = [
  command("sadd", -3, [1, 1, 1], "set", "Adds members to a set.", sadd, WRITE),
  command("srem", -3, [1, 1, 1], "set", "Removes members from a set.", srem, WRITE),
  command("smembers", 2, [1, 1, 1], "set", "Returns every member.", smembers),
  command("sismember", 3, [1, 1, 1], "set", "Says whether a member is in a set.", sismember),
  command("smismember", -3, [1, 1, 1], "set", "Says whether members are in a set.", smismember),
  command("scard", 2, [1, 1, 1], "set", "Returns the number of members.", scard),
  command("spop", -2, [1, 1, 1], "set", "Removes and returns random members.", spop, WRITE),
  command("srandmember", -2, [1, 1, 1], "set", "Returns random members.", srandmember),
];
