/**
 * Sorted set commands: ZADD (NX XX GT LT CH INCR), ZINCRBY, ZREM, ZSCORE, ZMSCORE, ZCARD, ZCOUNT,
 * ZRANK, ZREVRANK (WITHSCORE), ZRANGE (BYSCORE, BYLEX, REV, LIMIT, WITHSCORES), ZREVRANGE,
 * ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZPOPMIN, ZPOPMAX. An emptied sorted set is deleted.
 *
 * @module
 */
import {
  type Command,
  CommandError,
  type Context,
  getTyped,
  parseFloatArg,
  parseIntArg,
  SYNTAX,
  upper,
} from "../engine.ts";
import { SortedSet } from "../zset.ts";
import { command, WRITE } from "./define.ts";

function zsetFor(ctx: Context, key: string): SortedSet {
  let z = getTyped(ctx.db, key, SortedSet);
  if (z === undefined) {
    z = new SortedSet(ctx.engine.random);
    ctx.db.set(key, z);
  }
  return z;
}

function dropIfEmpty(ctx: Context, key: string, z: SortedSet, changed: boolean): void {
  if (z.size === 0) ctx.db.delete(key);
  else if (changed) ctx.db.touch(key);
}

function zadd(ctx: Context, args: string[]): void {
  let nx = false, xx = false, gt = false, lt = false, ch = false, incr = false;
  let i = 2;
  for (; i < args.length; i++) {
    const o = upper(args[i]);
    if (o === "NX") nx = true;
    else if (o === "XX") xx = true;
    else if (o === "GT") gt = true;
    else if (o === "LT") lt = true;
    else if (o === "CH") ch = true;
    else if (o === "INCR") incr = true;
    else break;
  }
  const pairs = args.length - i;
  if (pairs === 0 || pairs % 2 !== 0) throw new CommandError(SYNTAX);
  if (nx && xx) throw new CommandError("ERR XX and NX options at the same time are not compatible");
  if ((gt && lt) || (nx && (gt || lt))) {
    throw new CommandError("ERR GT, LT, and/or NX options at the same time are not compatible");
  }
  if (incr && pairs !== 2) {
    throw new CommandError("ERR INCR option supports a single increment-element pair");
  }
  const scores: number[] = [];
  for (let j = i; j < args.length; j += 2) scores.push(parseFloatArg(args[j]));
  const existing = getTyped(ctx.db, args[1], SortedSet);
  if (existing === undefined && xx) return incr ? ctx.out.nil() : ctx.out.int(0);
  const z = existing ?? zsetFor(ctx, args[1]);
  let added = 0, changed = 0;
  let result: number | null = null;
  for (let j = i, k = 0; j < args.length; j += 2, k++) {
    const member = args[j + 1];
    const cur = z.score(member);
    let score = scores[k];
    if (cur === undefined) {
      if (xx) continue;
    } else {
      if (nx) continue;
      if (incr) {
        score = cur + score;
        if (Number.isNaN(score)) {
          dropIfEmpty(ctx, args[1], z, added + changed > 0);
          throw new CommandError("ERR resulting score is not a number (NaN)");
        }
      }
      if ((gt && score <= cur) || (lt && score >= cur)) continue;
    }
    if (cur === undefined) added++;
    else if (cur !== score) changed++;
    z.add(member, score);
    result = score;
  }
  dropIfEmpty(ctx, args[1], z, added + changed > 0);
  if (incr) return result === null ? ctx.out.nil() : ctx.out.double(result);
  ctx.out.int(ch ? added + changed : added);
}

function zincrby(ctx: Context, args: string[]): void {
  const by = parseFloatArg(args[2]);
  const z = zsetFor(ctx, args[1]);
  const cur = z.score(args[3]) ?? 0;
  const score = cur + by;
  if (Number.isNaN(score)) {
    dropIfEmpty(ctx, args[1], z, false);
    throw new CommandError("ERR resulting score is not a number (NaN)");
  }
  z.add(args[3], score);
  ctx.db.touch(args[1]);
  ctx.out.double(score);
}

function zrem(ctx: Context, args: string[]): void {
  const z = getTyped(ctx.db, args[1], SortedSet);
  let n = 0;
  if (z !== undefined) {
    for (let i = 2; i < args.length; i++) if (z.remove(args[i])) n++;
    dropIfEmpty(ctx, args[1], z, n > 0);
  }
  ctx.out.int(n);
}

function zscore(ctx: Context, args: string[]): void {
  const s = getTyped(ctx.db, args[1], SortedSet)?.score(args[2]);
  if (s === undefined) ctx.out.nil();
  else ctx.out.double(s);
}

function zmscore(ctx: Context, args: string[]): void {
  const z = getTyped(ctx.db, args[1], SortedSet);
  ctx.out.array(args.length - 2);
  for (let i = 2; i < args.length; i++) {
    const s = z?.score(args[i]);
    if (s === undefined) ctx.out.nil();
    else ctx.out.double(s);
  }
}

