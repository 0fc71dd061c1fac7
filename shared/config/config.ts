import { z } from "zod";

/** Thrown when an environment variable does not satisfy the service's config schema. */
export class ConfigError extends Error {
  /** The variables that failed, with a reason each. */
  readonly problems: ReadonlyArray<{ variable: string; message: string }>;

  constructor(problems: ReadonlyArray<{ variable: string; message: string }>) {
    super(
      "invalid configuration: " +
        problems.map((p) => `${p.variable}: ${p.message}`).join("; "),
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/**
 * Runs a service's start-up (`main.ts`): a {@link ConfigError}, from loading the configuration or
 * from starting, prints `<service>: <message>` and exits with status 2 (no stack trace: the
 * operator has a setting to fix); any other error propagates.
 */
export async function startOrExit(
  service: string,
  start: () => void | Promise<void>,
): Promise<void> {
  try {
    await start();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`${service}: ${error.message}`);
    Deno.exit(2);
  }
}

/** Environment as a plain record; `main.ts` passes `Deno.env.toObject()`. */
export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Parses `env` with a zod object schema whose keys are variable names.
 * Empty strings count as unset so that `PORT=` falls back to the default.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { parseEnv, port } from "@deno-stores/shared/config";
 * const config = parseEnv(z.object({ PORT: port(8001) }), { PORT: "9000" });
 * console.log(config.PORT); // 9000
 * ```
 */
export function parseEnv<S extends z.ZodObject>(schema: S, env: Env): z.infer<S> {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") input[key] = value;
  }
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => ({
      variable: issue.path.length > 0 ? String(issue.path[0]) : "(env)",
      message: issue.message,
    })),
  );
}

/** A TCP port variable (0 lets the OS choose). */
export function port(defaultPort: number) {
  return z.coerce.number().int("must be an integer").min(0, "must be >= 0").max(
    65535,
    "must be <= 65535",
  ).default(defaultPort);
}

/** A host/interface variable. */
export function host(defaultHost = "127.0.0.1") {
  return z.string().min(1).max(255).default(defaultHost);
}

/** An integer variable within bounds. */
export function int(defaultValue: number, min: number, max: number) {
  return z.coerce.number().int("must be an integer").min(min, `must be >= ${min}`).max(
    max,
    `must be <= ${max}`,
  ).default(defaultValue);
}

/** A boolean variable: `1/0`, `true/false`, `yes/no`, `on/off`. */
export function bool(defaultValue: boolean) {
  return z.enum(["1", "0", "true", "false", "yes", "no", "on", "off"], {
    message: "must be one of 1, 0, true, false, yes, no, on, off",
  }).transform((v) => v === "1" || v === "true" || v === "yes" || v === "on").default(
    defaultValue,
  );
}

/** The variables every HTTP service shares: `HOST`, `PORT`, `LOG_LEVEL`, limits. */
export function httpEnvShape(defaultPort: number) {
  return {
    HOST: host(),
    PORT: port(defaultPort),
    LOG_LEVEL: z.enum(["debug", "info", "warn", "error", "off"]).default("info"),
    ACCESS_LOG: bool(true),
    BODY_LIMIT_BYTES: int(1 << 20, 1024, 1 << 30),
    MAX_INFLIGHT_REQUESTS: int(10_000, 1, 1_000_000),
    SHUTDOWN_TIMEOUT_MS: int(10_000, 0, 600_000),
  };
}
