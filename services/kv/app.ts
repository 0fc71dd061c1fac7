/**
 * The HTTP API: Redis commands as JSON, the REST convention edge runtimes use for Redis.
 *
 * - `POST /` with a JSON array (`["SET", "k", "v"]`) → `{"result": ...}`, or 400 `{"error":
 *   "ERR ..."}` when the command fails;
 * - `POST /pipeline` with an array of commands → an array of `{"result"}` / `{"error"}` (each
 *   command on its own; 200 unless the body is bad);
 * - `POST /multi-exec` with an array of commands → the same, run as one MULTI/EXEC transaction;
 *   a command refused while queueing aborts it (400, `EXECABORT ...`).
 *
 * Arguments are strings (UTF-8) or numbers; replies are JSON: strings as UTF-8 text (or base64
 * of their bytes with `Upstash-Encoding: base64` or `?encoding=base64`, for binary data),
 * integers as numbers (as decimal strings beyond 2^53), nil as null, arrays as arrays. With a
 * token configured, every request needs `Authorization: Bearer <token>` (401 otherwise).
 * Errors of this API are `{"error": "<message>"}` strings, as that convention has them; `/healthz`,
 * `/readyz` and `/metrics` come from the shared service app. Deno KV Connect is mounted under `/kv`
 * (kv_connect/), with the same token.
 *
 * @module
 */
import {
  createServiceApp,
  HttpError,
  type Logger,
  readBodyBytes,
  type ServiceApp,
} from "@deno-stores/shared/http";
import type { Engine } from "./engine.ts";
import { tokenChecker } from "./bearer.ts";
import { type KvConnect, type KvConnectStore, mountKvConnect } from "./kv_connect/mod.ts";
import { type Reply, ReplyError, ReplyReader } from "./reply.ts";
import { binaryToUtf8, RespWriter, utf8ToBinary } from "./resp.ts";

/** The HTTP app plus the KV Connect endpoints (close them before the HTTP server drains). */
export type KvServiceApp = ServiceApp & { kvConnect: KvConnect };

/** Options of {@link createKvApp}. */
export interface KvAppOptions {
  engine: Engine;
  logger: Logger;
  /** Bearer token every request must carry ("" = none). */
  token: string;
  accessLog?: boolean;
  bodyLimitBytes?: number;
  maxInflightRequests?: number;
  /** Commands in one pipeline or transaction at most. */
  maxCommands?: number;
  /** Makes the writes so far durable before a response goes out (persistence). */
  commit?: () => Promise<void> | null;
  /** The KV Connect store (default: a fresh in-memory one). */
  kvConnectStore?: KvConnectStore;
}

/** Commands that make no sense over a stateless HTTP request. */
const REFUSED = new Set(["quit", "hello", "reset", "watch", "unwatch", "multi", "exec", "discard"]);

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

class BadRequest extends Error {}

function toArgs(v: unknown, where: string): string[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw new BadRequest(`${where} must be a non-empty array of strings and numbers`);
  }
  return v.map((a, i) => {
    if (typeof a === "string") return utf8ToBinary(a);
    if (typeof a === "number" && Number.isFinite(a)) return String(a);
    if (typeof a === "boolean") return a ? "1" : "0";
    throw new BadRequest(`${where}[${i}] must be a string or a number`);
  });
}

function toJson(r: Reply, base64: boolean): Json {
  if (r === null || typeof r === "boolean" || typeof r === "number") return r;
  if (typeof r === "bigint") return r.toString();
  if (typeof r === "string") return base64 ? btoa(r) : binaryToUtf8(r);
  if (r instanceof ReplyError) return { error: r.message };
  if (Array.isArray(r)) return r.map((x) => toJson(x, base64));
  const flat: Json[] = [];
  for (const [k, v] of r) flat.push(toJson(k, base64), toJson(v, base64));
  return flat;
}

