import assert from "node:assert/strict";
import { Prng } from "@deno-stores/shared/sim";
import { compileGlob, globMatch } from "./glob.ts";

/** Asserts each [subject, expected] pair against `pattern`, naming the failing case. */
function check(pattern: string, cases: [string, boolean][], nocase = false): void {
  for (const [s, want] of cases) {
    assert.equal(
      globMatch(pattern, s, nocase),
      want,
      `${JSON.stringify(pattern)} ~ ${JSON.stringify(s)}`,
    );
    // The compiled form must agree everywhere, fast path or not.
    assert.equal(compileGlob(pattern, nocase)(s), want, `compiled ${JSON.stringify(pattern)}`);
  }
}

/** A seeded generator (shared/sim's), so that a failing random case can be replayed. */
function prng(seed: number): () => number {
  const rng = new Prng(seed);
  return () => rng.next();
}

function randomString(rand: () => number, alphabet: string, maxLen: number): string {
  let out = "";
  const len = Math.floor(rand() * (maxLen + 1));
  for (let i = 0; i < len; i++) out += alphabet[Math.floor(rand() * alphabet.length)];
  return out;
}

/**
 * An independent oracle: plain recursion that reads the pattern directly, in the shape of Redis's
 * matcher (exponential in general, so only ever fed short inputs). It shares no parsing with
 * glob.ts, so it catches slips in the compiler as well as in the backtracking.
 */
function reference(p: string, s: string, nocase: boolean): boolean {
  const fold = (c: number) => (nocase && c >= 65 && c <= 90 ? c + 32 : c);
  const at = (i: number) => fold(p.charCodeAt(i));
  const go = (pi: number, si: number): boolean => {
    if (pi === p.length) return si === s.length;
    if (p[pi] === "*") {
      for (let k = si; k <= s.length; k++) if (go(pi + 1, k)) return true;
      return false;
    }
    if (si === s.length) return false;
    const c = fold(s.charCodeAt(si));
    if (p[pi] === "?") return go(pi + 1, si + 1);
    if (p[pi] === "\\") {
      if (pi + 1 < p.length) return at(pi + 1) === c && go(pi + 2, si + 1);
      return c === 0x5c && go(pi + 1, si + 1);
    }
    if (p[pi] !== "[") return at(pi) === c && go(pi + 1, si + 1);
    let i = pi + 1, hit = false;
    const neg = p[i] === "^";
    if (neg) i++;
    while (i < p.length) {
      if (p[i] === "\\" && i + 1 < p.length) {
        if (at(i + 1) === c) hit = true;
        i += 2;
      } else if (p[i] === "]") {
        i++;
        break;
      } else if (i + 2 < p.length && p[i + 1] === "-") {
        const a = p.charCodeAt(i), b = p.charCodeAt(i + 2);
        if (c >= fold(Math.min(a, b)) && c <= fold(Math.max(a, b))) hit = true;
        i += 3;
      } else {
        if (at(i) === c) hit = true;
        i++;
      }
    }
    return hit !== neg && go(i, si + 1);
  };
  return go(0, 0);
}

Deno.test("globMatch ? matches exactly one char", () => {
  check("h?llo", [["hello", true], ["hallo", true], ["hxllo", true], ["hllo", false], [
    "heello",
    false,
  ], ["hello!", false]]);
  check("?", [["", false], ["a", true], ["ab", false]]);
});

Deno.test("globMatch * matches any sequence, including the empty one", () => {
  check("h*llo", [["hllo", true], ["hello", true], ["heeeello", true], ["hell", false], [
    "hllox",
    false,
  ]]);
  check("*", [["", true], ["a", true], ["anything at all", true]]);
  check("**", [["", true], ["xyz", true]]);
  check("a**b", [["ab", true], ["axxb", true], ["axxbc", false]]);
  check("a*", [["a", true], ["abc", true], ["", false], ["ba", false]]);
  check("*a", [["a", true], ["cba", true], ["ab", false]]);
  check("*a*b*", [["ab", true], ["xaybz", true], ["ba", false]]);
});

Deno.test("globMatch empty pattern matches only the empty string", () => {
  check("", [["", true], ["a", false]]);
  check("a", [["", false], ["a", true]]);
});

