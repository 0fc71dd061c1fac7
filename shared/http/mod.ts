/**
 * The HTTP kit every service is built from: a Hono app factory with request
 * ids, a JSON access log, error mapping, health, readiness and Prometheus
 * metrics; body parsing with limits and zod validation; graceful shutdown.
 *
 * @module
 */
export {
  createServiceApp,
  type FastGetHandler,
  Lifecycle,
  type ServiceApp,
  type ServiceAppOptions,
  type ServiceEnv,
} from "./app.ts";
export { BODY_BYTES_MAX_DEFAULT, parseBody, parseQuery, readBodyBytes, readJson } from "./body.ts";
export {
  type ErrorBody,
  formatPath,
  HttpError,
  type IssueBody,
  validationError,
} from "./errors.ts";
export {
  BufferedSink,
  createLogger,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  type LogSink,
  stdoutLogger,
  writeStdout,
} from "./log.ts";
export { Counter, Gauge, Histogram, LATENCY_BUCKETS_SECONDS, Registry } from "./metrics.ts";
export { installGracefulShutdown, type ShutdownOptions } from "./shutdown.ts";
export {
  type LimitedServeOptions,
  type LimitedServer,
  serveWithConnectionLimit,
} from "./conn_limit.ts";
