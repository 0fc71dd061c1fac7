/**
 * etcd conformance: one sequence of v3 JSON gateway requests (KV, ranges, txns, compaction,
 * leases, errors, watch) run against a server, with answers normalised so that two servers can be
 * compared field by field: ids that differ between clusters (cluster, member, raft term) are
 * dropped, lease ids are chosen by the requests, and error texts are kept.
 *
 * `conformance_test.ts` runs it against a fresh metastore and compares the answers with those
 * etcd 3.4.23 gave (`testdata/etcd-3.4-conformance.json`), and, when the `etcd` binary is
 * installed, with a fresh etcd's answers in the same run. `deno run -A
 * services/metastore/conformance.ts URL [URL2]` prints the answers of one fresh server or the
 * differences between two; `--record URL` rewrites the golden file from a fresh etcd.
 *
 * @module
 */

import { openEtcdStream } from "../../bench/lib/etcd_stream.ts";

/** One request of the sequence. */
export interface Step {
  name: string;
  path: string;
  /** JSON body; a string is sent as is (malformed input). */
  body: unknown;
  method?: string;
  /**
   * Compare only the status and the gRPC code: the message is a parser's own text (Go's
   * encoding/json in etcd) or the body is not etcd's JSON (etcd answers unknown paths in text).
   */
  loose?: boolean;
}

/** What a server answered, normalised. */
export interface Answer {
  name: string;
  status: number;
  body: unknown;
}

const b = (s: string) => btoa(s);
type Obj = Record<string, unknown>;

