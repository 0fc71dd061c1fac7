/**
 * The HTTP client VUs use: fetch with keep-alive (Deno's pooled client), a
 * per-request timeout, the body always read to the end, and every outcome
 * recorded instead of thrown.
 *
 * @module
 */
import type { RunMetrics } from "./metrics.ts";

/** Default time limit of one request. */
export const REQUEST_TIMEOUT_MS_DEFAULT = 10_000;
/** Bodies larger than this are read but not kept (counted in bytes only). */
export const KEEP_BODY_BYTES_MAX = 4 << 20;

/** Options of one request. */
export interface RequestOptions {
  /** The `name` tag (per-tag breakdown); defaults to "METHOD path-without-query". */
  name?: string;
  /** Statuses that count as success (default 200-399, as k6). */
  expect?: number | readonly number[];
  headers?: Record<string, string>;
  timeoutMs?: number;
}

/** The outcome of a request; `status` is 0 on a transport error. */
export interface HttpResult {
  status: number;
  /** True when the status was expected. */
  ok: boolean;
  durationMs: number;
  body: string;
  /** Transport error kind ("timeout", "connect", ...) when the request did not complete. */
  error?: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json<T = unknown>(): T | undefined;
}

/** Hooks the client calls for each request; the runner wires them to {@linkcode RunMetrics}. */
export interface HttpRecorder {
  /** Whether the run is stopping; requests cut by the stop are not recorded. */
  stopped(): boolean;
  request(name: string, durationMs: number, failed: boolean): void;
  error(kind: string): void;
  check(name: string, ok: boolean): void;
  bytes(sent: number, received: number): void;
}

/** A recorder that records nothing (for setup and teardown). */
export const NULL_RECORDER: HttpRecorder = {
  stopped: () => false,
  request: () => {},
  error: () => {},
  check: () => {},
  bytes: () => {},
};

/** Binds a recorder to run metrics and a clock. */
export function metricsRecorder(
  metrics: RunMetrics,
  elapsedMs: () => number,
  stopped: () => boolean,
): HttpRecorder {
  return {
    stopped,
    request: (name, durationMs, failed) =>
      metrics.recordRequest(name, durationMs, failed, elapsedMs()),
    error: (kind) => metrics.recordError(kind),
    check: (name, ok) => metrics.recordCheck(name, ok),
    bytes: (sent, received) => {
      metrics.bytesSent += sent;
      metrics.bytesReceived += received;
    },
  };
}

function errorKind(error: unknown): string {
  if (error instanceof DOMException && error.name === "TimeoutError") {
    return "timeout";
  }
  if (error instanceof DOMException && error.name === "AbortError") {
    return "aborted";
  }
  const message = error instanceof Error ? error.message : String(error);
  if (/refused/i.test(message)) return "connection_refused";
  if (/reset/i.test(message)) return "connection_reset";
  if (/connect/i.test(message)) return "connect";
  return "transport";
}

function isExpected(
  status: number,
  expect: number | readonly number[] | undefined,
): boolean {
  if (expect === undefined) return status >= 200 && status < 400;
  return typeof expect === "number" ? status === expect : expect.includes(status);
}

const decoder = new TextDecoder();

/**
 * A small fetch wrapper bound to a base URL.
 *
 * @example
 * ```ts ignore
 * import { HttpClient, NULL_RECORDER } from "./http_client.ts";
 * const http = new HttpClient("http://127.0.0.1:8001", NULL_RECORDER);
 * const res = await http.get("/healthz", { expect: 200 });
 * ```
 */
export class HttpClient {
  readonly baseUrl: string;
  readonly #recorder: HttpRecorder;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  /** Controllers of in-flight requests, aborted together when the stop signal fires. */
  readonly #inflight = new Set<AbortController>();

  constructor(
    baseUrl: string,
    recorder: HttpRecorder,
    options: {
      timeoutMs?: number;
      stopSignal?: AbortSignal;
      now?: () => number;
    } = {},
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.#recorder = recorder;
    this.#timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT;
    options.stopSignal?.addEventListener("abort", () => {
      for (const c of this.#inflight) c.abort();
    }, { once: true });
    this.#now = options.now ?? (() => performance.now());
  }

  /** Sends a request; `body` objects are sent as JSON. Never throws for HTTP or network errors. */
  async request(
    method: string,
    path: string,
    body?: unknown,
    options: RequestOptions = {},
  ): Promise<HttpResult> {
    const name = options.name ?? `${method} ${path.split("?")[0]}`;
    const headers: Record<string, string> = { ...options.headers };
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === "string" ? body : JSON.stringify(body);
      headers["content-type"] ??= "application/json";
    }
    // One controller per request (no long-lived signal listeners): the timer aborts it on
    // timeout, the stop signal aborts every controller still in flight.
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new DOMException("request timed out", "TimeoutError")),
      options.timeoutMs ?? this.#timeoutMs,
    );
    this.#inflight.add(controller);
    const start = this.#now();
    let status = 0;
    let text = "";
    let error: string | undefined;
    try {
      const res = await fetch(this.baseUrl + path, {
        method,
        headers,
        body: payload,
        signal: controller.signal,
      });
      status = res.status;
      const bytes = new Uint8Array(await res.arrayBuffer());
      // UTF-16 length: exact for the ASCII JSON bodies the scenarios send, and cheap.
      this.#recorder.bytes(payload?.length ?? 0, bytes.length);
      if (bytes.length <= KEEP_BODY_BYTES_MAX) text = decoder.decode(bytes);
    } catch (e) {
      error = errorKind(e);
    } finally {
      clearTimeout(timer);
      this.#inflight.delete(controller);
    }
    const durationMs = this.#now() - start;
    const ok = error === undefined && isExpected(status, options.expect);
    const cutByStop = error === "aborted" && this.#recorder.stopped();
    if (!cutByStop) {
      this.#recorder.request(name, durationMs, !ok);
      if (error !== undefined) this.#recorder.error(error);
      if (options.expect !== undefined) {
        const want = typeof options.expect === "number" ? options.expect : options.expect.join("|");
        this.#recorder.check(`${name} status ${want}`, ok);
      }
    }
    let parsed: { value: unknown } | undefined;
    return {
      status,
      ok,
      durationMs,
      body: text,
      ...(error === undefined ? {} : { error }),
      json<T>(): T | undefined {
        if (parsed === undefined) {
          try {
            parsed = { value: JSON.parse(text) };
          } catch {
            parsed = { value: undefined };
          }
        }
        return parsed.value as T | undefined;
      },
    };
  }

  /** GET `path`. */
  get(path: string, options?: RequestOptions): Promise<HttpResult> {
    return this.request("GET", path, undefined, options);
  }
  /** POST `body` as JSON. */
  post(
    path: string,
    body: unknown,
    options?: RequestOptions,
  ): Promise<HttpResult> {
    return this.request("POST", path, body, options);
  }
  /** PUT `body` as JSON. */
  put(
    path: string,
    body: unknown,
    options?: RequestOptions,
  ): Promise<HttpResult> {
    return this.request("PUT", path, body, options);
  }
  /** PATCH `body` as JSON. */
  patch(
    path: string,
    body: unknown,
    options?: RequestOptions,
  ): Promise<HttpResult> {
    return this.request("PATCH", path, body, options);
  }
  /** DELETE `path`. */
  del(path: string, options?: RequestOptions): Promise<HttpResult> {
    return this.request("DELETE", path, undefined, options);
  }
}