function zcard(ctx: Context, args: string[]): void {
  ctx.out.int(getTyped(ctx.db, args[1], SortedSet)?.size ?? 0);
}

/** A score bound: `(x` exclusive, `-inf`, `+inf`. */
function scoreBound(s: string): [number, boolean] {
  const ex = s.startsWith("(");
  const v = parseFloatArg(ex ? s.slice(1) : s, "ERR min or max is not a float");
  return [v, ex];
}

function zcount(ctx: Context, args: string[]): void {
  const [min, minEx] = scoreBound(args[2]), [max, maxEx] = scoreBound(args[3]);
  ctx.out.int(getTyped(ctx.db, args[1], SortedSet)?.countByScore(min, minEx, max, maxEx) ?? 0);
}

function rankWith(reverse: boolean) {
  return (ctx: Context, args: string[]) => {
    if (args.length > 4 || (args.length === 4 && upper(args[3]) !== "WITHSCORE")) {
      throw new CommandError(SYNTAX);
    }
    const z = getTyped(ctx.db, args[1], SortedSet);
    const r = z === undefined ? -1 : z.rank(args[2], reverse);
    if (args.length === 4) {
      if (r < 0) return ctx.out.nilArray();
      ctx.out.array(2);
      ctx.out.int(r);
      ctx.out.double(z!.score(args[2])!);
      return;
    }
    if (r < 0) ctx.out.nil();
    else ctx.out.int(r);
  };
}

/** Writes members (and scores): RESP2 flat, RESP3 as [member, score] pairs. */
function replyEntries(ctx: Context, entries: [string, number][], withScores: boolean): void {
  const out = ctx.out;
  if (!withScores) {
    out.array(entries.length);
    for (const [m] of entries) out.bulk(m);
    return;
  }
  if (out.resp3) {
    out.array(entries.length);
    for (const [m, s] of entries) {
      out.array(2);
      out.bulk(m);
      out.double(s);
    }
    return;
  }
  out.array(entries.length * 2);
  for (const [m, s] of entries) {
    out.bulk(m);
    out.double(s);
  }
}

/** A lex bound: `[x` inclusive, `(x` exclusive, `-`, `+`. */
function lexBound(s: string): { v: string; ex: boolean; inf: -1 | 0 | 1 } {
  if (s === "-") return { v: "", ex: false, inf: -1 };
  if (s === "+") return { v: "", ex: false, inf: 1 };
  if (s.startsWith("[")) return { v: s.slice(1), ex: false, inf: 0 };
  if (s.startsWith("(")) return { v: s.slice(1), ex: true, inf: 0 };
  throw new CommandError("ERR min or max not valid string range item");
}

function inLex(m: string, min: ReturnType<typeof lexBound>, max: ReturnType<typeof lexBound>) {
  const aboveMin = min.inf === -1 || (min.inf === 0 && (min.ex ? m > min.v : m >= min.v));
  const belowMax = max.inf === 1 || (max.inf === 0 && (max.ex ? m < max.v : m <= max.v));
  return aboveMin && belowMax;
}

/** ZRANGE and its older forms, after their arguments are read. */
function rangeGeneric(
  ctx: Context,
  key: string,
  a: string,
  b: string,
  by: "index" | "score" | "lex",
  rev: boolean,
  limit: [number, number] | null,
  withScores: boolean,
): void {
  if (by === "lex" && withScores) throw new CommandError(SYNTAX);
  if (limit !== null && by === "index") {
    throw new CommandError(
      "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
    );
  }
  const z = getTyped(ctx.db, key, SortedSet);
  if (by === "index") {
    const start = parseIntArg(a), stop = parseIntArg(b);
    return replyEntries(ctx, z?.range(start, stop, rev) ?? [], withScores);
  }
  const [offset, count] = limit ?? [0, -1];
  if (by === "score") {
    // REV takes max first.
    const [lo, loEx] = scoreBound(rev ? b : a), [hi, hiEx] = scoreBound(rev ? a : b);
    if (z === undefined || offset < 0) return replyEntries(ctx, [], withScores);
    return replyEntries(ctx, z.rangeByScore(lo, loEx, hi, hiEx, rev, offset, count), withScores);
  }
  const min = lexBound(rev ? b : a), max = lexBound(rev ? a : b);
  const found: [string, number][] = [];
  if (z !== undefined && offset >= 0) {
    const all = [...z.entries()].filter(([m]) => inLex(m, min, max));
    if (rev) all.reverse();
    const end = count < 0 ? all.length : Math.min(all.length, offset + count);
    for (let i = offset; i < end; i++) found.push(all[i]);
  }
  replyEntries(ctx, found, false);
}