/** The request sequence. Keys live under "conf/" so the sequence can run on a used server. */
export function conformanceSteps(): Step[] {
  const put = (key: string, value: string, extra: Record<string, unknown> = {}) => ({
    key: b(key),
    value: b(value),
    ...extra,
  });
  return [
    { name: "range empty", path: "/v3/kv/range", body: { key: b("conf/a") } },
    { name: "put a", path: "/v3/kv/put", body: put("conf/a", "1") },
    { name: "put a prev_kv", path: "/v3/kv/put", body: put("conf/a", "2", { prev_kv: true }) },
    { name: "put b camelCase", path: "/v3/kv/put", body: put("conf/b", "x", { prevKv: true }) },
    { name: "put c", path: "/v3/kv/put", body: put("conf/c", "y") },
    { name: "put d via v3beta", path: "/v3beta/kv/put", body: put("conf/d", "z") },
    { name: "range a", path: "/v3/kv/range", body: { key: b("conf/a") } },
    {
      name: "range prefix",
      path: "/v3/kv/range",
      body: { key: b("conf/"), range_end: b("conf0") },
    },
    {
      name: "range limit",
      path: "/v3/kv/range",
      body: { key: b("conf/"), range_end: b("conf0"), limit: 2 },
    },
    {
      name: "range limit as string",
      path: "/v3/kv/range",
      body: { key: b("conf/"), range_end: b("conf0"), limit: "1" },
    },
    {
      name: "range sort desc by key",
      path: "/v3/kv/range",
      body: { key: b("conf/"), range_end: b("conf0"), sort_order: "DESCEND", sort_target: "KEY" },
    },
    {
      name: "range sort by mod numeric enums",
      path: "/v3/kv/range",
      body: { key: b("conf/"), range_end: b("conf0"), sort_order: 2, sort_target: 2 },
    },
    {
      name: "range keys_only",
      path: "/v3/kv/range",
      body: { key: b("conf/"), range_end: b("conf0"), keys_only: true },
    },
    {
      name: "range count_only",
      path: "/v3/kv/range",
      body: { key: b("conf/"), range_end: b("conf0"), count_only: true },
    },
    {
      name: "range from key (\\0 end)",
      path: "/v3/kv/range",
      body: { key: b("conf/c"), range_end: b("\0") },
    },
    {
      name: "range min_mod_revision",
      path: "/v3/kv/range",
      body: { key: b("conf/"), range_end: b("conf0"), min_mod_revision: 4 },
    },
    {
      name: "range serializable",
      path: "/v3/kv/range",
      body: { key: b("conf/a"), serializable: true },
    },
    { name: "range historical", path: "/v3/kv/range", body: { key: b("conf/a"), revision: 2 } },
    {
      name: "range future revision",
      path: "/v3/kv/range",
      body: { key: b("conf/a"), revision: 1000 },
    },
    {
      name: "put ignore_value",
      path: "/v3/kv/put",
      body: { key: b("conf/a"), ignore_value: true, prev_kv: true },
    },
    {
      name: "put ignore_value on missing key",
      path: "/v3/kv/put",
      body: { key: b("conf/none"), ignore_value: true },
    },
    { name: "put empty key", path: "/v3/kv/put", body: { value: b("v") } },
    { name: "range empty key", path: "/v3/kv/range", body: {} },
    {
      name: "delete b prev_kv",
      path: "/v3/kv/deleterange",
      body: { key: b("conf/b"), prev_kv: true },
    },
    { name: "delete missing", path: "/v3/kv/deleterange", body: { key: b("conf/b") } },
    {
      name: "txn compare success",
      path: "/v3/kv/txn",
      body: {
        compare: [{ key: b("conf/a"), target: "VALUE", result: "EQUAL", value: b("2") }],
        success: [
          { request_put: put("conf/t", "ok") },
          { request_range: { key: b("conf/a") } },
        ],
        failure: [{ request_put: put("conf/t", "no") }],
      },
    },
    {
      name: "txn compare failure",
      path: "/v3/kv/txn",
      body: {
        compare: [{
          key: b("conf/a"),
          target: "MOD",
          result: "GREATER",
          mod_revision: 1000,
        }],
        success: [{ request_put: put("conf/t", "yes") }],
        failure: [{ request_delete_range: { key: b("conf/t"), prev_kv: true } }],
      },
    },
    {
      name: "txn version and create compares",
      path: "/v3/kv/txn",
      body: {
        compare: [
          { key: b("conf/c"), target: "VERSION", result: "EQUAL", version: 1 },
          { key: b("conf/missing"), target: "CREATE", result: "EQUAL", create_revision: 0 },
          { key: b("conf/c"), target: "VALUE", result: "NOT_EQUAL", value: b("q") },
          { key: b("conf/c"), target: "MOD", result: "LESS", mod_revision: 100 },
        ],
        success: [{ request_put: put("conf/c", "y2") }],
      },
    },
    {
      name: "nested txn",
      path: "/v3/kv/txn",
      body: {
        success: [{
          request_txn: {
            compare: [{ key: b("conf/a"), target: "VERSION", result: "GREATER", version: 0 }],
            success: [{ request_put: put("conf/n", "1") }],
          },
        }],
      },
    },
    {
      name: "txn duplicate keys",
      path: "/v3/kv/txn",
      body: {
        success: [{ request_put: put("conf/x", "1") }, { request_put: put("conf/x", "2") }],
      },
    },
    {
      name: "txn too many ops",
      path: "/v3/kv/txn",
      body: {
        success: Array.from({ length: 129 }, (_, i) => ({ request_put: put(`conf/m${i}`, "v") })),
      },
    },
    {
      name: "range all under conf",
      path: "/v3/kv/range",
      body: { key: b("conf/"), range_end: b("conf0") },
    },
    { name: "compact", path: "/v3/kv/compaction", body: { revision: 5 } },
    { name: "compact again", path: "/v3/kv/compaction", body: { revision: 4 } },
    { name: "compact future", path: "/v3/kv/compaction", body: { revision: 100000 } },
    { name: "range compacted", path: "/v3/kv/range", body: { key: b("conf/a"), revision: 3 } },
    { name: "lease grant", path: "/v3/lease/grant", body: { TTL: 60, ID: 7001 } },
    { name: "lease grant duplicate", path: "/v3/lease/grant", body: { TTL: 60, ID: 7001 } },
    { name: "lease grant string ttl", path: "/v3/lease/grant", body: { TTL: "30", ID: "7002" } },
    {
      name: "put with lease",
      path: "/v3/kv/put",
      body: put("conf/l", "v", { lease: 7001 }),
    },
    {
      name: "put with unknown lease",
      path: "/v3/kv/put",
      body: put("conf/l2", "v", { lease: 9999 }),
    },
    {
      name: "lease timetolive keys",
      path: "/v3/lease/timetolive",
      body: { ID: 7001, keys: true },
    },
    { name: "lease revoke", path: "/v3/lease/revoke", body: { ID: 7001 } },
    { name: "lease revoke again", path: "/v3/lease/revoke", body: { ID: 7001 } },
    { name: "key of revoked lease", path: "/v3/kv/range", body: { key: b("conf/l") } },
    { name: "lease timetolive missing", path: "/v3/lease/timetolive", body: { ID: 7001 } },
    { name: "lease revoke 7002", path: "/v3/lease/revoke", body: { ID: 7002 } },
    { name: "malformed JSON", path: "/v3/kv/put", body: "{not json", loose: true },
    { name: "key not base64", path: "/v3/kv/put", body: { key: "***", value: b("v") } },
    { name: "unknown path", path: "/v3/kv/nothing", body: {}, loose: true },
    {
      name: "value over max-request-bytes",
      path: "/v3/kv/put",
      body: { key: b("conf/big"), value: b("x".repeat(1600 * 1024)) },
    },
    {
      // etcd names the exact protobuf size; compared loosely.
      name: "value over the gRPC message limit",
      path: "/v3/kv/put",
      body: { key: b("conf/big"), value: b("x".repeat(3 << 20)) },
      loose: true,
    },
    {
      name: "delete all under conf",
      path: "/v3/kv/deleterange",
      body: { key: b("conf/"), range_end: b("conf0") },
    },
  ];
}