Deno.test("globMatch [abc] matches one char of the set", () => {
  check("h[ae]llo", [["hello", true], ["hallo", true], ["hillo", false], ["hllo", false], [
    "haello",
    false,
  ]]);
});

Deno.test("globMatch [^abc] matches one char outside the set", () => {
  check("h[^e]llo", [["hallo", true], ["hbllo", true], ["hello", false], ["hllo", false]]);
  check("[^ab]", [["c", true], ["a", false], ["b", false], ["", false], ["cc", false]]);
});

Deno.test("globMatch [a-b] matches a range, and a reversed range is the same range", () => {
  check("h[a-b]llo", [["hallo", true], ["hbllo", true], ["hcllo", false], ["h-llo", false]]);
  check("h[b-a]llo", [["hallo", true], ["hbllo", true], ["hcllo", false]]);
  check("[z-a]", [["a", true], ["m", true], ["z", true], ["A", false], ["{", false]]);
  check("[0-9a-f]", [["7", true], ["c", true], ["g", false]]);
  check("[^0-9]", [["x", true], ["5", false]]);
  // A `-` with nothing after it before the pattern ends is a plain member.
  check("[a-", [["a", true], ["-", true], ["b", false]]);
});

Deno.test("globMatch a range end is taken as is, even a ] (Redis quirk)", () => {
  // `[a-]` is the range ']'..'a' (0x5d-0x61) in a set that then runs to the end of the pattern.
  check("[a-]", [["a", true], ["]", true], ["_", true], ["-", false], ["b", false]]);
  check("[a-]x", [["x", true], ["_", true], ["ax", false]]);
});

Deno.test("globMatch \\ escapes special chars outside brackets", () => {
  check(String.raw`a\*b`, [["a*b", true], ["axb", false], ["ab", false]]);
  check(String.raw`a\?b`, [["a?b", true], ["axb", false]]);
  check(String.raw`\[x]`, [["[x]", true], ["x", false]]);
  check(String.raw`a\\b`, [["a\\b", true], ["ab", false]]);
  check(String.raw`\a\b`, [["ab", true]]);
  check(String.raw`*\*`, [["abc*", true], ["abc", false]]);
});

Deno.test("globMatch \\ escapes inside brackets", () => {
  check(String.raw`[\]]`, [["]", true], ["\\", false], ["", false]]);
  check(String.raw`[\]a]`, [["]", true], ["a", true], ["b", false]]);
  check(String.raw`[a\-z]`, [["-", true], ["a", true], ["z", true], ["m", false]]);
  check(String.raw`[\^a]`, [["^", true], ["a", true], ["b", false]]);
  check(String.raw`[^\]]`, [["]", false], ["x", true]]);
  check(String.raw`[\\]`, [["\\", true], ["]", false]]);
});

Deno.test("globMatch a trailing lone \\ matches a literal backslash", () => {
  check("ab\\", [["ab\\", true], ["ab", false], ["abc", false]]);
  check("\\", [["\\", true], ["", false]]);
  // Inside an unterminated set a last `\` is a member too.
  check("[a\\", [["\\", true], ["a", true], ["b", false]]);
});

Deno.test("globMatch an unterminated [ set runs to the end of the pattern", () => {
  check("h[ae", [["ha", true], ["he", true], ["hx", false], ["hae", false], ["h", false]]);
  check("[a-c", [["b", true], ["d", false]]);
  check("[^ab", [["c", true], ["a", false]]);
  // `[` alone is an empty set; `[^` its complement.
  check("[", [["[", false], ["", false], ["a", false]]);
  check("[^", [["a", true], ["[", true], ["", false], ["ab", false]]);
});

Deno.test("globMatch [] is an empty set and [^] matches any char", () => {
  check("[]", [["", false], ["]", false], ["a", false]]);
  check("[]a]", [["a]", false], ["xa]", false]]);
  check("[^]", [["a", true], ["]", true], ["", false]]);
  check("x[^]y", [["x]y", true], ["xy", false]]);
});

