/**
 * kv-events: vLLM KV-cache event ingest and prefix-aware routing. The pieces, for embedding and
 * tools; the service itself is main.ts.
 *
 * @module
 */
export { createKvEventsApp, type KvEventsAppOptions, type PublisherStatus } from "./app.ts";
export {
  BlockHasher,
  HASH_ALGOS,
  type HashAlgo,
  type HasherOptions,
  intBlockHash,
  noneHash,
  type PromptKeys,
} from "./block_hash.ts";
export { type KvEventsConfig, loadKvEventsConfig, parsePublishers } from "./config.ts";
export {
  type BlockHash,
  decodeEventBatch,
  hashKey,
  type KvEvent,
  type KvEventBatch,
} from "./events.ts";
export { BlockIndex, type Tier, tierOf } from "./index.ts";
export { Ingest, IngestStats, PublisherStream, seqFrame } from "./ingest.ts";
export { decodeMsgpack, encodeMsgpack, MsgpackError, type MsgpackValue } from "./msgpack.ts";
export {
  type Candidate,
  DEFAULT_WEIGHTS,
  Router,
  type RouteResult,
  type RouteWeights,
} from "./router.ts";
export { CacheMap, PodLimitError, type PodState } from "./store.ts";
export { ZmqDealer, ZmqSubscriber } from "./zmtp.ts";