/** Drops what differs between clusters by design; keeps everything else. */
export function normalise(body: unknown): unknown {
  if (Array.isArray(body)) return body.map(normalise);
  if (body === null || typeof body !== "object") return body;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (k === "header") {
      const h = { ...(v as Record<string, unknown>) };
      delete h.cluster_id;
      delete h.member_id;
      delete h.raft_term;
      out[k] = h;
      continue;
    }
    // TTL left on a lease depends on timing: keep whether it is there and positive.
    if (k === "TTL" && (body as Record<string, unknown>).grantedTTL !== undefined) {
      out[k] = Number(v) > 0 ? "positive" : v;
      continue;
    }
    out[k] = normalise(v);
  }
  return out;
}

/** Runs the sequence against `url` and returns the normalised answers. */
export async function runConformance(url: string): Promise<Answer[]> {
  const out: Answer[] = [];
  for (const step of conformanceSteps()) {
    const res = await fetch(url + step.path, {
      method: step.method ?? "POST",
      headers: { "content-type": "application/json" },
      body: typeof step.body === "string" ? step.body : JSON.stringify(step.body),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: compared as text
    }
    if (step.loose) {
      const code = (body as { code?: unknown } | null)?.code;
      body = typeof code === "number" ? { code } : {};
    }
    out.push({ name: step.name, status: res.status, body: normalise(body) });
  }
  return out;
}

/**
 * Watch conformance, run after `runConformance` on the same server: writes under conf/w/, then
 * one watch stream with history replay (prefix, prev_kv), a second watcher with a NODELETE
 * filter, a cancel, and a watch from a compacted revision. Returns the first `count` messages.
 */
export async function runWatchConformance(url: string): Promise<Answer[]> {
  const call = async (path: string, body: unknown) => {
    const res = await fetch(url + path, { method: "POST", body: JSON.stringify(body) });
    return await res.json();
  };
  const first = await call("/v3/kv/put", { key: b("conf/w/1"), value: b("a") });
  const from = Number(first.header.revision);
  await call("/v3/kv/put", { key: b("conf/w/2"), value: b("b") });
  await call("/v3/kv/put", { key: b("conf/w/1"), value: b("c") });
  await call("/v3/kv/deleterange", { key: b("conf/w/1") });
  await call("/v3/kv/compaction", { revision: from - 1 });
  const requests = [
    {
      create_request: {
        key: b("conf/w/"),
        range_end: b("conf/w0"),
        start_revision: from,
        prev_kv: true,
      },
    },
    {
      create_request: {
        key: b("conf/w/"),
        range_end: b("conf/w0"),
        start_revision: from,
        filters: ["NODELETE"],
      },
    },
    { cancel_request: { watch_id: 1 } },
    { create_request: { key: b("conf/w/1"), start_revision: from - 3 } },
  ];
  // created, the 4 replayed events in one message, created, 3 events, canceled, created, and
  // canceled with compact_revision: read that many messages (or until a deadline).
  const expected = 7;
  const lines = await streamLines(url, "/v3/watch", requests, expected, 5000);
  // Order is promised per watcher, not across them (etcd replays history from a background
  // loop): compare each watcher's messages in order, watchers one after another.
  const results = lines.map((line) => normalise(JSON.parse(line)) as { result?: Obj });
  const watchId = (r: { result?: Obj }) => Number(r.result?.watch_id ?? 0);
  results.sort((x, y) => watchId(x) - watchId(y));
  return results.map((body, i) => ({ name: `watch message ${i}`, status: 200, body }));
}

/**
 * Sends `requests` on a stream (300 ms apart) and returns the first `count` answer lines, or
 * those that came before `timeoutMs`.
 */
async function streamLines(
  url: string,
  path: string,
  requests: unknown[],
  count: number,
  timeoutMs: number,
): Promise<string[]> {
  const lines: string[] = [];
  let enough = () => {};
  const got = new Promise<void>((resolve) => (enough = resolve));
  const stream = await openEtcdStream(url, path, (line) => {
    lines.push(line);
    if (lines.length >= count) enough();
  });
  const timer = setTimeout(enough, timeoutMs);
  try {
    for (const r of requests) {
      await stream.send(r);
      // etcd replays history to new watchers from a loop that runs every 100 ms: give it time
      // before the next request (a cancel), so the answers do not depend on that timing.
      await new Promise((res) => setTimeout(res, 300));
    }
    await Promise.race([got, stream.done]);
  } finally {
    clearTimeout(timer);
    stream.close();
  }
  return lines.slice(0, count);
}

/** Steps whose answers differ, with both answers. */
export function differences(a: Answer[], b: Answer[]): { name: string; a: Answer; b: Answer }[] {
  const out = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) {
      out.push({ name: a[i]?.name ?? b[i]?.name, a: a[i], b: b[i] });
    }
  }
  return out;
}

