import assert from "node:assert/strict";
import { checkKvHistory, KvHistory, type KvOperation, type KvValue } from "./checker.ts";
import { Prng } from "./prng.ts";

const U = Infinity;
const put = (key: string, value: KvValue, call: number, ret: number): KvOperation => ({
  kind: "put",
  key,
  value,
  call,
  return: ret,
});
const get = (key: string, result: KvValue | null, call: number, ret: number): KvOperation => ({
  kind: "get",
  key,
  result,
  call,
  return: ret,
});
const del = (key: string, call: number, ret: number): KvOperation => ({
  kind: "delete",
  key,
  call,
  return: ret,
});
const cas = (
  key: string,
  expected: KvValue | null,
  value: KvValue,
  result: boolean,
  call: number,
  ret: number,
): KvOperation => ({ kind: "cas", key, expected, value, result, call, return: ret });

function ok(history: KvOperation[]): void {
  const r = checkKvHistory(history);
  assert.equal(r.ok, true, r.ok ? "" : r.info);
}

function bad(history: KvOperation[], key = "x"): string {
  const r = checkKvHistory(history);
  assert.equal(r.ok, false, "expected a violation");
  if (r.ok) throw new Error("unreachable");
  assert.equal(r.key, key);
  assert.notEqual(r.inconclusive, true);
  return r.info;
}

Deno.test("checker: simple linearizable histories", () => {
  ok([]);
  ok([get("x", null, 0, 1)]);
  ok([put("x", 1, 0, 1), get("x", 1, 2, 3)]);
  ok([put("x", 1, 0, 1), del("x", 2, 3), get("x", null, 4, 5)]);
  ok([put("x", "a", 0, 1), cas("x", "a", "b", true, 2, 3), cas("x", "a", "c", false, 4, 5)]);
  ok([cas("x", null, "a", true, 0, 1), get("x", "a", 2, 3)]);
  // Equal times count as concurrent.
  ok([get("x", 1, 0, 5), put("x", 1, 5, 6)]);
});

Deno.test("checker: stale read", () => {
  const info = bad([put("x", 1, 0, 1), put("x", 2, 2, 3), get("x", 1, 4, 5)]);
  assert.match(info, /key "x": not linearizable/);
  assert.match(info, /get\("x"\) => 1/);
  assert.match(info, /reads 1 but the value is 2/);
});

Deno.test("checker: lost write", () => {
  bad([put("x", 1, 0, 1), get("x", null, 2, 3)]);
  bad([put("x", 1, 0, 1), del("x", 2, 3), get("x", 1, 4, 5)]);
  bad([get("x", 1, 0, 1), put("x", 1, 2, 3)]); // read from the future
});

Deno.test("checker: cas violations", () => {
  // two sequential swaps from the same expected value
  bad([put("x", "a", 0, 1), cas("x", "a", "b", true, 2, 3), cas("x", "a", "c", true, 4, 5)]);
  // two concurrent swaps from the same value cannot both win
  bad([put("x", "a", 0, 1), cas("x", "a", "b", true, 2, 10), cas("x", "a", "c", true, 3, 9)]);
  bad([cas("x", null, 1, true, 0, 10), cas("x", null, 2, true, 0, 10)]);
  // a failed cas must not have seen its expected value
  bad([put("x", "a", 0, 1), cas("x", "a", "b", false, 2, 3)]);
  // ...and the winner is visible
  ok([put("x", "a", 0, 1), cas("x", "a", "b", true, 2, 10), cas("x", "a", "c", false, 3, 9)]);
  bad([
    put("x", "a", 0, 1),
    cas("x", "a", "b", true, 2, 3),
    get("x", "a", 4, 5),
  ]);
});

