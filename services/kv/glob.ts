/**
 * Redis's glob-style patterns, as KEYS, SCAN MATCH, HSCAN / SSCAN / ZSCAN MATCH and PSUBSCRIBE
 * use them (Redis's `stringmatchlen`). Patterns and subjects are binary strings: one char per byte.
 *
 * - `*` matches any sequence of bytes, the empty one included; `?` matches exactly one byte.
 * - `[abc]` matches one byte of the set, `[^abc]` one byte outside it; `[a-z]` is a range and a
 *   reversed range (`[z-a]`) means the same range. A range takes the two bytes around its `-`
 *   as they are, so in `[a-]` the `]` is the range's end, not the end of the set (as in Redis).
 *   `[]` is an empty set (matches nothing) and `[^]` matches any byte.
 * - `\x` matches `x` literally, outside and inside brackets; a lone `\` at the very end of the
 *   pattern matches a backslash.
 * - A `[` that is never closed runs to the end of the pattern, as if the pattern ended in `]`.
 * - Ranges order bytes as unsigned, 0-255. Redis compares C `char`s, signed on x86-64 builds, so
 *   there a range from below 0x80 to above it (`[a-\xff]`) means something else; ARM builds,
 *   where `char` is unsigned, agree with this.
 * - With `nocase`, ASCII letters compare case-insensitively (C-locale `tolower`: bytes 128-255
 *   are never folded). Range bounds are folded after a reversed range is swapped, as in Redis;
 *   escaped set members are folded too (Redis compares those exactly, which looks accidental).
 *
 * Matching runs in O(pattern × subject) time at worst, whatever the pattern: the pattern is
 * compiled to single-byte steps plus stars, and a failure only ever rewinds to the most recent
 * star (an earlier star cannot help: whatever it would swallow extra, the later star can swallow
 * just as well). Redis instead recurses, and past 1000 nested stars reports no match; this has no
 * such cap.
 *
 * One deliberate difference from `stringmatchlen`: Redis's loop never runs on an empty subject, so
 * there only the empty pattern matches `""` and even `*` does not (KEYS and SCAN hide this by not
 * calling the matcher for a bare `*`). Here `*`, `**`, ... match `""` as well, as the documented
 * meaning of `*` says, so that {@link compileGlob}'s `*` fast path and {@link globMatch} agree.
 *
 * @module
 */

/** Op for `*`. Other ops: a byte to match (>= 0), {@link ANY}, or a set (<= {@link SET_BASE}). */
const STAR = -1;
/** Op for `?`. */
const ANY = -2;
/** Set number k is op `SET_BASE - k`. */
const SET_BASE = -3;

const CH_STAR = 0x2a; // *
const CH_QUESTION = 0x3f; // ?
const CH_OPEN = 0x5b; // [
const CH_CLOSE = 0x5d; // ]
const CH_CARET = 0x5e; // ^
const CH_DASH = 0x2d; // -
const CH_BACKSLASH = 0x5c; // \

/** A pattern turned into match steps, so that backtracking never re-parses brackets. */
interface Program {
  /** One entry per step; runs of `*` are collapsed into one. */
  ops: Int32Array;
  /** 256-bit membership bitmaps, 8 words per set, indexed by the (folded) byte. */
  bits: Uint32Array;
  /** Per set, 1 for `[^...]`. */
  negated: Uint8Array;
  nocase: boolean;
}

/** C-locale tolower: only A-Z change, so bytes 128-255 compare exactly under nocase too. */
function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}

function addRange(bits: number[], base: number, from: number, to: number): void {
  // Code units above 255 are outside a binary string's alphabet; clamp rather than overrun.
  for (let c = from; c <= Math.min(to, 255); c++) bits[base + (c >>> 5)] |= 1 << (c & 31);
}

