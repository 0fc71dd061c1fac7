/** Log levels in increasing severity; `off` disables output. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "off";

const SEVERITY: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, off: 100 };

/** Where finished log lines go (one JSON object per line, no trailing newline). */
export type LogSink = (line: string) => void;

/** A structured JSON-lines logger. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** True when `level` would be written. */
  enabled(level: LogLevel): boolean;
}

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  service: string;
  level?: LogLevel;
  sink: LogSink;
  /** Wall clock in ms since the epoch, injected (main passes `Date.now`). */
  now: () => number;
}

function errorFields(value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack };
  }
  return value;
}

/**
 * Creates a logger that writes `{"ts","level","service","msg",...fields}` lines.
 *
 * @example
 * ```ts
 * import { createLogger } from "@deno-stores/shared/http";
 * const lines: string[] = [];
 * const log = createLogger({ service: "tasks", sink: (l) => lines.push(l), now: () => 0 });
 * log.info("listening", { port: 8001 });
 * ```
 */
export function createLogger(options: LoggerOptions): Logger {
  const threshold = SEVERITY[options.level ?? "info"];
  const write = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (SEVERITY[level] < threshold) return;
    const record: Record<string, unknown> = {
      ts: new Date(options.now()).toISOString(),
      level,
      service: options.service,
      msg,
    };
    if (fields !== undefined) {
      for (const key in fields) record[key] = errorFields(fields[key]);
    }
    options.sink(JSON.stringify(record));
  };
  return {
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
    enabled: (level) => SEVERITY[level] >= threshold,
  };
}

const stdoutEncoder = new TextEncoder();

/** Writes `text` to stdout whole (what a service's {@link BufferedSink} writes with). */
export function writeStdout(text: string): void {
  const bytes = stdoutEncoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += Deno.stdout.writeSync(bytes.subarray(offset));
}

/** Most bytes a {@link BufferedSink} holds before it flushes. */
export const LOG_BUFFER_BYTES_MAX = 64 * 1024;

/**
 * A sink that batches lines and writes them with one call, so that an access
 * log at tens of thousands of requests per second costs little. Lines are
 * flushed when the buffer is full, on the next macrotask, and on `flush()`.
 */
export class BufferedSink {
  #lines: string[] = [];
  #bytes = 0;
  #scheduled = false;
  readonly #write: (text: string) => void;
  readonly #schedule: (fn: () => void) => void;

  constructor(write: (text: string) => void, schedule: (fn: () => void) => void) {
    this.#write = write;
    this.#schedule = schedule;
  }

  /** The sink function to hand to {@link createLogger}. */
  readonly sink: LogSink = (line) => {
    this.#lines.push(line);
    this.#bytes += line.length + 1;
    if (this.#bytes >= LOG_BUFFER_BYTES_MAX) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      this.#schedule(() => this.flush());
    }
  };

  /** Writes everything buffered now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#lines.length === 0) return;
    const text = this.#lines.join("\n") + "\n";
    this.#lines = [];
    this.#bytes = 0;
    this.#write(text);
  }
}

/**
 * A service's logger as every `main.ts` wants it: JSON lines to stdout, batched by a
 * {@link BufferedSink} (one write per 20 ms at most), the wall clock. Call `flush` before exit.
 */
export function stdoutLogger(service: string, level: LogLevel): { logger: Logger; flush(): void } {
  const sink = new BufferedSink(writeStdout, (fn) => setTimeout(fn, 20));
  return {
    logger: createLogger({ service, level, sink: sink.sink, now: Date.now }),
    flush: () => sink.flush(),
  };
}
