import type { Lifecycle } from "./app.ts";
import type { Logger } from "./log.ts";

/** What {@link installGracefulShutdown} drains and closes. */
export interface ShutdownOptions {
  /** The server returned by `Deno.serve` (or anything with `shutdown()`). */
  servers: ReadonlyArray<{ shutdown(): Promise<void> }>;
  lifecycle: Lifecycle;
  logger: Logger;
  /** Most ms to wait for in-flight requests before closing anyway. */
  timeoutMs: number;
  /** Run after the servers stop, in order (close stores, flush logs). */
  onShutdown?: ReadonlyArray<() => void | Promise<void>>;
  /** Called after the last log line, before exit (flush buffered logs). */
  flush?: () => void;
  /** Called last with the exit code (main passes `Deno.exit`). */
  exit: (code: number) => void;
  signals?: ReadonlyArray<Deno.Signal>;
}

/**
 * On SIGINT/SIGTERM: marks the service not ready, stops accepting
 * connections and waits for in-flight requests (up to `timeoutMs`), runs the
 * shutdown hooks, then exits. A second signal exits at once.
 * Returns a function that runs the same sequence (for tests and embedding).
 */
export function installGracefulShutdown(options: ShutdownOptions): () => Promise<void> {
  let running: Promise<void> | undefined;
  const signals = options.signals ?? ["SIGINT", "SIGTERM"];
  const shutdown = () => {
    if (running !== undefined) return running;
    running = (async () => {
      options.lifecycle.markDraining();
      options.logger.info("shutting down", { timeoutMs: options.timeoutMs });
      let code = 0;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), options.timeoutMs);
      });
      const drained = Promise.all(options.servers.map((s) => s.shutdown())).then(() =>
        "drained" as const
      );
      const outcome = await Promise.race([drained, timeout]);
      clearTimeout(timer);
      if (outcome === "timeout") {
        options.logger.warn("shutdown timed out waiting for in-flight requests");
        code = 1;
      }
      for (const hook of options.onShutdown ?? []) {
        try {
          await hook();
        } catch (error) {
          options.logger.error("shutdown hook failed", { error });
          code = 1;
        }
      }
      options.logger.info("stopped", { code });
      options.flush?.();
      for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
      options.exit(code);
    })();
    return running;
  };
  const onSignal = () => {
    if (running !== undefined) {
      options.flush?.();
      options.exit(130);
      return;
    }
    void shutdown();
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  return shutdown;
}
