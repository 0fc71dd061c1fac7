import { z } from "zod";
import { httpEnvShape, int, parseEnv } from "@deno-stores/shared/config";
import type { Env } from "@deno-stores/shared/config";
import { STORAGE_TYPES } from "./store/types.ts";

/** Default HTTP port of the tasks service. */
export const TASKS_PORT_DEFAULT = 8001;

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** The tasks service's environment, validated. `cores` is the default for POOL_WORKERS. */
export function tasksConfigSchema(cores: number) {
  return z.object({
    ...httpEnvShape(TASKS_PORT_DEFAULT),
    STORAGE_TYPE: z.enum(STORAGE_TYPES).default("memory"),
    SHARD_COUNT: int(32, 1, 65536).refine(isPowerOfTwo, "must be a power of two"),
    POOL_WORKERS: int(Math.max(1, cores), 1, 256),
    POOL_SLOTS_PER_SHARD: int(65_536, 16, 1 << 24),
    POOL_ARENA_BYTES: int(256 << 20, 1 << 20, 2 ** 31 - 1),
    DATA_DIR: z.string().min(1).default(".data/tasks"),
    KV_PATH: z.string().min(1).optional(),
    BULK_BODY_LIMIT_BYTES: int(64 << 20, 1024, 1 << 30),
  });
}

/** Validated tasks configuration. */
export type TasksConfig = z.infer<ReturnType<typeof tasksConfigSchema>>;

/** Parses the tasks service's environment (throws ConfigError naming bad variables). */
export function loadTasksConfig(env: Env, cores: number): TasksConfig {
  return parseEnv(tasksConfigSchema(cores), env);
}
