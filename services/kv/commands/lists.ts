/**
 * List commands: LPUSH, RPUSH, LPUSHX, RPUSHX, LPOP, RPOP (with a count), LRANGE, LLEN, LINDEX,
 * LSET, LTRIM. An emptied list is deleted, as in Redis.
 *
 * @module
 */
import { type Command, CommandError, type Context, getTyped, parseIntArg } from "../engine.ts";
import { ListValue } from "../values.ts";
import { command, WRITE } from "./define.ts";

function pushWith(front: boolean, onlyIfExists: boolean) {
  return (ctx: Context, args: string[]) => {
    const { db } = ctx;
    let l = getTyped(db, args[1], ListValue);
    if (l === undefined) {
      if (onlyIfExists) return ctx.out.int(0);
      l = new ListValue();
      db.set(args[1], l);
    } else db.touch(args[1]);
    for (let i = 2; i < args.length; i++) {
      if (front) l.pushFront(args[i]);
      else l.pushBack(args[i]);
    }
    ctx.out.int(l.length);
  };
}

function popWith(front: boolean) {
  return (ctx: Context, args: string[]) => {
    const { db, out } = ctx;
    if (args.length > 3) {
      throw new CommandError(
        `ERR wrong number of arguments for '${front ? "lpop" : "rpop"}' command`,
      );
    }
    let count = -1;
    if (args.length === 3) {
      count = parseIntArg(args[2], "ERR value is out of range, must be positive");
      if (count < 0) throw new CommandError("ERR value is out of range, must be positive");
    }
    const l = getTyped(db, args[1], ListValue);
    if (l === undefined) return count < 0 ? out.nil() : out.nilArray();
    if (count < 0) {
      const v = front ? l.popFront() : l.popBack();
      if (l.length === 0) db.delete(args[1]);
      else db.touch(args[1]);
      return out.bulk(v!);
    }
    const n = Math.min(count, l.length);
    out.array(n);
    for (let i = 0; i < n; i++) out.bulk((front ? l.popFront() : l.popBack())!);
    if (l.length === 0) db.delete(args[1]);
    else if (n > 0) db.touch(args[1]);
  };
}

/** Redis's index range rule: negative from the end, clamped; null when empty. */
export function clampRange(start: number, stop: number, n: number): [number, number] | null {
  if (start < 0) start = Math.max(0, n + start);
  if (stop < 0) stop = n + stop;
  if (stop >= n) stop = n - 1;
  if (start > stop || start >= n) return null;
  return [start, stop];
}

function lrange(ctx: Context, args: string[]): void {
  const start = parseIntArg(args[2]), stop = parseIntArg(args[3]);
  const l = getTyped(ctx.db, args[1], ListValue);
  const r = l === undefined ? null : clampRange(start, stop, l.length);
  if (r === null) return ctx.out.array(0);
  ctx.out.array(r[1] - r[0] + 1);
  for (const v of l!.slice(r[0], r[1])) ctx.out.bulk(v);
}

function llen(ctx: Context, args: string[]): void {
  ctx.out.int(getTyped(ctx.db, args[1], ListValue)?.length ?? 0);
}

function lindex(ctx: Context, args: string[]): void {
  const i = parseIntArg(args[2]);
  ctx.out.bulk(getTyped(ctx.db, args[1], ListValue)?.at(i) ?? null);
}

function lset(ctx: Context, args: string[]): void {
  const i = parseIntArg(args[2]);
  const l = getTyped(ctx.db, args[1], ListValue);
  if (l === undefined) throw new CommandError("ERR no such key");
  if (!l.setAt(i, args[3])) throw new CommandError("ERR index out of range");
  ctx.db.touch(args[1]);
  ctx.out.simple("OK");
}

function ltrim(ctx: Context, args: string[]): void {
  const start = parseIntArg(args[2]), stop = parseIntArg(args[3]);
  const l = getTyped(ctx.db, args[1], ListValue);
  if (l !== undefined) {
    const r = clampRange(start, stop, l.length);
    if (r === null) ctx.db.delete(args[1]);
    else {
      const keepTail = l.length - 1 - r[1];
      for (let i = 0; i < r[0]; i++) l.popFront();
      for (let i = 0; i < keepTail; i++) l.popBack();
      ctx.db.touch(args[1]);
    }
  }
  ctx.out.simple("OK");
}

export const LIST_COMMANDS: Command[] = [
  command(
    "lpush",
    -3,
    [1, 1, 1],
    "list",
    "Prepends elements to a list.",
    pushWith(true, false),
    WRITE,
  ),
  command(
    "rpush",
    -3,
    [1, 1, 1],
    "list",
    "Appends elements to a list.",
    pushWith(false, false),
    WRITE,
  ),
  command(
    "lpushx",
    -3,
    [1, 1, 1],
    "list",
    "Prepends to a list that exists.",
    pushWith(true, true),
    WRITE,
  ),
  command(
    "rpushx",
    -3,
    [1, 1, 1],
    "list",
    "Appends to a list that exists.",
    pushWith(false, true),
    WRITE,
  ),
  command(
    "lpop",
    -2,
    [1, 1, 1],
    "list",
    "Removes and returns the first elements.",
    popWith(true),
    WRITE,
  ),
  command(
    "rpop",
    -2,
    [1, 1, 1],
    "list",
    "Removes and returns the last elements.",
    popWith(false),
    WRITE,
  ),
  command("lrange", 4, [1, 1, 1], "list", "Returns a range of a list.", lrange),
  command("llen", 2, [1, 1, 1], "list", "Returns the length of a list.", llen),
  command("lindex", 3, [1, 1, 1], "list", "Returns an element by index.", lindex),
  command("lset", 4, [1, 1, 1], "list", "Sets an element by index.", lset, WRITE),
  command("ltrim", 4, [1, 1, 1], "list", "Trims a list to a range.", ltrim, WRITE),
];
