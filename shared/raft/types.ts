/**
 * Core data types of the Raft state machine.
 *
 * Plain TypeScript objects: node ids, terms and indexes are JavaScript numbers restricted to
 * safe non-negative integers (< 2^53), payloads are `Uint8Array`. Enum values (message,
 * entry, conf-change and role numbers) use the numbering common in the Raft ecosystem (the
 * same values as etcd's wire enums) so that tooling and logs read familiarly.
 *
 * Everything in this package is pure and deterministic: no timers, no I/O, no clock and no
 * `Math.random()`. The only source of randomness is the injected {@link Rand}.
 *
 * @module
 */

import type { Storage } from "./storage.ts";

/** The "no node" id (no leader, no vote). Real node ids are positive safe integers. */
export const None = 0;

/**
 * Injected source of randomness (used for randomized election timeouts only).
 * `next()` returns a float in [0, 1); `nextInt(n)` returns an integer in [0, n).
 * The simulation PRNG in `shared/sim` implements this interface.
 */
export interface Rand {
  next(): number;
  nextInt(n: number): number;
}

// ---------------------------------------------------------------------------------------------
// Entries

/** Kind of a log entry. Values match etcd's `EntryType`. */
export const EntryType = {
  Normal: 0,
  ConfChange: 1,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** A log entry. `data` of an empty Normal entry is a zero-length array (leader's no-op). */
export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Messages

/** Message types. Numeric values match etcd's `raftpb.MessageType` (wire compatible ids). */
export const MessageType = {
  /** Local: start an election (campaign). */
  MsgHup: 0,
  /** Local: leader should broadcast heartbeats. */
  MsgBeat: 1,
  /** Proposal of new entries (local, or forwarded by a follower to the leader). */
  MsgProp: 2,
  /** Append entries (leader -> follower). */
  MsgApp: 3,
  /** Append response (follower -> leader); `reject` with `rejectHint`/`logTerm` on mismatch. */
  MsgAppResp: 4,
  /** Vote request. */
  MsgVote: 5,
  /** Vote response. */
  MsgVoteResp: 6,
  /** Install snapshot (leader -> follower). */
  MsgSnap: 7,
  /** Leader heartbeat, carries commit and optional read-index context. */
  MsgHeartbeat: 8,
  /** Heartbeat response. */
  MsgHeartbeatResp: 9,
  /** Local: the transport could not reach `from`. */
  MsgUnreachable: 10,
  /** Local: result of sending a snapshot to `from` (`reject` = failure). */
  MsgSnapStatus: 11,
  /** Local: leader checks it heard from a quorum during the last election timeout. */
  MsgCheckQuorum: 12,
  /** Request to transfer leadership to `from`. */
  MsgTransferLeader: 13,
  /** Leader tells the transferee to campaign immediately. */
  MsgTimeoutNow: 14,
  /** Read-index request (local, or forwarded by a follower). */
  MsgReadIndex: 15,
  /** Read-index response (leader -> follower). */
  MsgReadIndexResp: 16,
  /** Pre-vote request (does not bump the term of the receiver). */
  MsgPreVote: 17,
  /** Pre-vote response. */
  MsgPreVoteResp: 18,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

const messageTypeNames: string[] = [];
for (const [name, value] of Object.entries(MessageType)) messageTypeNames[value] = name;

/** Human readable name of a message type (e.g. "MsgApp"). */
export function messageTypeName(t: number): string {
  return messageTypeNames[t] ?? `MsgUnknown(${t})`;
}

/** Highest valid message type value. */
export const MAX_MESSAGE_TYPE = MessageType.MsgPreVoteResp;

/**
 * A Raft message. All fields are always present (monomorphic objects); unused numeric fields
 * are 0, unused `context` is a zero-length array and unused `snapshot` is null.
 */
export interface Message {
  type: MessageType;
  to: number;
  from: number;
  term: number;
  /** MsgApp: term of the entry at `index`. Vote: last log term. Reject: hint term. */
  logTerm: number;
  /** MsgApp: index preceding `entries`. MsgAppResp: last (or rejected) index. */
  index: number;
  entries: Entry[];
  commit: number;
  snapshot: Snapshot | null;
  reject: boolean;
  /** On a rejected MsgAppResp: index of the probe hint (see `logTerm`). */
  rejectHint: number;
  context: Uint8Array;
}

/** Shared empty byte array (never mutated: zero length). */
export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/** Builds a message with defaults for every field not given. */
export function newMessage(fields: Partial<Message> & { type: MessageType }): Message {
  return {
    type: fields.type,
    to: fields.to ?? 0,
    from: fields.from ?? 0,
    term: fields.term ?? 0,
    logTerm: fields.logTerm ?? 0,
    index: fields.index ?? 0,
    entries: fields.entries ?? [],
    commit: fields.commit ?? 0,
    snapshot: fields.snapshot ?? null,
    reject: fields.reject ?? false,
    rejectHint: fields.rejectHint ?? 0,
    context: fields.context ?? EMPTY_BYTES,
  };
}

// ---------------------------------------------------------------------------------------------
// State

/** State that must be persisted (fsynced) before any message produced with it is sent. */
export interface HardState {
  term: number;
  vote: number;
  commit: number;
}

/** Role of a node. Values match etcd's `StateType`. */
export const StateType = {
  Follower: 0,
  Candidate: 1,
  Leader: 2,
  PreCandidate: 3,
} as const;
export type StateType = (typeof StateType)[keyof typeof StateType];

export function stateTypeName(s: StateType): string {
  return ["StateFollower", "StateCandidate", "StateLeader", "StatePreCandidate"][s] ??
    `State(${s})`;
}

/** Volatile state, useful for logging and for finding the leader. Never needs persisting. */
export interface SoftState {
  lead: number;
  raftState: StateType;
}

/** Membership: voters and learners (non-voting members that receive the log). */
export interface ConfState {
  voters: number[];
  learners: number[];
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

/** A state machine snapshot: application data plus the log position and membership it covers. */
export interface Snapshot {
  data: Uint8Array;
  metadata: SnapshotMetadata;
}

export function emptySnapshot(): Snapshot {
  return { data: EMPTY_BYTES, metadata: { index: 0, term: 0, confState: emptyConfState() } };
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [] };
}

export function isEmptySnap(s: Snapshot | null | undefined): boolean {
  return s == null || s.metadata.index === 0;
}

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === 0 && hs.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

// ---------------------------------------------------------------------------------------------
// Membership changes

/** Values match etcd's `ConfChangeType`. */
export const ConfChangeType = {
  /** Add a voter, or promote an existing learner to voter. */
  AddNode: 0,
  RemoveNode: 1,
  /** No membership effect (application-level metadata update, e.g. address change). */
  UpdateNode: 2,
  /** Add a learner, or demote an existing voter to learner. */
  AddLearnerNode: 3,
} as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

/** A single membership change, carried in an `EntryType.ConfChange` entry (see codec.ts). */
export interface ConfChange {
  type: ConfChangeType;
  nodeId: number;
  /** Opaque application data (e.g. the new member's address). */
  context: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Ready

/** Read-only request served: the application may answer the read once applied >= index. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

/**
 * A batch of work produced by the state machine. The application must, in this order:
 *  1. persist `snapshot` (if any), `entries` and `hardState` (if any) durably — fsync when
 *     `mustSync`;
 *  2. send `messages`;
 *  3. apply `snapshot` (if any) then `committedEntries` to the state machine (calling
 *     `RaftCore.applyConfChange` for conf-change entries to learn the membership to store
 *     with snapshots);
 *  4. call `RaftCore.advance()`.
 */
export interface Ready {
  /** Present when lead or role changed since the previous Ready. */
  softState?: SoftState;
  /** Present when term, vote or commit changed since the previous Ready. */
  hardState?: HardState;
  /** Reads confirmed since the previous Ready. */
  readStates: ReadState[];
  /** New log entries to append to stable storage (may overwrite a conflicting suffix). */
  entries: Entry[];
  /** Snapshot to persist (and apply) before the entries. */
  snapshot?: Snapshot;
  /** Committed entries to apply to the state machine (already persisted or in `entries`). */
  committedEntries: Entry[];
  /** Messages to send once the above is durable. */
  messages: Message[];
  /** Whether entries/hardState must be fsynced before sending messages. */
  mustSync: boolean;
}

// ---------------------------------------------------------------------------------------------
// Config

export const ReadOnlyOption = {
  /** Linearizable reads confirmed by a heartbeat round with a quorum (default). */
  Safe: 0,
  /** Reads served from the leader lease (requires checkQuorum; depends on bounded clock drift). */
  LeaseBased: 1,
} as const;
export type ReadOnlyOption = (typeof ReadOnlyOption)[keyof typeof ReadOnlyOption];

/** Minimal logging sink. All methods are optional to implement as no-ops. */
export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

export interface Config {
  /** This node's id: a positive safe integer. */
  id: number;
  /** Ticks without hearing from a leader before campaigning (randomized in [e, 2e)). */
  electionTick: number;
  /** Ticks between leader heartbeats. Must be < electionTick. */
  heartbeatTick: number;
  /** The log/state storage (see storage.ts). */
  storage: Storage;
  /** Randomness for election timeouts. */
  rand: Rand;
  /** Last applied index when restarting (entries <= applied are not returned again). */
  applied?: number;
  /** Max bytes of entries per MsgApp (at least one entry is always sent). Default 1 MiB. */
  maxSizePerMsg?: number;
  /** Max bytes of committed entries per Ready. Default maxSizePerMsg. */
  maxCommittedSizePerReady?: number;
  /** Max payload bytes of uncommitted entries on the leader before dropping proposals. */
  maxUncommittedEntriesSize?: number;
  /** Max appends in flight per follower in pipeline mode. Default 256. */
  maxInflightMsgs?: number;
  /** Leader steps down without quorum contact for an election timeout; enables vote lease. */
  checkQuorum?: boolean;
  /** Run a pre-vote round before incrementing the term. */
  preVote?: boolean;
  readOnlyOption?: ReadOnlyOption;
  /** Followers drop proposals instead of forwarding them to the leader. */
  disableProposalForwarding?: boolean;
  logger?: Logger;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** Base class of errors thrown by this package. */
export class RaftError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RaftError";
  }
}

/** A proposal (or conf change) was not accepted: no leader, transfer in progress, etc. */
export class ProposalDroppedError extends RaftError {
  constructor(reason = "raft proposal dropped") {
    super(reason);
    this.name = "ProposalDroppedError";
  }
}

/** `RaftCore.step` was given a local-only message type. */
export class StepLocalMessageError extends RaftError {
  constructor() {
    super("raft: cannot step raft local message");
    this.name = "StepLocalMessageError";
  }
}

/** Internal invariant violated (storage or driver broke the contract). The node must stop. */
export class RaftInvariantError extends RaftError {
  constructor(message: string) {
    super(message);
    this.name = "RaftInvariantError";
  }
}

// ---------------------------------------------------------------------------------------------
// Message classification

const LOCAL_MSGS = new Set<number>([
  MessageType.MsgHup,
  MessageType.MsgBeat,
  MessageType.MsgUnreachable,
  MessageType.MsgSnapStatus,
  MessageType.MsgCheckQuorum,
]);

const RESPONSE_MSGS = new Set<number>([
  MessageType.MsgAppResp,
  MessageType.MsgVoteResp,
  MessageType.MsgHeartbeatResp,
  MessageType.MsgUnreachable,
  MessageType.MsgReadIndexResp,
  MessageType.MsgPreVoteResp,
]);

/** Message types that only make sense locally and must never come from the network. */
export function isLocalMsg(t: MessageType): boolean {
  return LOCAL_MSGS.has(t);
}

export function isResponseMsg(t: MessageType): boolean {
  return RESPONSE_MSGS.has(t);
}

export function voteRespMsgType(t: MessageType): MessageType {
  if (t === MessageType.MsgVote) return MessageType.MsgVoteResp;
  if (t === MessageType.MsgPreVote) return MessageType.MsgPreVoteResp;
  throw new RaftInvariantError(`not a vote message: ${messageTypeName(t)}`);
}

/** True for a valid node id: a positive safe integer. */
export function isValidNodeId(id: number): boolean {
  return Number.isSafeInteger(id) && id > 0;
}

/** Payload bytes of entries (used for the uncommitted-size limit). */
export function payloadsSize(ents: readonly Entry[]): number {
  let s = 0;
  for (let i = 0; i < ents.length; i++) s += ents[i].data.length;
  return s;
}