Deno.test("checker: concurrent operations with ambiguous orders", () => {
  const w = [put("x", 1, 0, 10), put("x", 2, 0, 10)];
  ok([...w, get("x", 1, 11, 12)]);
  ok([...w, get("x", 2, 11, 12)]);
  ok([...w, get("x", 2, 1, 2), get("x", 1, 3, 4)]);
  ok([...w, get("x", null, 1, 2), get("x", 1, 3, 4), get("x", 2, 5, 6)]);
  bad([...w, get("x", 1, 11, 12), get("x", 2, 13, 14)]);
  bad([...w, get("x", 1, 1, 2), get("x", 2, 3, 4), get("x", 1, 5, 6)]);
  // concurrent reads may disagree while a write is in flight, but not after it returns
  ok([put("x", 1, 0, 10), get("x", 1, 1, 5), get("x", null, 2, 4)]);
  bad([put("x", 1, 0, 10), get("x", 1, 1, 3), get("x", null, 4, 5)]);
});

Deno.test("checker: unknown-outcome operations may or may not take effect", () => {
  ok([put("x", 1, 0, U), get("x", 1, 5, 6)]); // took effect
  ok([put("x", 1, 0, U), get("x", null, 5, 6)]); // did not (yet)
  ok([put("x", 1, 0, U), get("x", null, 5, 6), get("x", 1, 7, 8)]); // took effect late
  bad([put("x", 1, 0, U), get("x", 1, 5, 6), get("x", null, 7, 8)]); // once seen, stays
  bad([get("x", 1, 0, 1), put("x", 1, 2, U)]); // called after the read
  ok([put("x", "a", 0, 1), cas("x", "a", "b", true, 2, U), get("x", "b", 10, 11)]);
  ok([put("x", "a", 0, 1), cas("x", "a", "b", true, 2, U), get("x", "a", 10, 11)]);
  ok([
    put("x", 1, 0, 1),
    del("x", 2, U),
    get("x", null, 3, 4),
    put("x", 2, 5, 6),
    get("x", 2, 7, 8),
  ]);
  ok([get("x", 5, 0, U)]); // unknown reads say nothing
  // two unknown writes, observed in one order
  ok([put("x", 1, 0, U), put("x", 2, 0, U), get("x", 1, 5, 6), get("x", 2, 7, 8)]);
  bad([
    put("x", 1, 0, U),
    put("x", 2, 0, U),
    get("x", 1, 5, 6),
    get("x", 2, 7, 8),
    get("x", 1, 9, 10),
  ]);
});

Deno.test("checker: keys are independent; the smallest failing key is reported", () => {
  const h: KvOperation[] = [];
  for (let i = 0; i < 20; i++) {
    h.push(put("big", i, i * 2, i * 2 + 1), get("big", i, i * 2 + 1.5, i * 2 + 1.6));
  }
  h.push(get("big", 0, 100, 101)); // violation on "big"
  h.push(put("small", "v", 0, 1), get("small", "w", 2, 3)); // violation on "small"
  h.push(put("fine", 1, 0, 1), get("fine", 1, 2, 3));
  const r = checkKvHistory(h);
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.key, "small");
  // Interleaving keys is not a violation.
  ok([put("a", 1, 0, 1), put("b", 2, 0, 1), get("a", 1, 2, 3), get("b", 2, 2, 3)]);
});

Deno.test("checker: initial values", () => {
  assert.equal(checkKvHistory([get("x", 7, 0, 1)], { initial: { x: 7 } }).ok, true);
  assert.equal(checkKvHistory([get("x", 7, 0, 1)], { initial: new Map([["x", 7]]) }).ok, true);
  assert.equal(checkKvHistory([get("x", null, 0, 1)], { initial: { x: 7 } }).ok, false);
});

Deno.test("checker: shrinks a long failing history to a small explanation", () => {
  const h: KvOperation[] = [];
  let t = 0;
  for (let i = 0; i < 300; i++) {
    h.push(put("x", i, t, t + 1), get("x", i, t + 2, t + 3));
    t += 4;
    if (i === 150) {
      h.push(get("x", 149, t, t + 1)); // stale read in the middle
      t += 2;
    }
  }
  const r = checkKvHistory(h);
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.ok(r.ops.length <= 5, `shrunk to ${r.ops.length} ops:\n${r.info}`);
  assert.match(r.info, /shrunk from 601 to \d operations/);
  assert.match(r.info, /reads 149 but the value is 150/);
  // the shrunk history fails on its own
  assert.equal(checkKvHistory(r.ops).ok, false);
});

