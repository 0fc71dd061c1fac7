/**
 * kv-events' environment, validated (docs/kv-events.md lists every variable).
 *
 * @module
 */
import { z } from "zod";
import { httpEnvShape, int, parseEnv } from "@deno-stores/shared/config";
import type { Env } from "@deno-stores/shared/config";
import { HASH_ALGOS, type HashAlgo } from "./block_hash.ts";
import { SHA256_CHOICES, type Sha256Choice } from "./sha256.ts";
import { parseTcpEndpoint } from "./zmtp.ts";

/** Default HTTP port. */
export const KV_EVENTS_PORT_DEFAULT = 8003;

/** One configured publisher: a pod's ZMQ PUB endpoint and its replay ROUTER endpoint. */
export interface PublisherSpec {
  pod: string;
  endpoint: string;
  replay: string | null;
}

/** Parses `POD=tcp://host:port[|tcp://host:replayport],...`. */
export function parsePublishers(s: string): PublisherSpec[] {
  const out: PublisherSpec[] = [];
  const seen = new Set<string>();
  for (const part of s.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new Error(`"${part}" is not POD_ID=ZMQ_ENDPOINT[|REPLAY_ENDPOINT]`);
    const pod = part.slice(0, eq);
    const [endpoint, replay, extra] = part.slice(eq + 1).split("|");
    if (extra !== undefined) throw new Error(`"${part}": at most one replay endpoint`);
    parseTcpEndpoint(endpoint);
    if (replay !== undefined) parseTcpEndpoint(replay);
    if (seen.has(pod)) throw new Error(`pod "${pod}" listed twice`);
    seen.add(pod);
    out.push({ pod, endpoint, replay: replay ?? null });
  }
  return out;
}

const custom = <T>(parse: (s: string) => T) =>
  z.string().transform((s, ctx) => {
    try {
      return parse(s);
    } catch (e) {
      ctx.addIssue({ code: "custom", message: (e as Error).message });
      return z.NEVER;
    }
  });

const weight = (d: number, max = 1_000) => z.coerce.number().min(0).max(max).default(d);

/** The configuration schema. */
export function kvEventsConfigSchema() {
  const http = httpEnvShape(KV_EVENTS_PORT_DEFAULT);
  return z.object({
    ...http,
    // Routing prompts of 50,000+ tokens as JSON needs more than the shared 1 MiB default.
    BODY_LIMIT_BYTES: int(8 << 20, 1024, 1 << 30),
    /** Publishers to connect to: `POD=tcp://host:port[|tcp://host:replay_port],...`. */
    PUBLISHERS: custom(parsePublishers).default([]),
    /** A ZMQ endpoint to bind a SUB socket on, for engines that connect (`tcp://*:5557`). */
    ZMQ_BIND: custom((s) => (parseTcpEndpoint(s, true), s)).optional(),
    /** Topic prefix subscribed to (default: every topic). */
    TOPIC: z.string().max(1024).default(""),
    /** Model of messages whose topic is not `kv@<pod>@<model>`. */
    DEFAULT_MODEL: z.string().min(1).max(512).default("default"),
    HASH_ALGO: z.enum(HASH_ALGOS as [HashAlgo, ...HashAlgo[]]).default("sha256_cbor"),
    /** The engines' PYTHONHASHSEED (NONE_HASH comes from it). */
    HASH_SEED: z.string().max(4096).default("0"),
    BLOCK_SIZE: int(16, 1, 65536),
    /**
     * SHA-256 for block hashing: `native` (the system's libcrypto through FFI, needs
     * --allow-ffi), `js` (ours), `auto` (native when it loads).
     */
    HASH_IMPL: z.enum(SHA256_CHOICES as [Sha256Choice, ...Sha256Choice[]]).default("auto"),
    /**
     * Learn block chains from events and routes (which block follows which, by its tokens), so
     * that routes over token ids follow them instead of hashing: `on` or `off`. They live in the
     * index's records (no table of their own).
     */
    LEARN_CHAINS: z.enum(["on", "off"]).default("on"),
    /** Read no more (the links' own table is gone): refused, so that `CHAIN_BLOCKS=0` is not lost. */
    CHAIN_BLOCKS: z.string().refine(() => false, {
      message: "no longer read: learned chains live in the index; set LEARN_CHAINS=on or off",
    }).optional(),
    /**
     * A pod none of whose chains' first blocks the service's hasher reproduced, and more than this
     * many it did not, has its first blocks learned unchecked (0 = never): for engines whose
     * PYTHONHASHSEED the service does not have. The service cannot tell them from an engine whose
     * traffic is all salted and whose events hide the salt (no extra_keys): its salted blocks are
     * then learned as unsalted.
     */
    CHAIN_UNCHECKED_AFTER: int(0, 0, 1_000_000),
    /** Blocks indexed at most, all models together; new ones past it are counted, not kept. */
    MAX_INDEX_BLOCKS: int(20_000_000, 1, 1_000_000_000),
    /** Pods known at once (pod masks are MAX_PODS bits per block). */
    MAX_PODS: int(32, 1, 1024),
    /** A pod with no event, heartbeat or live connection for this long is dropped (0 = never). */
    POD_TIMEOUT_MS: int(60_000, 0, 86_400_000),
    REPLAY_TIMEOUT_MS: int(2_000, 10, 600_000),
    /** Live messages held per publisher while a replay runs. */
    REPLAY_MAX_HELD: int(100_000, 1, 10_000_000),
    /** Largest ZMQ frame accepted. */
    ZMQ_MAX_FRAME_BYTES: int(64 << 20, 1024, 1 << 30),
    /** Token ids or block hashes in one /route request, at most. */
    MAX_ROUTE_TOKENS: int(1_000_000, 1, 100_000_000),
    ROUTE_CACHE_WEIGHT: weight(1),
    ROUTE_LOAD_WEIGHT: weight(0.5),
    ROUTE_OFFLOAD_WEIGHT: weight(0.8, 1),
    ROUTE_IMBALANCE_ABS: weight(32, 1e9),
    ROUTE_IMBALANCE_REL: z.coerce.number().min(1).max(1e9).default(1.5),
  });
}

export type KvEventsConfig = z.infer<ReturnType<typeof kvEventsConfigSchema>>;

/** Reads and validates the environment (throws ConfigError naming each bad variable). */
export function loadKvEventsConfig(env: Env): KvEventsConfig {
  return parseEnv(kvEventsConfigSchema(), env);
}