function readLimit(args: string[], i: number): [number, number] {
  if (i + 2 >= args.length) throw new CommandError(SYNTAX);
  return [parseIntArg(args[i + 1]), parseIntArg(args[i + 2])];
}

function zrange(ctx: Context, args: string[]): void {
  let by: "index" | "score" | "lex" = "index", rev = false, withScores = false;
  let limit: [number, number] | null = null;
  for (let i = 4; i < args.length; i++) {
    const o = upper(args[i]);
    if (o === "BYSCORE" && by === "index") by = "score";
    else if (o === "BYLEX" && by === "index") by = "lex";
    else if (o === "REV") rev = true;
    else if (o === "WITHSCORES") withScores = true;
    else if (o === "LIMIT") {
      limit = readLimit(args, i);
      i += 2;
    } else throw new CommandError(SYNTAX);
  }
  rangeGeneric(ctx, args[1], args[2], args[3], by, rev, limit, withScores);
}

function zrevrange(ctx: Context, args: string[]): void {
  if (args.length > 5 || (args.length === 5 && upper(args[4]) !== "WITHSCORES")) {
    throw new CommandError(SYNTAX);
  }
  rangeGeneric(ctx, args[1], args[2], args[3], "index", true, null, args.length === 5);
}

function rangeByScoreWith(rev: boolean) {
  return (ctx: Context, args: string[]) => {
    let withScores = false, limit: [number, number] | null = null;
    for (let i = 4; i < args.length; i++) {
      const o = upper(args[i]);
      if (o === "WITHSCORES") withScores = true;
      else if (o === "LIMIT") {
        limit = readLimit(args, i);
        i += 2;
      } else throw new CommandError(SYNTAX);
    }
    rangeGeneric(ctx, args[1], args[2], args[3], "score", rev, limit, withScores);
  };
}

function popWith(max: boolean) {
  return (ctx: Context, args: string[]) => {
    if (args.length > 3) throw new CommandError(SYNTAX);
    let count = 1;
    if (args.length === 3) {
      count = parseIntArg(args[2], "ERR value is out of range, must be positive");
      if (count < 0) throw new CommandError("ERR value is out of range, must be positive");
    }
    const z = getTyped(ctx.db, args[1], SortedSet);
    const popped = z === undefined ? [] : max ? z.popMax(count) : z.popMin(count);
    if (z !== undefined) dropIfEmpty(ctx, args[1], z, popped.length > 0);
    if (args.length === 3 || !ctx.out.resp3) return replyEntries(ctx, popped, true);
    // RESP3 without a count: one flat [member, score].
    ctx.out.array(popped.length === 0 ? 0 : 2);
    if (popped.length > 0) {
      ctx.out.bulk(popped[0][0]);
      ctx.out.double(popped[0][1]);
    }
  };
}

export const ZSET_COMMANDS: Command[] = [
  command("zadd", -4, [1, 1, 1], "sorted-set", "Adds members or updates scores.", zadd, WRITE),
  command("zincrby", 4, [1, 1, 1], "sorted-set", "Increments a member's score.", zincrby, WRITE),
  command("zrem", -3, [1, 1, 1], "sorted-set", "Removes members.", zrem, WRITE),
  command("zscore", 3, [1, 1, 1], "sorted-set", "Returns a member's score.", zscore),
  command("zmscore", -3, [1, 1, 1], "sorted-set", "Returns members' scores.", zmscore),
  command("zcard", 2, [1, 1, 1], "sorted-set", "Returns the number of members.", zcard),
  command("zcount", 4, [1, 1, 1], "sorted-set", "Counts members in a score range.", zcount),
  command("zrank", -3, [1, 1, 1], "sorted-set", "Returns a member's rank.", rankWith(false)),
  command(
    "zrevrank",
    -3,
    [1, 1, 1],
    "sorted-set",
    "Returns a member's rank, high first.",
    rankWith(true),
  ),
  command("zrange", -4, [1, 1, 1], "sorted-set", "Returns a range of members.", zrange),
  command("zrevrange", -4, [1, 1, 1], "sorted-set", "Returns a range, high first.", zrevrange),
  command(
    "zrangebyscore",
    -4,
    [1, 1, 1],
    "sorted-set",
    "Returns members in a score range.",
    rangeByScoreWith(false),
  ),
  command(
    "zrevrangebyscore",
    -4,
    [1, 1, 1],
    "sorted-set",
    "Returns members in a score range, high first.",
    rangeByScoreWith(true),
  ),
  command(
    "zpopmin",
    -2,
    [1, 1, 1],
    "sorted-set",
    "Removes and returns the lowest members.",
    popWith(false),
    WRITE,
  ),
  command(
    "zpopmax",
    -2,
    [1, 1, 1],
    "sorted-set",
    "Removes and returns the highest members.",
    popWith(true),
    WRITE,
  ),
];
