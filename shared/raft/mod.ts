/**
 * Raft consensus as a pure, deterministic state machine, written from the Raft paper and
 * Diego Ongaro's dissertation. See README.md for the model and the driver loop.
 *
 * @module
 */

export * from "./types.ts";
export * from "./codec.ts";
export {
  EntryUnavailableError,
  type InitialState,
  limitSize,
  LogCompactedError,
  MemoryStorage,
  SnapshotNotReadyError,
  StaleSnapshotError,
  type Storage,
} from "./storage.ts";
export { ConfigError, RaftCore, type RaftStatus, resolveConfig, TRANSFER_CONTEXT } from "./raft.ts";
export {
  applyConfChange,
  bootstrap,
  checkConfChange,
  ConfChangeError,
  type Membership,
  membershipFromConfState,
  membershipToConfState,
} from "./membership.ts";
export { type PeerStatus, type ReplicationMode } from "./progress.ts";
export { bootstrapPersistence, MemoryPersistence, type RaftPersistence } from "./persistence.ts";
export {
  DurableStorage,
  DurableStorageCorruptError,
  type DurableStorageOptions,
} from "./durable_storage.ts";
export {
  decodeProposal,
  encodeProposal,
  intervalTicker,
  ManualTicker,
  NodeBusyError,
  type NodeClock,
  type NodeStatus,
  NodeStoppedError,
  RaftNode,
  type RaftNodeOptions,
  RaftTimeoutError,
  type RequestOptions,
  type StateMachine,
  type Ticker,
} from "./node.ts";
export {
  isSnapshotMessage,
  LocalNetwork,
  type LocalNetworkOptions,
  type RaftTransport,
  type TransportHandler,
} from "./transport.ts";
export {
  decodeBatch,
  encodeBatch,
  HttpTransport,
  type HttpTransportOptions,
  type HttpTransportStats,
  RAFT_MESSAGES_PATH,
  RAFT_SNAPSHOT_PATH,
} from "./http_transport.ts";