/** Where the answers of etcd 3.4 to the sequence are kept (recorded with `--record`). */
export const GOLDEN = new URL("./testdata/etcd-3.4-conformance.json", import.meta.url);

/** The whole sequence (KV, leases, errors, then watch) against a fresh server. */
export async function runAll(url: string): Promise<Answer[]> {
  return [...await runConformance(url), ...await runWatchConformance(url)];
}

if (import.meta.main) {
  const record = Deno.args[0] === "--record";
  const [first, second] = record ? Deno.args.slice(1) : Deno.args;
  if (first === undefined) {
    console.error("usage: conformance.ts [--record] URL [URL2]   (fresh servers)");
    Deno.exit(2);
  }
  const a = await runAll(first);
  if (record) {
    await Deno.writeTextFile(GOLDEN, JSON.stringify(a, null, 2) + "\n");
    console.log(`recorded ${a.length} answers of ${first} in ${GOLDEN.pathname}`);
  } else if (second === undefined) {
    for (const x of a) console.log(JSON.stringify(x));
  } else {
    const d = differences(a, await runAll(second));
    for (const x of d) {
      console.log(
        `--- ${x.name}\n  ${first}: ${JSON.stringify(x.a)}\n  ${second}: ${JSON.stringify(x.b)}`,
      );
    }
    console.log(`${d.length} of ${a.length} steps differ`);
  }
}