Deno.test("checker: rejects malformed operations", () => {
  assert.throws(() => checkKvHistory([get("x", 1, 5, 4)]), RangeError);
  assert.throws(() => checkKvHistory([{ kind: "get", key: "x", call: 0, return: 1 }]), TypeError);
  assert.throws(
    () => checkKvHistory([{ kind: "cas", key: "x", value: 1, expected: null, call: 0, return: 1 }]),
    TypeError,
  );
  assert.throws(() => checkKvHistory([{ kind: "put", key: "x", call: 0, return: 1 }]), TypeError);
});

Deno.test("checker: KvHistory records the order the harness saw", () => {
  const h = new KvHistory();
  const a = h.invoke("c1", { kind: "put", key: "k", value: "v" });
  const b = h.invoke("c2", { kind: "get", key: "k" });
  h.ok(a);
  h.ok(b, "v"); // concurrent with the put: fine
  const c = h.invoke("c1", { kind: "cas", key: "k", expected: "v", value: "w" });
  h.unknown(c);
  const d = h.invoke("c2", { kind: "put", key: "k", value: "never" });
  h.fail(d); // definitely not applied: left out
  const e = h.invoke("c3", { kind: "get", key: "k" });
  h.ok(e, "w");
  const ops = h.operations();
  assert.equal(ops.length, 4);
  assert.equal(ops[2].return, Infinity);
  assert.equal(checkKvHistory(ops).ok, true);
  assert.throws(() => h.ok(a));
});

// ---------------------------------------------------------------------------------------------
// Randomized: histories produced by a linearizable system must pass; mutated histories are
// compared against a brute-force checker.

/** Exhaustive search over orders (and over which unknown ops happened). Small histories only. */
function bruteForce(ops: KvOperation[], initial: KvValue | null = null): boolean {
  const n = ops.length;
  const used = new Array<boolean>(n).fill(false);
  const known = ops.map((o) => o.return !== Infinity);
  const step = (state: KvValue | null, o: KvOperation): KvValue | null | undefined => {
    const isKnown = o.return !== Infinity;
    switch (o.kind) {
      case "put":
        return o.value!;
      case "delete":
        return null;
      case "get":
        return isKnown && o.result !== state ? undefined : state;
      case "cas": {
        const m = state === o.expected;
        if (isKnown && o.result !== m) return undefined;
        return m ? o.value! : state;
      }
    }
  };
  const rec = (state: KvValue | null, placedKnown: number): boolean => {
    if (placedKnown === known.filter(Boolean).length) return true;
    for (let i = 0; i < n; i++) {
      if (used[i]) continue;
      // i may go next unless some other unplaced known op returned before i was called.
      let allowed = true;
      for (let j = 0; j < n; j++) {
        if (j !== i && !used[j] && known[j] && ops[j].return < ops[i].call) {
          allowed = false;
          break;
        }
      }
      if (!allowed) continue;
      const next = step(state, ops[i]);
      if (next === undefined) continue;
      used[i] = true;
      if (rec(next, placedKnown + (known[i] ? 1 : 0))) return true;
      used[i] = false;
    }
    return false;
  };
  return rec(initial, 0);
}

interface GenOptions {
  clients: number;
  opsPerClient: number;
  keys: string[];
  values: KvValue[];
  unknownP: number;
}