/** The HTTP app (see the module documentation). */
export function createKvApp(options: KvAppOptions): KvServiceApp {
  const service = createServiceApp({
    service: "kv",
    logger: options.logger,
    accessLog: options.accessLog,
    bodyLimitBytes: options.bodyLimitBytes,
    maxInflightRequests: options.maxInflightRequests,
  });
  const { app, registry } = service;
  const { engine } = options;
  const commit = options.commit ?? (() => null);
  const authorized = tokenChecker(options.token);
  const maxCommands = options.maxCommands ?? 10_000;
  const bodyLimit = options.bodyLimitBytes ?? 1 << 20;
  const decoder = new TextDecoder();
  const commands = registry.counter(
    "kv_http_commands_total",
    "Commands run through the HTTP API.",
    ["outcome"],
  );

  /** One command's entry in a pipeline or transaction answer (counted). */
  const answer = (r: Reply, base64: boolean): Json => {
    commands.inc({ outcome: r instanceof ReplyError ? "error" : "ok" });
    return r instanceof ReplyError ? { error: r.message } : { result: toJson(r, base64) };
  };

  const fail = (status: number, message: string, headers?: Record<string, string>) =>
    Response.json({ error: message }, { status, headers });

  /** Runs commands on a fresh connection state; returns each reply. */
  const run = async (all: string[][], transaction: boolean): Promise<Reply[]> => {
    const client = engine.session("http", "http");
    const out = new RespWriter();
    try {
      if (transaction) {
        engine.execute(client, ["MULTI"], out);
        for (const args of all) engine.execute(client, args, out);
        engine.execute(client, ["EXEC"], out);
      } else {
        for (const args of all) engine.execute(client, args, out);
      }
    } finally {
      engine.disconnect(client);
    }
    // Nothing is answered before it is as durable as the policy says.
    await commit();
    const reader = new ReplyReader();
    reader.push(out.bytes());
    const replies: Reply[] = [];
    for (let r = reader.next(); r !== undefined; r = reader.next()) replies.push(r);
    return replies;
  };

  const read = async (req: Request): Promise<unknown> => {
    const bytes = await readBodyBytes(req, bodyLimit);
    try {
      return JSON.parse(decoder.decode(bytes));
    } catch {
      throw new BadRequest("the body is not JSON");
    }
  };

  const refuse = (args: string[], where: string) => {
    const name = args[0].toLowerCase();
    if (REFUSED.has(name)) {
      throw new BadRequest(`${where}: ${name.toUpperCase()} is not available over HTTP`);
    }
  };

  const handle = async (
    req: Request,
    kind: "one" | "pipeline" | "transaction",
  ): Promise<Response> => {
    if (!authorized(req)) return fail(401, "Unauthorized", { "www-authenticate": "Bearer" });
    const url = new URL(req.url);
    const base64 = req.headers.get("upstash-encoding")?.toLowerCase() === "base64" ||
      url.searchParams.get("encoding") === "base64";
    try {
      const body = await read(req);
      if (kind === "one") {
        const args = toArgs(body, "the body");
        refuse(args, "the body");
        const [r] = await run([args], false);
        if (r instanceof ReplyError) {
          commands.inc({ outcome: "error" });
          return fail(400, r.message);
        }
        commands.inc({ outcome: "ok" });
        return Response.json({ result: toJson(r, base64) });
      }
      if (!Array.isArray(body) || body.length === 0) {
        throw new BadRequest("the body must be a non-empty array of commands");
      }
      if (body.length > maxCommands) {
        throw new BadRequest(`at most ${maxCommands} commands per request`);
      }
      const all = body.map((c, i) => toArgs(c, `commands[${i}]`));
      all.forEach((a, i) => refuse(a, `commands[${i}]`));
      const replies = await run(all, kind === "transaction");
      if (kind === "transaction") {
        // [MULTI's OK, QUEUED..., EXEC's reply]
        const exec = replies[replies.length - 1];
        if (exec instanceof ReplyError) return fail(400, exec.message);
        const queued = replies.slice(1, -1).find((r) => r instanceof ReplyError);
        if (queued !== undefined) return fail(400, (queued as ReplyError).message);
        return Response.json((exec as Reply[]).map((r) => answer(r, base64)));
      }
      return Response.json(replies.map((r) => answer(r, base64)));
    } catch (e) {
      if (e instanceof BadRequest) return fail(400, e.message);
      if (e instanceof HttpError) return fail(e.status, e.message, e.headers);
      throw e;
    }
  };

  // Deno KV Connect under /kv: `Deno.openKv("http://host:PORT/kv")` (kv_connect/README.md).
  const kvConnect = mountKvConnect(app, {
    token: options.token,
    bodyLimitBytes: bodyLimit,
    store: options.kvConnectStore,
    commit,
  });
  app.post("/", (c) => handle(c.req.raw, "one"));
  app.post("/pipeline", (c) => handle(c.req.raw, "pipeline"));
  app.post("/multi-exec", (c) => handle(c.req.raw, "transaction"));
  app.get("/stats", (c) =>
    c.json({
      keys: engine.keyspace.size,
      clients: engine.clients.size,
      commands: engine.stats.commands,
      memory: Deno.memoryUsage(),
    }));
  return { ...service, kvConnect };
}