Deno.test("globMatch handles binary chars \\x00 and \\xff", () => {
  check("\x00*\xff", [["\x00\xff", true], ["\x00abc\xff", true], ["\x00abc", false]]);
  check("?", [["\x00", true], ["\xff", true]]);
  check("[\x00-\x1f]", [["\x00", true], ["\x10", true], ["\x1f", true], [" ", false]]);
  check("[\x80-\xff]", [["\x80", true], ["\xff", true], ["\x7f", false]]);
  // Bytes order as unsigned (as on ARM builds of Redis; x86 ones compare signed chars).
  check("[a-\xff]", [["\x80", true], ["z", true], ["\x00", false]]);
  check("[^\x00]", [["\x00", false], ["\xff", true]]);
  check("a\\\x00", [["a\x00", true], ["a0", false]]);
  check("*\xff", [["\xff\xff\xff", true], ["\xfe", false]]);
});

Deno.test("globMatch nocase folds ASCII letters only", () => {
  check("HeLLo", [["hello", true], ["HELLO", true], ["hellx", false]], true);
  check("HeLLo", [["hello", false], ["HeLLo", true]]);
  check("h[A-Z]llo", [["hello", true], ["hEllo", true], ["h1llo", false]], true);
  check("h[^E]llo", [["hello", false], ["hallo", true]], true);
  check("[ae]*", [["Apple", true], ["Eel", true], ["bee", false]], true);
  check("\\A?", [["ab", true]], true);
  check("[\\A]", [["a", true]], true);
  check("user:*", [["USER:1", true], ["usr:1", false]], true);
  check("hello", [["HELLO", true]], true);
  // C-locale tolower: Latin-1 letters are not folded.
  check("\xc0", [["\xe0", false], ["\xc0", true]], true);
  // Bounds fold after the swap, as in Redis: [Z-a] becomes z..a, i.e. nothing.
  check("[Z-a]", [["z", false], ["_", false]], true);
  check("[Z-a]", [["_", true], ["Z", true], ["b", false]]);
});

Deno.test("globMatch finishes on hostile star patterns", () => {
  assert.equal(globMatch("*a*a*a*a*a*a*a*a*b", "a".repeat(30)), false);
  assert.equal(globMatch("*a*a*a*a*a*a*a*a*b", "a".repeat(30) + "b"), true);
  assert.equal(globMatch("a*".repeat(5000) + "b", "a".repeat(20000)), false);
  assert.equal(globMatch("*?".repeat(2000) + "[b]", "a".repeat(20000)), false);
  // Quadratic at worst: a long literal after a star, re-tried at each offset.
  assert.equal(globMatch("*" + "a".repeat(2000) + "b", "a".repeat(4000)), false);
  assert.equal(compileGlob("*a*a*a*a*a*a*a*a*b")("a".repeat(30)), false);
});

Deno.test("globMatch agrees with an independent reference on random patterns", () => {
  const rand = prng(0x5eed);
  const patternChars = "ab*?[]^-\\A\x00\xff";
  const subjectChars = "abAB]^-\\*?[\x00\xff";
  for (let i = 0; i < 20000; i++) {
    const p = randomString(rand, patternChars, 8);
    const s = randomString(rand, subjectChars, 8);
    const nocase = rand() < 0.3;
    const want = reference(p, s, nocase);
    const why = `${JSON.stringify(p)} ~ ${JSON.stringify(s)} nocase=${nocase}`;
    assert.equal(globMatch(p, s, nocase), want, why);
    assert.equal(compileGlob(p, nocase)(s), want, `compiled ${why}`);
  }
});

Deno.test("globMatch agrees with compileGlob fast paths on random inputs", () => {
  const rand = prng(42);
  const alphabet = "abcA:\x00\xff";
  for (let i = 0; i < 20000; i++) {
    const lit = randomString(rand, alphabet, 4);
    const stars = "*".repeat(Math.floor(rand() * 3));
    // The shapes that take a fast path: literal, `prefix*`, `*` / `**`.
    const p = lit + stars;
    const s = rand() < 0.5
      ? lit + randomString(rand, alphabet, 3)
      : randomString(rand, alphabet, 5);
    const nocase = rand() < 0.2;
    assert.equal(
      compileGlob(p, nocase)(s),
      globMatch(p, s, nocase),
      `${JSON.stringify(p)} ~ ${JSON.stringify(s)} nocase=${nocase}`,
    );
  }
});

Deno.test("globMatch fast-path lookalikes with escapes still match literally", () => {
  check("a\\*", [["a*", true], ["ab", false], ["a", false]]);
  check("a\\\\*", [["a\\", true], ["a\\bc", true], ["a", false]]);
  check("a?*", [["ab", true], ["a", false]]);
});