/** A history from a linearizable KV: every op takes effect at a point inside its interval. */
function linearizableHistory(rand: Prng, o: GenOptions): KvOperation[] {
  const planned: { op: KvOperation; at: number; applies: boolean }[] = [];
  for (let c = 0; c < o.clients; c++) {
    let t = rand.next() * 3;
    for (let j = 0; j < o.opsPerClient; j++) {
      const call = t + rand.next() * 2;
      const at = call + rand.next() * 4;
      const ret = at + rand.next() * 4;
      t = ret;
      const key = rand.pick(o.keys);
      const kind = rand.weighted<KvOperation["kind"]>([["put", 3], ["get", 4], ["delete", 1], [
        "cas",
        2,
      ]]);
      const op: KvOperation = { kind, key, call, return: ret, client: c };
      if (kind === "put" || kind === "cas") op.value = rand.pick(o.values);
      if (kind === "cas") op.expected = rand.chance(0.2) ? null : rand.pick(o.values);
      let applies = true;
      if (rand.chance(o.unknownP)) {
        op.return = Infinity;
        applies = rand.chance(0.5);
      }
      planned.push({ op, at, applies });
    }
  }
  planned.sort((a, b) => a.at - b.at);
  const state = new Map<string, KvValue>();
  for (const { op, applies } of planned) {
    if (!applies) continue;
    const cur = state.get(op.key) ?? null;
    switch (op.kind) {
      case "put":
        state.set(op.key, op.value!);
        break;
      case "delete":
        state.delete(op.key);
        break;
      case "get":
        op.result = cur;
        break;
      case "cas":
        op.result = cur === op.expected;
        if (op.result) state.set(op.key, op.value!);
        break;
    }
  }
  return planned.map((p) => p.op).sort((a, b) => a.call - b.call);
}

/** Changes the result of one completed get or cas; returns false if there is none. */
function mutate(rand: Prng, h: KvOperation[], values: KvValue[]): boolean {
  const candidates = h.filter((o) =>
    o.return !== Infinity && (o.kind === "get" || o.kind === "cas")
  );
  if (candidates.length === 0) return false;
  const o = rand.pick(candidates);
  if (o.kind === "cas") o.result = !o.result;
  else {
    const choices = [...values, null].filter((v) => v !== o.result);
    o.result = rand.pick(choices);
  }
  return true;
}

Deno.test("checker: random linearizable histories pass", () => {
  const rand = new Prng(2024);
  for (let i = 0; i < 300; i++) {
    const h = linearizableHistory(rand, {
      clients: 1 + rand.nextInt(6),
      opsPerClient: 1 + rand.nextInt(30),
      keys: ["a", "b", "c"].slice(0, 1 + rand.nextInt(3)),
      values: [1, 2, 3],
      unknownP: rand.pick([0, 0.05, 0.2]),
    });
    const r = checkKvHistory(h);
    assert.equal(r.ok, true, `iteration ${i}: ${r.ok ? "" : r.info}`);
  }
});

Deno.test("checker: agrees with brute force on small random and mutated histories", () => {
  const rand = new Prng(7);
  let failures = 0;
  let passes = 0;
  for (let i = 0; i < 4000; i++) {
    const values = [1, 2];
    const h = linearizableHistory(rand, {
      clients: 1 + rand.nextInt(4),
      opsPerClient: 1 + rand.nextInt(3),
      keys: ["k"],
      values,
      unknownP: rand.pick([0, 0.15, 0.4]),
    });
    if (h.length > 9) continue;
    if (rand.chance(0.7)) mutate(rand, h, values);
    const expected = bruteForce(h);
    const r = checkKvHistory(h);
    const searchOnly = checkKvHistory(h, { precheck: false, shrink: false });
    assert.equal(searchOnly.ok, expected, `search only, iteration ${i}`);
    if (!r.ok) {
      assert.equal(checkKvHistory(r.ops, { precheck: false }).ok, false, "shrunk must fail");
    }
    assert.equal(
      r.ok,
      expected,
      `iteration ${i}: checker ${r.ok}, brute force ${expected}\n${JSON.stringify(h)}`,
    );
    if (expected) passes++;
    else failures++;
  }
  assert.ok(failures > 100 && passes > 100, `coverage: ${passes} pass, ${failures} fail`);
});