function compile(pattern: string, nocase: boolean): Program {
  const fold = nocase ? lower : (c: number) => c;
  const ops: number[] = [];
  const bits: number[] = [];
  const negated: number[] = [];
  const n = pattern.length;
  let i = 0;
  while (i < n) {
    const ch = pattern.charCodeAt(i);
    if (ch === CH_STAR) {
      // `**` means the same as `*`; one star keeps the backtracking bookkeeping minimal.
      if (ops[ops.length - 1] !== STAR) ops.push(STAR);
      i++;
    } else if (ch === CH_QUESTION) {
      ops.push(ANY);
      i++;
    } else if (ch === CH_BACKSLASH) {
      // A trailing lone backslash has nothing to escape, so it stands for itself.
      ops.push(fold(i + 1 < n ? pattern.charCodeAt(i + 1) : CH_BACKSLASH));
      i += i + 1 < n ? 2 : 1;
    } else if (ch === CH_OPEN) {
      const set = negated.length, base = set * 8;
      for (let w = 0; w < 8; w++) bits.push(0);
      i++;
      const neg = i < n && pattern.charCodeAt(i) === CH_CARET;
      if (neg) i++;
      negated.push(neg ? 1 : 0);
      // Without a closing `]` the set simply ends with the pattern (Redis's behaviour).
      while (i < n) {
        const c = pattern.charCodeAt(i);
        if (c === CH_BACKSLASH && i + 1 < n) {
          const e = fold(pattern.charCodeAt(i + 1));
          addRange(bits, base, e, e);
          i += 2;
        } else if (c === CH_CLOSE) {
          i++;
          break;
        } else if (i + 2 < n && pattern.charCodeAt(i + 1) === CH_DASH) {
          // Redis swaps reversed bounds first and folds afterwards; keep that order.
          const a = c, b = pattern.charCodeAt(i + 2);
          addRange(bits, base, fold(Math.min(a, b)), fold(Math.max(a, b)));
          i += 3;
        } else {
          const e = fold(c);
          addRange(bits, base, e, e);
          i++;
        }
      }
      ops.push(SET_BASE - set);
    } else {
      ops.push(fold(ch));
      i++;
    }
  }
  return {
    ops: Int32Array.from(ops),
    bits: Uint32Array.from(bits),
    negated: Uint8Array.from(negated),
    nocase,
  };
}

function run(prog: Program, s: string): boolean {
  const { ops, bits, negated, nocase } = prog;
  const m = ops.length, n = s.length;
  let oi = 0, si = 0;
  // The step just after the latest star, and where in `s` that star's match currently ends.
  let resumeOi = -1, resumeSi = 0;
  while (si < n) {
    if (oi < m) {
      const op = ops[oi];
      if (op === STAR) {
        resumeOi = ++oi;
        resumeSi = si;
        continue;
      }
      const c = nocase ? lower(s.charCodeAt(si)) : s.charCodeAt(si);
      let ok: boolean;
      if (op >= 0) ok = op === c;
      else if (op === ANY) ok = true;
      else {
        const set = SET_BASE - op;
        const inSet = c < 256 && ((bits[set * 8 + (c >>> 5)] >>> (c & 31)) & 1) === 1;
        ok = inSet !== (negated[set] === 1);
      }
      if (ok) {
        oi++;
        si++;
        continue;
      }
    }
    // Mismatch (or pattern used up with bytes left): let the latest star swallow one more byte.
    if (resumeOi < 0) return false;
    oi = resumeOi;
    si = ++resumeSi;
  }
  while (oi < m && ops[oi] === STAR) oi++;
  return oi === m;
}

/**
 * Whether the binary string `s` matches the Redis glob `pattern`.
 *
 * To test many strings against one pattern (KEYS, SCAN), use {@link compileGlob}, which parses
 * the pattern once.
 *
 * @param pattern Redis glob: `*`, `?`, `[set]`, `[^set]`, `[a-z]`, `\x`.
 * @param s Subject, one char per byte.
 * @param nocase Compare ASCII letters case-insensitively.
 * @returns `true` if the whole of `s` matches.
 */
export function globMatch(pattern: string, s: string, nocase = false): boolean {
  return run(compile(pattern, nocase), s);
}

/** `*`, `?`, `[` and `\`: anything else in a pattern only matches itself. */
const SPECIAL = /[*?[\\]/;

/**
 * Parses `pattern` once and returns a predicate equivalent to {@link globMatch} for it.
 *
 * Common shapes skip the matcher: `*` (or `**`...) accepts everything, a pattern without special
 * chars is an equality test and `prefix*` a `startsWith` (case-sensitive patterns only).
 *
 * @param pattern Redis glob, as for {@link globMatch}.
 * @param nocase Compare ASCII letters case-insensitively.
 * @returns A predicate over binary strings.
 */
export function compileGlob(pattern: string, nocase = false): (s: string) => boolean {
  let end = pattern.length;
  while (end > 0 && pattern.charCodeAt(end - 1) === CH_STAR) end--;
  const head = pattern.slice(0, end);
  // A star escaped by a backslash leaves the backslash in `head`, so it never takes a fast path.
  if (!SPECIAL.test(head)) {
    if (end === 0 && pattern.length > 0) return () => true;
    if (!nocase) {
      if (end === pattern.length) return (s) => s === pattern;
      return (s) => s.startsWith(head);
    }
  }
  const prog = compile(pattern, nocase);
  return (s) => run(prog, s);
}
