import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Context } from "hono";
import { z } from "zod";
import { HttpError, validationError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { HttpMetrics, Registry } from "./metrics.ts";
import { BODY_BYTES_MAX_DEFAULT } from "./body.ts";

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * Per-request state the service wrapper hands to the Hono app as its `env`
 * (`c.env` in handlers). Kept outside Hono middleware because a middleware
 * layer costs a fifth of the throughput of a small JSON endpoint.
 */
export class RequestState {
  /** The route pattern that answered, for metrics and logs. */
  route = "";
  /** The body limit {@link parseBody} enforces; a route may raise it. */
  bodyLimitBytes: number;
  #id: string | undefined;
  #echoed = false;
  readonly #request: Request;
  readonly #generate: () => string;

  constructor(request: Request, bodyLimitBytes: number, generate: () => string) {
    this.#request = request;
    this.bodyLimitBytes = bodyLimitBytes;
    this.#generate = generate;
  }

  /**
   * The request id: the client's `x-request-id` when it is 1-128 printable
   * ASCII characters, else a generated one. Read lazily, because reading
   * request headers costs ~5% of a small request and most successful
   * requests never need the id when the access log is off.
   */
  get requestId(): string {
    if (this.#id === undefined) {
      const incoming = this.#request.headers.get("x-request-id");
      this.#echoed = incoming !== null && REQUEST_ID.test(incoming);
      this.#id = this.#echoed ? incoming! : this.#generate();
    }
    return this.#id;
  }

  /** True when the id came from the client (then the response echoes it). */
  get requestIdEchoed(): boolean {
    return this.requestId !== "" && this.#echoed;
  }
}

/** Hono environment shared by every service app. */
export type ServiceEnv = { Bindings: RequestState };

/** Readiness state: not ready until started, not ready again once draining. */
export class Lifecycle {
  #started = false;
  #draining = false;
  readonly #checks = new Map<string, () => boolean>();

  /** Marks the service as started (ready when every check passes). */
  markStarted(): void {
    this.#started = true;
  }
  /** Marks the service as shutting down: `/readyz` answers 503 from now on. */
  markDraining(): void {
    this.#draining = true;
  }
  get draining(): boolean {
    return this.#draining;
  }
  /** Adds a named readiness check (for example "raft has a leader"). */
  addCheck(name: string, check: () => boolean): void {
    this.#checks.set(name, check);
  }
  /** Readiness and the failing reasons, if any. */
  status(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (!this.#started) reasons.push("starting");
    if (this.#draining) reasons.push("draining");
    for (const [name, check] of this.#checks) {
      let ok = false;
      try {
        ok = check();
      } catch {
        ok = false;
      }
      if (!ok) reasons.push(name);
    }
    return { ready: reasons.length === 0, reasons };
  }
}

/** Options for {@link createServiceApp}. */
export interface ServiceAppOptions {
  /** Service name, used in logs and metrics. */
  service: string;
  logger: Logger;
  /** Write one JSON line per request (default true). */
  accessLog?: boolean;
  /** Most bytes in a request body (413 past it). */
  bodyLimitBytes?: number;
  /** Most requests handled at once; past it, 503 with Retry-After. */
  maxInflightRequests?: number;
  lifecycle?: Lifecycle;
  registry?: Registry;
  /** Monotonic clock in ms for latency (default `performance`). */
  clock?: { now(): number };
  /** Prefix for generated request ids (e.g. a per-process value). */
  requestIdPrefix?: string;
  /** Translates a service's domain errors into HTTP errors (undefined: not mine). */
  mapError?: (error: Error) => HttpError | undefined;
}

/** What {@link createServiceApp} returns: the app plus the pieces a service extends. */
export interface ServiceApp {
  app: Hono<ServiceEnv>;
  /** The request handler to serve: the app plus ids, limits, metrics and logs. */
  fetch: (request: Request) => Response | Promise<Response>;
  /** Like Hono's `app.request`, through {@link ServiceApp.fetch} (for tests). */
  request: (input: string | Request, init?: RequestInit) => Promise<Response>;
  registry: Registry;
  lifecycle: Lifecycle;
  /** Requests being handled now. */
  inflight(): number;
  /**
   * Registers a fast path for the hottest read of a service: `GET <prefix><segment>`
   * where the segment holds no `/`, `?`, `#` or `%` is offered to `handler`
   * before Hono routes the request; `undefined` from the handler falls through to
   * the Hono app (register the same route there for misses and errors). Ids,
   * limits, metrics (labelled `route`) and the access log still apply. Skipping
   * Hono's context and router is worth ~15% on a small JSON read.
   */
  fastGet(prefix: string, route: string, handler: FastGetHandler): void;
}

/** Answers a fast-path GET, or `undefined` to let the Hono app answer it. */
export type FastGetHandler = (
  segment: string,
  request: Request,
) => Response | undefined | Promise<Response | undefined>;

const FAST_SEGMENT_REJECT = /[/?#%]/;

function errorResponse(c: Context, error: HttpError): Response {
  return c.json(error.toBody(), error.status as 400, error.headers);
}

/**
 * Builds the Hono app every service starts from: request ids, JSON access log,
 * error mapping (zod → 400 with issues, unknown route → 404, body limit → 413,
 * overload → 503 with Retry-After), `/healthz`, `/readyz` and Prometheus
 * `/metrics` with a request counter and a latency histogram per route and
 * status. Services add their routes to the returned `app`.
 *
 * @example
 * ```ts
 * import { createLogger, createServiceApp } from "@deno-stores/shared/http";
 * const logger = createLogger({ service: "demo", sink: () => {}, now: () => 0 });
 * const { app, lifecycle, request } = createServiceApp({ service: "demo", logger });
 * app.get("/hello", (c) => c.json({ hello: "world" }));
 * lifecycle.markStarted();
 * const res = await request("/hello"); // Deno.serve(service.fetch) in main.ts
 * console.log(res.status); // 200
 * ```
 */
export function createServiceApp(options: ServiceAppOptions): ServiceApp {
  const logger = options.logger;
  const registry = options.registry ?? new Registry();
  const lifecycle = options.lifecycle ?? new Lifecycle();
  const clock = options.clock ?? performance;
  const accessLog = options.accessLog ?? true;
  const bodyLimitBytes = options.bodyLimitBytes ?? BODY_BYTES_MAX_DEFAULT;
  const maxInflight = options.maxInflightRequests ?? 10_000;
  const idPrefix = options.requestIdPrefix ?? "req";
  let idCounter = 0;
  const nextId = () => `${idPrefix}-${(++idCounter).toString(36)}`;
  let inflight = 0;

  const httpMetrics = new HttpMetrics(registry);
  registry.gauge("http_requests_inflight", "HTTP requests being handled now.", [], (g) => {
    g.set(inflight);
  });
  const rejected = registry.counter(
    "http_requests_rejected_total",
    "Requests refused with 503 because too many were in flight.",
  );
  registry.gauge("process_heap_used_bytes", "V8 heap in use.", [], (g) => {
    g.set(Deno.memoryUsage().heapUsed);
  });
  registry.gauge("process_resident_memory_bytes", "Resident set size.", [], (g) => {
    g.set(Deno.memoryUsage().rss);
  });

  const app = new Hono<ServiceEnv>();
  labelRoutes(app);

  const finish = (request: Request, state: RequestState, res: Response, started: number) => {
    const status = res.status;
    const route = state.route !== "" ? state.route : status === 404 ? "unmatched" : "other";
    const elapsedMs = clock.now() - started;
    httpMetrics.observe(request.method, route, status, elapsedMs / 1000);
    const logged = accessLog && logger.enabled("info");
    // The id goes out on every error, and whenever it is logged and the
    // client sent one; see RequestState.requestId for why not always.
    if (status >= 400 || (logged && state.requestIdEchoed)) {
      res.headers.set("x-request-id", state.requestId);
    }
    if (logged) {
      const url = request.url;
      const pathStart = url.indexOf("/", url.indexOf("//") + 2);
      const queryStart = url.indexOf("?", pathStart);
      logger.info("request", {
        requestId: state.requestId,
        method: request.method,
        path: url.slice(pathStart, queryStart === -1 ? undefined : queryStart),
        route,
        status,
        durationMs: Math.round(elapsedMs * 1000) / 1000,
      });
    }
    return res;
  };

  // Not async on purpose: when the handler answers synchronously, so does this,
  // which saves a promise round trip per request.
  const fetch = (request: Request): Response | Promise<Response> => {
    const started = clock.now();
    const state = new RequestState(request, bodyLimitBytes, nextId);
    if (inflight >= maxInflight) {
      rejected.inc();
      const res = Response.json(
        new HttpError(503, "overloaded", "too many requests in flight; retry later").toBody(),
        { status: 503, headers: { "retry-after": "1" } },
      );
      return finish(request, state, res, started);
    }
    inflight++;
    if (fastRoutes.length > 0 && request.method === "GET") {
      // A fast handler that fails or declines leaves the request to the Hono
      // route, which answers misses and maps errors the usual way.
      let fast: ReturnType<FastGetHandler>;
      try {
        fast = tryFast(request, state);
      } catch {
        fast = undefined;
      }
      if (fast instanceof Promise) {
        return fast.then(
          (res) => res,
          () => undefined,
        ).then((res) => {
          if (res === undefined) return dispatch(request, state, started);
          inflight--;
          return finish(request, state, res, started);
        });
      }
      if (fast !== undefined) {
        inflight--;
        return finish(request, state, fast, started);
      }
    }
    return dispatch(request, state, started);
  };

  const fastRoutes: Array<{ prefix: string; route: string; handler: FastGetHandler }> = [];
  const tryFast = (request: Request, state: RequestState) => {
    const url = request.url;
    const pathStart = url.indexOf("/", url.indexOf("//") + 2);
    for (const fast of fastRoutes) {
      if (!url.startsWith(fast.prefix, pathStart)) continue;
      const segment = url.slice(pathStart + fast.prefix.length);
      if (segment === "" || FAST_SEGMENT_REJECT.test(segment)) return undefined;
      state.route = fast.route;
      return fast.handler(segment, request);
    }
    return undefined;
  };

  // inflight has been incremented by the caller.
  const dispatch = (request: Request, state: RequestState, started: number) => {
    state.route = "";
    const out = app.fetch(request, state);
    if (out instanceof Promise) {
      return out.then((res) => {
        inflight--;
        return finish(request, state, res, started);
      }, (error) => {
        inflight--;
        throw error;
      });
    }
    inflight--;
    return finish(request, state, out, started);
  };

  const requestFn = async (input: string | Request, init?: RequestInit) =>
    await fetch(
      typeof input === "string" ? new Request(new URL(input, "http://localhost"), init) : input,
    );

  app.notFound((c) =>
    errorResponse(
      c,
      new HttpError(404, "not_found", `no route for ${c.req.method} ${c.req.path}`),
    )
  );

  app.onError((error, c) => {
    const requestId = c.env?.requestId;
    if (error instanceof HttpError) return errorResponse(c, error);
    const mapped = options.mapError?.(error);
    if (mapped !== undefined) return errorResponse(c, mapped);
    if (error instanceof z.ZodError) return errorResponse(c, validationError(error.issues));
    if (error instanceof HTTPException) {
      const status = error.status;
      const code = status === 413 ? "payload_too_large" : status < 500 ? "bad_request" : "internal";
      return errorResponse(c, new HttpError(status, code, error.message || "request failed"));
    }
    logger.error("unhandled error", { requestId, error });
    return errorResponse(c, new HttpError(500, "internal", "internal server error"));
  });

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", (c) => {
    const { ready, reasons } = lifecycle.status();
    return ready ? c.json({ status: "ready" }) : c.json({ status: "not_ready", reasons }, 503);
  });
  app.get("/metrics", (c) =>
    c.body(registry.render(), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    }));

  const fastGet = (prefix: string, route: string, handler: FastGetHandler) => {
    if (!prefix.startsWith("/") || !prefix.endsWith("/")) {
      throw new RangeError("fast route prefix must start and end with /");
    }
    fastRoutes.push({ prefix, route, handler });
  };

  return {
    app,
    fetch,
    request: requestFn,
    registry,
    lifecycle,
    inflight: () => inflight,
    fastGet,
  };
}

const ROUTE_METHODS = ["get", "post", "put", "delete", "patch", "options", "all"] as const;

/**
 * Wraps the last handler of every route registered through `app.get(path,
 * ...)` and friends so that it records its route pattern in `c.env.route`
 * (for metrics labels) without a middleware layer.
 */
function labelRoutes(app: Hono<ServiceEnv>): void {
  const target = app as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const method of ROUTE_METHODS) {
    const register = target[method]!;
    target[method] = (...args: unknown[]) => {
      const path = args[0];
      if (typeof path === "string" && args.length > 1) {
        const last = args.length - 1;
        const handler = args[last] as (
          c: Context<ServiceEnv>,
          next: () => Promise<void>,
        ) => unknown;
        args[last] = (c: Context<ServiceEnv>, next: () => Promise<void>) => {
          if (c.env !== undefined) c.env.route = path;
          return handler(c, next);
        };
      }
      return register(...args);
    };
  }
}