Deno.test("checker: a read of a value never written always fails", () => {
  const rand = new Prng(99);
  for (let i = 0; i < 100; i++) {
    const h = linearizableHistory(rand, {
      clients: 4,
      opsPerClient: 40,
      keys: ["a", "b"],
      values: [1, 2, 3, 4],
      unknownP: 0.05,
    });
    const gets = h.filter((o) => o.kind === "get" && o.return !== Infinity);
    if (gets.length === 0) continue;
    const victim = rand.pick(gets);
    victim.result = "never-written";
    const r = checkKvHistory(h);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.key, victim.key);
      assert.match(r.info, /never-written/);
    }
  }
});

Deno.test("checker: thousands of operations per key stay fast", () => {
  const timed = <T>(f: () => T): [T, number] => {
    const t = performance.now();
    const r = f();
    return [r, performance.now() - t];
  };
  const report: string[] = [];
  for (const [clients, unknownP] of [[5, 0.01], [8, 0.01], [5, 0.05]] as const) {
    const rand = new Prng(5);
    const h = linearizableHistory(rand, {
      clients,
      opsPerClient: Math.floor(4000 / clients),
      keys: ["hot"],
      values: [1, 2, 3, 4, 5],
      unknownP,
    });
    const [r, ms] = timed(() => checkKvHistory(h));
    assert.equal(r.ok, true, r.ok ? "" : r.info);
    report.push(
      `${h.length} ops, ${clients} clients, ${unknownP * 100}% unknown: pass ${ms.toFixed(0)} ms`,
    );
    assert.ok(ms < 5000, report.at(-1));
  }
  // A stale read near the end: the pre-check finds it without searching.
  {
    const rand = new Prng(6);
    const h = linearizableHistory(rand, {
      clients: 8,
      opsPerClient: 500,
      keys: ["hot"],
      values: [1, 2, 3, 4, 5],
      unknownP: 0.01,
    });
    const lastGet = h.filter((o) => o.kind === "get" && o.return !== Infinity).at(-1)!;
    lastGet.result = "stale";
    const [r, ms] = timed(() => checkKvHistory(h));
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.inconclusive, undefined);
    report.push(
      `4000 ops, 8 clients, read of a never-written value: fail+shrink ${ms.toFixed(0)} ms`,
    );
    assert.ok(ms < 5000, report.at(-1));
  }
  // The same without the pre-check: the search alone must prove the failure.
  {
    const rand = new Prng(7);
    const h = linearizableHistory(rand, {
      clients: 5,
      opsPerClient: 800,
      keys: ["hot"],
      values: [1, 2, 3, 4, 5],
      unknownP: 0.002,
    });
    const lastGet = h.filter((o) => o.kind === "get" && o.return !== Infinity).at(-1)!;
    lastGet.result = "stale";
    const [r, ms] = timed(() => checkKvHistory(h, { precheck: false, shrink: false }));
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.inconclusive, undefined, r.info);
    report.push(`4000 ops, 5 clients, search only: fail ${ms.toFixed(0)} ms`);
    assert.ok(ms < 10000, report.at(-1));
  }
  // Many keys: the history is split per key.
  {
    const rand = new Prng(8);
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    const h = linearizableHistory(rand, {
      clients: 10,
      opsPerClient: 2000,
      keys,
      values: [1, 2, 3],
      unknownP: 0.02,
    });
    const [r, ms] = timed(() => checkKvHistory(h));
    assert.equal(r.ok, true, r.ok ? "" : r.info);
    report.push(`${h.length} ops over 50 keys, 10 clients: pass ${ms.toFixed(0)} ms`);
  }
  console.log(report.join("\n"));
});

Deno.test("checker: budget exhaustion is reported as inconclusive, not as a pass", () => {
  const rand = new Prng(9);
  const h = linearizableHistory(rand, {
    clients: 6,
    opsPerClient: 100,
    keys: ["k"],
    values: [1, 2],
    unknownP: 0,
  });
  const lastGet = h.filter((o) => o.kind === "get" && o.return !== Infinity).at(-1)!;
  lastGet.result = "stale";
  const r = checkKvHistory(h, { maxStepsPerKey: 10, precheck: false });
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.inconclusive, true);
    assert.match(r.info, /budget/);
  }
});
