/**
 * The Raft consensus state machine, written from the Raft paper and Ongaro's dissertation
 * ("Consensus: Bridging Theory and Practice", 2014). One class, {@link RaftCore}, holds the
 * whole per-node protocol state. It is pure: inputs are `tick()`, `step(message)` and the
 * client calls (`propose`, `proposeConfChange`, `readIndex`, `transferLeader`); outputs are
 * collected into a {@link Ready} that the driver persists, sends and applies before calling
 * `advance()`. See README.md for the driver loop and the guarantees.
 *
 * @module
 */

import { decodeConfChange, encodeConfChange } from "./codec.ts";
import { LogView } from "./log.ts";
import {
  applyConfChange,
  checkConfChange,
  ConfChangeError,
  type Membership,
  membershipFromConfState,
  membershipToConfState,
} from "./membership.ts";
import { PeerProgress, type PeerStatus } from "./progress.ts";
import { LogCompactedError, SnapshotNotReadyError } from "./storage.ts";
import {
  type ConfChange,
  type Config,
  type ConfState,
  EMPTY_BYTES,
  type Entry,
  EntryType,
  type HardState,
  isLocalMsg,
  isValidNodeId,
  type Logger,
  type Message,
  MessageType,
  None,
  ProposalDroppedError,
  RaftError,
  RaftInvariantError,
  type Rand,
  ReadOnlyOption,
  type ReadState,
  type Ready,
  silentLogger,
  type Snapshot,
  type SoftState,
  StateType,
  StepLocalMessageError,
} from "./types.ts";

const MT = MessageType;

/** Context of vote requests sent on a leader's request (leadership transfer). */
export const TRANSFER_CONTEXT: Uint8Array = new TextEncoder().encode("transfer");

/** Invalid configuration given to {@link RaftCore}. */
export class ConfigError extends RaftError {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

type CampaignKind = "pre" | "vote" | "transfer";

interface PendingRead {
  ctx: Uint8Array;
  index: number;
  from: number;
  acks: Set<number>;
}

/** Snapshot of a node's state for monitoring and tests (see {@link RaftCore.status}). */
export interface RaftStatus {
  id: number;
  term: number;
  vote: number;
  state: StateType;
  lead: number;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  lastTerm: number;
  voters: number[];
  learners: number[];
  /** Index of the latest membership entry in the log (0 if none since the snapshot). */
  lastConfIndex: number;
  /** Whether the commit index covers an entry of the current term. */
  committedInTerm: boolean;
  /** Leader: target of an ongoing leadership transfer, else 0. */
  leadTransferee: number;
  /** Leader: read requests waiting for the first commit of the term. */
  readsAwaitingCommit: number;
  /** Leader: read requests waiting for a quorum of heartbeat acknowledgements. */
  readsAwaitingQuorum: number;
  /** Leader only: replication progress of every member (itself included). */
  progress?: Map<number, PeerStatus>;
}

interface ResolvedConfig {
  electionTick: number;
  heartbeatTick: number;
  maxSizePerMsg: number;
  maxCommittedSizePerReady: number;
  maxUncommittedEntriesSize: number;
  maxInflightMsgs: number;
  checkQuorum: boolean;
  preVote: boolean;
  readOnlyOption: ReadOnlyOption;
  disableProposalForwarding: boolean;
}

/** Validates a config and fills in defaults. */
export function resolveConfig(c: Config): ResolvedConfig {
  if (!isValidNodeId(c.id)) throw new ConfigError(`invalid node id ${c.id}`);
  if (!(c.heartbeatTick >= 1)) throw new ConfigError("heartbeatTick must be >= 1");
  if (!(c.electionTick > c.heartbeatTick)) {
    throw new ConfigError("electionTick must be greater than heartbeatTick");
  }
  const maxSizePerMsg = c.maxSizePerMsg ?? 1024 * 1024;
  const maxInflightMsgs = c.maxInflightMsgs ?? 256;
  if (!(maxInflightMsgs >= 1)) throw new ConfigError("maxInflightMsgs must be >= 1");
  if (c.readOnlyOption === ReadOnlyOption.LeaseBased && !c.checkQuorum) {
    throw new ConfigError("lease-based reads require checkQuorum");
  }
  return {
    electionTick: c.electionTick,
    heartbeatTick: c.heartbeatTick,
    maxSizePerMsg,
    maxCommittedSizePerReady: c.maxCommittedSizePerReady ?? maxSizePerMsg,
    maxUncommittedEntriesSize: c.maxUncommittedEntriesSize ?? 0,
    maxInflightMsgs,
    checkQuorum: c.checkQuorum ?? false,
    preVote: c.preVote ?? false,
    readOnlyOption: c.readOnlyOption ?? ReadOnlyOption.Safe,
    disableProposalForwarding: c.disableProposalForwarding ?? false,
  };
}

/**
 * One Raft node as a deterministic state machine. Not re-entrant; call it from one place.
 *
 * Client-facing calls throw {@link ProposalDroppedError} when a proposal cannot be accepted
 * (no known leader, leadership transfer in progress, a membership change already pending,
 * uncommitted-size limit). Nothing else is ever thrown for ordinary protocol situations;
 * {@link RaftInvariantError} means the storage or the driver broke the contract.
 */
export class RaftCore {
  readonly id: number;
  private readonly cfg: ResolvedConfig;
  private readonly rand: Rand;
  private readonly logger: Logger;
  private readonly log: LogView;

  private curTerm = 0;
  private curVote = None;
  private curState: StateType = StateType.Follower;
  private curLead = None;

  // Membership: the configuration in effect is the latest one in the log.
  private confBase: Membership;
  private confLog: { index: number; m: Membership }[] = [];
  private conf: Membership;
  /** Membership as of the application's applied index (for `applyConfChange`). */
  private appConf: Membership;

  private peers = new Map<number, PeerProgress>();
  private votes = new Map<number, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedTimeout = 0;
  private transferee = None;
  private transferElapsed = 0;
  private leaderStartIndex = 0;
  private uncommittedBytes = 0;

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private readQueue: PendingRead[] = [];
  private deferredReads: { from: number; ctx: Uint8Array }[] = [];
  private appendDirty = false;

  // Ready bookkeeping.
  private lastSoft: SoftState;
  private lastHard: HardState;
  private outstanding = false;
  private handedSnapshot: Snapshot | null = null;
  private applyHandedTo = 0;

  constructor(config: Config) {
    this.cfg = resolveConfig(config);
    this.id = config.id;
    this.rand = config.rand;
    this.logger = config.logger ?? silentLogger;
    const storage = config.storage;
    const init = storage.initialState();
    const hs = init.hardState;
    this.log = new LogView(storage, hs.commit, config.applied ?? 0);
    this.curTerm = hs.term;
    this.curVote = hs.vote;
    this.confBase = membershipFromConfState(init.confState);
    this.conf = this.confBase;
    // Replay the membership entries of the stored log.
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    for (let lo = first; lo <= last; lo += 4096) {
      const ents = storage.entries(lo, Math.min(last + 1, lo + 4096), Number.MAX_SAFE_INTEGER);
      this.noteConfEntries(ents);
    }
    this.appConf = this.membershipAt(this.log.applied);
    this.becomeFollower(this.curTerm, None);
    this.lastSoft = { lead: None, raftState: StateType.Follower };
    this.lastHard = { term: hs.term, vote: hs.vote, commit: this.log.committed };
    this.logger.info(`raft ${this.id}: started at term ${hs.term}, commit ${hs.commit}`);
  }

  // -------------------------------------------------------------------------------------------
  // Introspection (read-only; for monitoring, tools and tests).

  get term(): number {
    return this.curTerm;
  }
  get vote(): number {
    return this.curVote;
  }
  get state(): StateType {
    return this.curState;
  }
  /** The leader this node believes in (0 if none). */
  get lead(): number {
    return this.curLead;
  }
  get commitIndex(): number {
    return this.log.committed;
  }
  get appliedIndex(): number {
    return this.log.applied;
  }
  firstIndex(): number {
    return this.log.firstIndex();
  }
  lastIndex(): number {
    return this.log.lastIndex();
  }
  lastTerm(): number {
    return this.log.lastTerm();
  }
  /** Term of the entry at `index` in this node's log (durable or not), or undefined. */
  termAt(index: number): number | undefined {
    return this.log.termAt(index);
  }
  /** Current membership (the latest configuration in the log). */
  membership(): ConfState {
    return membershipToConfState(this.conf);
  }
  /** Every entry of the log from firstIndex() on (copies the array; meant for tests). */
  logEntriesForTesting(): Entry[] {
    const lo = this.log.firstIndex();
    const hi = this.log.lastIndex() + 1;
    return hi > lo ? this.log.entries(lo, hi, Number.MAX_SAFE_INTEGER) : [];
  }

  status(): RaftStatus {
    const st: RaftStatus = {
      id: this.id,
      term: this.curTerm,
      vote: this.curVote,
      state: this.curState,
      lead: this.curLead,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      ...this.membership(),
      lastConfIndex: this.lastConfIndex(),
      committedInTerm: this.committedInTerm(),
      leadTransferee: this.transferee,
      readsAwaitingCommit: this.deferredReads.length,
      readsAwaitingQuorum: this.readQueue.length,
    };
    if (this.curState === StateType.Leader) {
      const progress = new Map<number, PeerStatus>();
      const last = this.log.lastIndex();
      if (this.isMember(this.id)) {
        progress.set(this.id, {
          match: last,
          next: last + 1,
          mode: "pipeline",
          inflight: 0,
          paused: false,
          isLearner: this.conf.learners.has(this.id),
          recentActive: true,
        });
      }
      for (const [id, pr] of this.peers) {
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          mode: pr.mode,
          inflight: pr.inflight.length,
          paused: pr.paused(this.cfg.maxInflightMsgs),
          isLearner: pr.isLearner,
          recentActive: pr.recentActive,
        });
      }
      st.progress = progress;
    }
    return st;
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  /** Advances logical time by one tick (election and heartbeat timers). */
  tick(): void {
    if (this.curState === StateType.Leader) this.tickLeader();
    else this.tickElection();
  }

  /** Starts an election now (with a pre-vote round first if `preVote` is enabled). */
  campaign(): void {
    if (this.curState === StateType.Leader) return;
    this.startCampaign(this.cfg.preVote ? "pre" : "vote");
  }

  /** Proposes one normal entry. Throws ProposalDroppedError if it cannot be accepted. */
  propose(data: Uint8Array): void {
    this.proposeEntries([{ term: 0, index: 0, type: EntryType.Normal, data }]);
  }

  /** Proposes several normal entries at once (one message when forwarded). */
  proposeBatch(datas: readonly Uint8Array[]): void {
    const ents: Entry[] = new Array(datas.length);
    for (let i = 0; i < datas.length; i++) {
      ents[i] = { term: 0, index: 0, type: EntryType.Normal, data: datas[i] };
    }
    this.proposeEntries(ents);
  }

  /**
   * Proposes a single-server membership change (add or promote a voter, add or demote to a
   * learner, remove). Throws ConfChangeError for an invalid change and ProposalDroppedError
   * when another change is still uncommitted or the leader has not yet committed an entry
   * in its term.
   */
  proposeConfChange(cc: ConfChange): void {
    const reason = checkConfChange(this.conf, cc);
    if (reason !== null) throw new ConfChangeError(reason);
    this.proposeEntries([{
      term: 0,
      index: 0,
      type: EntryType.ConfChange,
      data: encodeConfChange(cc),
    }]);
  }

  /**
   * Requests a linearizable read. When confirmed, a {@link ReadState} with this `ctx` appears
   * in a Ready: the read may be served once the application applied up to its index. `ctx`
   * should be unique per request. Silently dropped when no leader is known (retry later).
   */
  readIndex(ctx: Uint8Array): void {
    if (this.curState === StateType.Leader) {
      this.handleReadRequest(this.id, ctx);
    } else if (this.curLead !== None) {
      const m = this.mk(MT.MsgReadIndex, this.curLead);
      m.term = 0;
      m.context = ctx;
      this.msgs.push(m);
    }
  }

  /** Asks the leader to hand leadership over to `to` (forwarded when called on a follower). */
  transferLeader(to: number): void {
    if (this.curState === StateType.Leader) {
      this.handleTransferRequest(to);
    } else if (this.curLead !== None) {
      const m = this.mk(MT.MsgTransferLeader, this.curLead);
      m.term = 0;
      m.from = to;
      this.msgs.push(m);
    }
  }

  /** The transport reports the outcome of sending a snapshot to `to`. */
  reportSnapshot(to: number, ok: boolean): void {
    if (this.curState !== StateType.Leader) return;
    const pr = this.peers.get(to);
    if (!pr || pr.mode !== "snapshot") return;
    pr.toProbe(ok ? pr.snapshotIndex + 1 : pr.match + 1);
    // Wait for the follower's answer (or the next heartbeat response) before probing.
    pr.probeSent = true;
  }

  /** The transport could not deliver to `to`: stop streaming to it optimistically. */
  reportUnreachable(to: number): void {
    if (this.curState !== StateType.Leader) return;
    const pr = this.peers.get(to);
    if (pr && pr.mode === "pipeline") pr.toProbe(pr.match + 1);
  }

  /**
   * Tells the node the application applied a membership-change entry; returns the membership
   * as of that entry (store it with snapshots taken at or after it). Membership changes take
   * effect inside Raft when appended to the log, so this call has no protocol effect.
   */
  applyConfChange(cc: ConfChange): ConfState {
    this.appConf = applyConfChange(this.appConf, cc);
    return membershipToConfState(this.appConf);
  }

  /** Processes a message received from another node. */
  step(m: Message): void {
    if (isLocalMsg(m.type)) throw new StepLocalMessageError();
    this.handle(m);
  }

  // -------------------------------------------------------------------------------------------
  // Ready / advance

  hasReady(): boolean {
    if (this.appendDirty) this.flushAppends();
    if (this.msgs.length > 0 || this.readStates.length > 0) return true;
    if (this.log.hasUnhandedEntries()) return true;
    if (this.log.pendingSnapshot !== null && this.log.pendingSnapshot !== this.handedSnapshot) {
      return true;
    }
    if (this.log.nextToApply() <= this.log.committed && !this.outstanding) return true;
    return this.softChanged() || this.hardChanged();
  }

  /**
   * Collects everything the driver must do now. Call `advance()` once it is done; a second
   * `ready()` before that throws.
   */
  ready(): Ready {
    if (this.outstanding) throw new RaftError("raft: ready() called again before advance()");
    if (this.appendDirty) this.flushAppends();
    this.outstanding = true;
    const rd: Ready = {
      readStates: this.readStates,
      entries: this.log.unhandedEntries(),
      committedEntries: [],
      messages: this.msgs,
      mustSync: false,
    };
    this.readStates = [];
    this.msgs = [];
    this.log.handedUpTo = this.log.lastIndex();
    if (this.softChanged()) {
      this.lastSoft = { lead: this.curLead, raftState: this.curState };
      rd.softState = { ...this.lastSoft };
    }
    if (this.hardChanged()) {
      const hs = { term: this.curTerm, vote: this.curVote, commit: this.log.committed };
      if (hs.term !== this.lastHard.term || hs.vote !== this.lastHard.vote) rd.mustSync = true;
      this.lastHard = hs;
      rd.hardState = { ...hs };
    }
    const snap = this.log.pendingSnapshot;
    if (snap !== null && snap !== this.handedSnapshot) {
      rd.snapshot = snap;
      this.handedSnapshot = snap;
      rd.mustSync = true;
    }
    if (rd.entries.length > 0) rd.mustSync = true;
    const lo = this.log.nextToApply();
    this.applyHandedTo = lo - 1;
    if (lo <= this.log.committed) {
      const ents = this.log.entries(lo, this.log.committed + 1, this.cfg.maxCommittedSizePerReady);
      rd.committedEntries = ents;
      this.applyHandedTo = ents[ents.length - 1].index;
      if (this.curState === StateType.Leader && this.cfg.maxUncommittedEntriesSize > 0) {
        for (const e of ents) {
          if (e.index > this.leaderStartIndex) this.uncommittedBytes -= e.data.length;
        }
        if (this.uncommittedBytes < 0) this.uncommittedBytes = 0;
      }
    }
    return rd;
  }

  /** The driver finished the last Ready (persisted, sent, applied). */
  advance(): void {
    if (!this.outstanding) return;
    this.outstanding = false;
    const snap = this.handedSnapshot;
    if (snap !== null) {
      if (this.log.pendingSnapshot === snap) {
        this.log.pendingSnapshot = null;
        if (snap.metadata.index > this.log.applied) this.log.applied = snap.metadata.index;
      }
      this.handedSnapshot = null;
    }
    this.log.persistedHanded();
    if (this.applyHandedTo > this.log.applied) this.log.applied = this.applyHandedTo;
  }

  private softChanged(): boolean {
    return this.lastSoft.lead !== this.curLead || this.lastSoft.raftState !== this.curState;
  }

  private hardChanged(): boolean {
    const h = this.lastHard;
    return h.term !== this.curTerm || h.vote !== this.curVote || h.commit !== this.log.committed;
  }

  // -------------------------------------------------------------------------------------------
  // Membership bookkeeping

  private lastConfIndex(): number {
    const n = this.confLog.length;
    return n > 0 ? this.confLog[n - 1].index : 0;
  }

  private membershipAt(index: number): Membership {
    for (let i = this.confLog.length - 1; i >= 0; i--) {
      if (this.confLog[i].index <= index) return this.confLog[i].m;
    }
    return this.confBase;
  }

  private isMember(id: number): boolean {
    return this.conf.voters.has(id) || this.conf.learners.has(id);
  }

  private promotable(): boolean {
    return this.conf.voters.has(this.id);
  }

  /** Records membership entries appended to the log; returns whether the config changed. */
  private noteConfEntries(ents: readonly Entry[]): boolean {
    let changed = false;
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i];
      if (e.type !== EntryType.ConfChange) continue;
      const m = applyConfChange(this.conf, decodeConfChange(e.data));
      this.confLog.push({ index: e.index, m });
      this.conf = m;
      changed = true;
    }
    return changed;
  }

  /** Forgets membership entries at or after `from` (the log is being truncated there). */
  private truncateConf(from: number): boolean {
    let changed = false;
    while (this.confLog.length > 0 && this.confLog[this.confLog.length - 1].index >= from) {
      this.confLog.pop();
      changed = true;
    }
    if (changed) this.conf = this.membershipAt(Number.MAX_SAFE_INTEGER);
    return changed;
  }

  /** The configuration changed: adjust the leader's peer set and quorum. */
  private onConfChanged(): void {
    if (this.curState !== StateType.Leader) return;
    const last = this.log.lastIndex();
    for (const id of [...this.conf.voters, ...this.conf.learners]) {
      if (id === this.id) continue;
      const learner = this.conf.learners.has(id);
      const pr = this.peers.get(id);
      if (pr) {
        pr.isLearner = learner;
      } else {
        const np = new PeerProgress(last + 1, learner);
        np.recentActive = true;
        this.peers.set(id, np);
      }
    }
    for (const id of [...this.peers.keys()]) {
      if (!this.isMember(id)) this.peers.delete(id);
    }
    if (this.transferee !== None && !this.conf.voters.has(this.transferee)) {
      this.transferee = None;
    }
    this.appendDirty = true;
    this.maybeCommit();
  }

  // -------------------------------------------------------------------------------------------
  // Role changes

  private resetTerm(term: number): void {
    if (term !== this.curTerm) {
      this.curTerm = term;
      this.curVote = None;
    }
    this.curLead = None;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedTimeout = this.cfg.electionTick + this.rand.nextInt(this.cfg.electionTick);
    this.transferee = None;
    this.transferElapsed = 0;
    this.votes.clear();
    this.peers.clear();
    this.readQueue = [];
    this.deferredReads = [];
  }

  private becomeFollower(term: number, lead: number): void {
    this.resetTerm(term);
    this.curState = StateType.Follower;
    this.curLead = lead;
  }

  private becomePreCandidate(): void {
    // Term and vote stay: a pre-vote round changes nothing durable.
    this.resetTerm(this.curTerm);
    this.curState = StateType.PreCandidate;
  }

  private becomeCandidate(): void {
    this.resetTerm(this.curTerm + 1);
    this.curVote = this.id;
    this.curState = StateType.Candidate;
  }

  private becomeLeader(): void {
    this.resetTerm(this.curTerm);
    this.curState = StateType.Leader;
    this.curLead = this.id;
    const last = this.log.lastIndex();
    for (const id of [...this.conf.voters, ...this.conf.learners]) {
      if (id !== this.id) {
        this.peers.set(id, new PeerProgress(last + 1, this.conf.learners.has(id)));
      }
    }
    // A no-op entry of the new term: committing it commits everything before it and tells
    // the leader which entries are committed (dissertation 3.6.2 / 6.4).
    this.leaderStartIndex = last + 1;
    this.uncommittedBytes = 0;
    this.log.appendLocal({
      term: this.curTerm,
      index: last + 1,
      type: EntryType.Normal,
      data: EMPTY_BYTES,
    });
    this.appendDirty = true;
    this.logger.info(`raft ${this.id}: became leader at term ${this.curTerm}`);
    this.maybeCommit();
  }

  private startCampaign(kind: CampaignKind): void {
    if (!this.promotable()) return;
    let voteTerm: number;
    let type: MessageType;
    if (kind === "pre") {
      this.becomePreCandidate();
      voteTerm = this.curTerm + 1;
      type = MT.MsgPreVote;
    } else {
      this.becomeCandidate();
      voteTerm = this.curTerm;
      type = MT.MsgVote;
    }
    this.votes.set(this.id, true);
    const result = this.tallyVotes();
    if (result === "won") {
      if (kind === "pre") this.startCampaign("vote");
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const v of this.conf.voters) {
      if (v === this.id) continue;
      const m = this.mk(type, v);
      m.term = voteTerm;
      m.index = lastIndex;
      m.logTerm = lastTerm;
      if (kind === "transfer") m.context = TRANSFER_CONTEXT;
      this.msgs.push(m);
    }
  }

  private tallyVotes(): "won" | "lost" | "pending" {
    let granted = 0;
    let rejected = 0;
    for (const v of this.conf.voters) {
      const g = this.votes.get(v);
      if (g === true) granted++;
      else if (g === false) rejected++;
    }
    const n = this.conf.voters.size;
    const q = (n >> 1) + 1;
    if (granted >= q) return "won";
    if (rejected > n - q) return "lost";
    return "pending";
  }

  // -------------------------------------------------------------------------------------------
  // Timers

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedTimeout) {
      this.electionElapsed = 0;
      this.startCampaign(this.cfg.preVote ? "pre" : "vote");
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTick) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.quorumActive()) {
        this.logger.warn(`raft ${this.id}: no quorum heard within an election timeout`);
        this.becomeFollower(this.curTerm, None);
        return;
      }
      for (const pr of this.peers.values()) pr.recentActive = false;
    }
    if (this.transferee !== None && ++this.transferElapsed >= this.cfg.electionTick) {
      this.transferee = None; // abort: the target did not take over in time
    }
    for (const [id, pr] of this.peers) {
      if (pr.mode === "pipeline" && pr.inflight.length > 0) {
        if (++pr.stalledTicks >= this.cfg.electionTick) {
          pr.toProbe(pr.match + 1); // appends were probably lost
          this.sendAppends(id, false);
        }
      }
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat(EMPTY_BYTES);
    }
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const v of this.conf.voters) {
      if (v === this.id || this.peers.get(v)?.recentActive) active++;
    }
    return active >= (this.conf.voters.size >> 1) + 1;
  }

  // -------------------------------------------------------------------------------------------
  // Message dispatch

  private mk(type: MessageType, to: number): Message {
    return {
      type,
      to,
      from: this.id,
      term: this.curTerm,
      logTerm: 0,
      index: 0,
      entries: [],
      commit: 0,
      snapshot: null,
      reject: false,
      rejectHint: 0,
      context: EMPTY_BYTES,
    };
  }

  private handle(m: Message): void {
    if (m.term > this.curTerm) {
      if (m.type === MT.MsgVote || m.type === MT.MsgPreVote) {
        const forced = bytesEqual(m.context, TRANSFER_CONTEXT);
        const inLease = this.cfg.checkQuorum && this.curLead !== None &&
          this.electionElapsed < this.cfg.electionTick;
        // Dissertation 4.2.3: a server that heard from a leader within the minimum election
        // timeout neither updates its term nor grants its vote.
        if (inLease && !forced) return;
      }
      if (m.type === MT.MsgPreVote || (m.type === MT.MsgPreVoteResp && !m.reject)) {
        // A pre-vote (and its grant) carries the term the candidate would use; no change.
      } else {
        const fromLeader = m.type === MT.MsgApp || m.type === MT.MsgHeartbeat ||
          m.type === MT.MsgSnap;
        this.becomeFollower(m.term, fromLeader ? m.from : None);
      }
    } else if (m.term < this.curTerm && m.term !== 0) {
      // Stale sender: tell it the current term so it steps down.
      if (m.type === MT.MsgApp || m.type === MT.MsgHeartbeat || m.type === MT.MsgSnap) {
        this.msgs.push(this.mk(MT.MsgHeartbeatResp, m.from));
      } else if (m.type === MT.MsgPreVote || m.type === MT.MsgVote) {
        const r = this.mk(m.type === MT.MsgVote ? MT.MsgVoteResp : MT.MsgPreVoteResp, m.from);
        r.reject = true;
        this.msgs.push(r);
      }
      return;
    }

    if (m.type === MT.MsgVote || m.type === MT.MsgPreVote) {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.curState) {
      case StateType.Leader:
        this.stepLeader(m);
        break;
      case StateType.Candidate:
      case StateType.PreCandidate:
        this.stepCandidate(m);
        break;
      default:
        this.stepFollower(m);
    }
  }

  private handleVoteRequest(m: Message): void {
    const logOk = this.log.isUpToDate(m.index, m.logTerm);
    let grant: boolean;
    if (m.type === MT.MsgPreVote) {
      // Dissertation 9.6: grant a pre-vote only to a candidate with an up-to-date log and
      // only if no leader was heard from within the minimum election timeout.
      const heardLeader = this.curLead !== None && this.electionElapsed < this.cfg.electionTick;
      grant = m.term > this.curTerm && logOk && !heardLeader;
    } else {
      const free = this.curVote === m.from ||
        (this.curVote === None && this.curLead === None);
      grant = free && logOk;
      if (grant) {
        this.curVote = m.from;
        this.electionElapsed = 0;
      }
    }
    const r = this.mk(m.type === MT.MsgVote ? MT.MsgVoteResp : MT.MsgPreVoteResp, m.from);
    r.term = grant ? m.term : this.curTerm;
    r.reject = !grant;
    this.msgs.push(r);
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MT.MsgApp:
        this.electionElapsed = 0;
        this.curLead = m.from;
        this.handleAppend(m);
        break;
      case MT.MsgHeartbeat:
        this.electionElapsed = 0;
        this.curLead = m.from;
        this.handleHeartbeat(m);
        break;
      case MT.MsgSnap:
        this.electionElapsed = 0;
        this.curLead = m.from;
        this.handleSnapshot(m);
        break;
      case MT.MsgTimeoutNow:
        // The leader hands over: campaign at once, bypassing pre-vote and leases.
        this.startCampaign("transfer");
        break;
      case MT.MsgReadIndexResp:
        this.readStates.push({ index: m.index, requestCtx: m.context });
        break;
      default:
        // Proposals, reads and transfer requests forwarded to a non-leader are dropped;
        // the originator retries.
        break;
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case MT.MsgApp:
      case MT.MsgHeartbeat:
      case MT.MsgSnap:
        // A leader exists in this term.
        this.becomeFollower(this.curTerm, m.from);
        this.stepFollower(m);
        break;
      case MT.MsgVoteResp:
      case MT.MsgPreVoteResp: {
        const expected = this.curState === StateType.PreCandidate
          ? MT.MsgPreVoteResp
          : MT.MsgVoteResp;
        if (m.type !== expected) return;
        if (this.conf.voters.has(m.from) && !this.votes.has(m.from)) {
          this.votes.set(m.from, !m.reject);
        }
        const result = this.tallyVotes();
        if (result === "won") {
          if (this.curState === StateType.PreCandidate) this.startCampaign("vote");
          else this.becomeLeader();
        } else if (result === "lost") {
          this.becomeFollower(this.curTerm, None);
        }
        break;
      }
      case MT.MsgReadIndexResp:
        this.readStates.push({ index: m.index, requestCtx: m.context });
        break;
      default:
        break;
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MT.MsgAppResp:
        this.handleAppendResponse(m);
        break;
      case MT.MsgHeartbeatResp:
        this.handleHeartbeatResponse(m);
        break;
      case MT.MsgProp:
        try {
          this.leaderAppend(m.entries, false);
        } catch (e) {
          if (!(e instanceof ProposalDroppedError) && !(e instanceof ConfChangeError)) throw e;
        }
        break;
      case MT.MsgReadIndex:
        this.handleReadRequest(m.from, m.context);
        break;
      case MT.MsgTransferLeader:
        this.handleTransferRequest(m.from);
        break;
      default:
        break;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Proposals

  private proposeEntries(ents: Entry[]): void {
    if (this.curState === StateType.Leader) {
      this.leaderAppend(ents, true);
      return;
    }
    if (this.curLead === None) throw new ProposalDroppedError("raft: no leader");
    if (this.cfg.disableProposalForwarding) {
      throw new ProposalDroppedError("raft: proposal forwarding is disabled");
    }
    const m = this.mk(MT.MsgProp, this.curLead);
    m.term = 0;
    m.entries = ents;
    this.msgs.push(m);
  }

  /** Appends proposals to the leader's log (re-stamping term and index). */
  private leaderAppend(ents: readonly Entry[], local: boolean): void {
    if (this.transferee !== None) {
      throw new ProposalDroppedError("raft: leadership transfer in progress");
    }
    let size = 0;
    let confChanges = 0;
    for (let i = 0; i < ents.length; i++) {
      size += ents[i].data.length;
      if (ents[i].type === EntryType.ConfChange) confChanges++;
    }
    const limit = this.cfg.maxUncommittedEntriesSize;
    if (limit > 0 && this.uncommittedBytes > 0 && this.uncommittedBytes + size > limit) {
      throw new ProposalDroppedError("raft: too many uncommitted bytes");
    }
    if (confChanges > 0) {
      // Dissertation 4.1: one change at a time, and only once the leader has committed an
      // entry in its current term.
      if (confChanges > 1) throw new ProposalDroppedError("raft: one membership change at a time");
      if (!this.committedInTerm()) {
        throw new ProposalDroppedError("raft: leader has not committed an entry in its term");
      }
      if (this.log.committed < this.lastConfIndex()) {
        throw new ProposalDroppedError("raft: a membership change is still pending");
      }
      if (!local) {
        for (const e of ents) {
          if (e.type !== EntryType.ConfChange) continue;
          const reason = checkConfChange(this.conf, decodeConfChange(e.data));
          if (reason !== null) throw new ConfChangeError(reason);
        }
      }
    }
    let index = this.log.lastIndex();
    const term = this.curTerm;
    const appended: Entry[] | null = confChanges > 0 ? [] : null;
    for (let i = 0; i < ents.length; i++) {
      const src = ents[i];
      const e: Entry = { term, index: ++index, type: src.type, data: src.data };
      this.log.appendLocal(e);
      if (appended) appended.push(e);
    }
    this.uncommittedBytes += size;
    this.appendDirty = true;
    if (appended && this.noteConfEntries(appended)) this.onConfChanged();
    else if (this.conf.voters.size === 1) this.maybeCommit();
  }

  private committedInTerm(): boolean {
    return this.log.termAt(this.log.committed) === this.curTerm;
  }

  // -------------------------------------------------------------------------------------------
  // Replication (leader side)

  private flushAppends(): void {
    this.appendDirty = false;
    if (this.curState !== StateType.Leader) return;
    for (const id of this.peers.keys()) this.sendAppends(id, false);
  }

  /** Sends as many appends to `to` as flow control allows (an empty one if `allowEmpty`). */
  private sendAppends(to: number, allowEmpty: boolean): void {
    const pr = this.peers.get(to);
    if (!pr) return;
    let sent = this.sendOneAppend(to, pr, allowEmpty);
    while (sent && pr.mode === "pipeline" && pr.next <= this.log.lastIndex()) {
      sent = this.sendOneAppend(to, pr, false);
    }
  }

  /** Returns whether an append carrying entries was sent. */
  private sendOneAppend(to: number, pr: PeerProgress, allowEmpty: boolean): boolean {
    if (pr.paused(this.cfg.maxInflightMsgs)) return false;
    const last = this.log.lastIndex();
    // Nothing new to send. A probe still goes out while the match point is unknown.
    if (pr.next > last && !allowEmpty && (pr.mode !== "probe" || pr.match >= pr.next - 1)) {
      return false;
    }
    const prev = pr.next - 1;
    const prevTerm = this.log.termAt(prev);
    if (prevTerm === undefined) {
      this.sendSnapshot(to, pr);
      return false;
    }
    let ents: Entry[] = [];
    if (pr.next <= last) {
      try {
        ents = this.log.entries(pr.next, last + 1, this.cfg.maxSizePerMsg);
      } catch (e) {
        if (e instanceof LogCompactedError) {
          this.sendSnapshot(to, pr);
          return false;
        }
        throw e;
      }
    }
    const m = this.mk(MT.MsgApp, to);
    m.index = prev;
    m.logTerm = prevTerm;
    m.entries = ents;
    m.commit = this.log.committed;
    this.msgs.push(m);
    if (ents.length === 0) {
      if (pr.mode === "probe") pr.probeSent = true;
      return false;
    }
    const lastSent = ents[ents.length - 1].index;
    if (pr.mode === "pipeline") {
      pr.next = lastSent + 1;
      pr.inflight.push(lastSent);
    } else {
      pr.probeSent = true;
    }
    return true;
  }

  private sendSnapshot(to: number, pr: PeerProgress): void {
    let snap: Snapshot;
    try {
      snap = this.log.storage.snapshot();
    } catch (e) {
      if (e instanceof SnapshotNotReadyError) return; // retry on a later heartbeat response
      throw e;
    }
    if (snap.metadata.index === 0) {
      throw new RaftInvariantError("raft: entries are compacted but there is no snapshot");
    }
    pr.toSnapshot(snap.metadata.index);
    const m = this.mk(MT.MsgSnap, to);
    m.snapshot = snap;
    this.msgs.push(m);
  }

  private broadcastHeartbeat(ctx: Uint8Array): void {
    for (const [id, pr] of this.peers) {
      const m = this.mk(MT.MsgHeartbeat, id);
      m.commit = Math.min(pr.match, this.log.committed);
      m.context = ctx;
      this.msgs.push(m);
    }
  }

  private maybeCommit(): boolean {
    const voters = this.conf.voters;
    const n = voters.size;
    if (n === 0) return false;
    const matches: number[] = [];
    for (const v of voters) {
      matches.push(v === this.id ? this.log.lastIndex() : (this.peers.get(v)?.match ?? 0));
    }
    matches.sort((a, b) => b - a);
    const q = matches[n >> 1];
    // Figure 8: only entries of the current term are committed by counting replicas.
    if (q <= this.log.committed || this.log.termAt(q) !== this.curTerm) return false;
    this.log.committed = q;
    this.afterLeaderCommit();
    return true;
  }

  private afterLeaderCommit(): void {
    if (this.deferredReads.length > 0 && this.committedInTerm()) {
      const reads = this.deferredReads;
      this.deferredReads = [];
      for (const r of reads) this.handleReadRequest(r.from, r.ctx);
    }
    // Tell followers about the new commit index.
    for (const id of this.peers.keys()) this.sendAppends(id, true);
    if (!this.conf.voters.has(this.id) && this.log.committed >= this.lastConfIndex()) {
      // Dissertation 4.2.2: a leader not in the new configuration steps down once that
      // configuration is committed.
      this.logger.info(`raft ${this.id}: stepping down, no longer a voter`);
      this.becomeFollower(this.curTerm, None);
    }
  }

  private handleAppendResponse(m: Message): void {
    const pr = this.peers.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.reject) {
      const stale = pr.mode === "pipeline"
        ? m.index <= pr.match
        : pr.mode === "probe"
        ? m.index !== pr.next - 1
        : true;
      if (stale) return;
      pr.toProbe(this.backoff(m));
      this.sendAppends(m.from, false);
      return;
    }
    const advanced = pr.acknowledge(m.index);
    if (pr.mode === "probe") {
      if (advanced || m.index >= pr.next - 1) pr.toPipeline();
    } else if (pr.mode === "snapshot") {
      if (pr.match >= pr.snapshotIndex) pr.toPipeline();
    }
    if (advanced) {
      this.maybeCommit();
      if (this.curState !== StateType.Leader) return;
      if (m.from === this.transferee && pr.match === this.log.lastIndex()) {
        this.msgs.push(this.mk(MT.MsgTimeoutNow, m.from));
      }
    }
    this.sendAppends(m.from, false);
  }

  /**
   * Next index to probe after a rejection. The follower reported the term T of its entry at
   * c = min(rejected index, its last index) and the first index h of its run of T entries
   * ending at c. Entries of the leader with term T in [h, c] match (same index and term);
   * if there is none, nothing in [h, c] matches and the probe goes to h - 1.
   */
  private backoff(m: Message): number {
    const c = Math.min(m.index, m.commit);
    const t = m.logTerm;
    const h = m.rejectHint;
    let j = c;
    while (j >= h) {
      const lt = this.log.termAt(j);
      if (lt === undefined || lt <= t) break;
      j--;
    }
    const p = j >= h && this.log.termAt(j) === t ? j : h - 1;
    return Math.min(p, m.index - 1) + 1;
  }

  private handleHeartbeatResponse(m: Message): void {
    const pr = this.peers.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (pr.mode === "probe") {
      pr.probeSent = false;
    } else if (
      pr.mode === "pipeline" && pr.inflight.length > 0 && m.index < pr.next - 1 &&
      pr.stalledTicks > this.cfg.heartbeatTick
    ) {
      // No acknowledgement for a while and the follower lacks what we streamed: the
      // appends were lost. Fall back to probing from the known match.
      pr.toProbe(pr.match + 1);
    }
    if (pr.match < this.log.lastIndex()) this.sendAppends(m.from, false);
    if (m.context.length > 0) this.ackRead(m.from, m.context);
  }

  // -------------------------------------------------------------------------------------------
  // Replication (follower side)

  private respondAppend(to: number, index: number): void {
    const r = this.mk(MT.MsgAppResp, to);
    r.index = index;
    this.msgs.push(r);
  }

  private handleAppend(m: Message): void {
    const committed = this.log.committed;
    if (m.index < committed) {
      this.respondAppend(m.from, committed);
      return;
    }
    if (this.log.termAt(m.index) === m.logTerm) {
      const ents = m.entries;
      const lastNew = m.index + ents.length;
      let k = 0;
      while (k < ents.length && this.log.termAt(ents[k].index) === ents[k].term) k++;
      if (k < ents.length) {
        const fresh = k === 0 ? ents : ents.slice(k);
        const from = fresh[0].index;
        let changed = false;
        if (from <= this.log.lastIndex()) changed = this.truncateConf(from);
        this.log.appendReplacing(fresh);
        if (this.noteConfEntries(fresh)) changed = true;
        if (changed) this.onConfChanged();
      }
      const c = Math.min(m.commit, lastNew);
      if (c > this.log.committed) this.log.committed = c;
      this.respondAppend(m.from, lastNew);
      return;
    }
    // Mismatch: report the conflicting term and where its run starts (fast back-off).
    const last = this.log.lastIndex();
    const c = Math.min(m.index, last);
    const t = this.log.termAt(c) ?? 0;
    let h = c;
    while (h - 1 > committed && this.log.termAt(h - 1) === t) h--;
    const r = this.mk(MT.MsgAppResp, m.from);
    r.reject = true;
    r.index = m.index;
    r.rejectHint = h;
    r.logTerm = t;
    r.commit = last;
    this.msgs.push(r);
  }

  private handleHeartbeat(m: Message): void {
    const c = Math.min(m.commit, this.log.lastIndex());
    if (c > this.log.committed) this.log.committed = c;
    const r = this.mk(MT.MsgHeartbeatResp, m.from);
    r.index = this.log.lastIndex();
    r.context = m.context;
    this.msgs.push(r);
  }

  private handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (!snap) return;
    const idx = snap.metadata.index;
    if (idx <= this.log.committed) {
      this.respondAppend(m.from, this.log.committed);
      return;
    }
    if (this.log.termAt(idx) === snap.metadata.term) {
      // We already have the entry: the snapshot only tells us it is committed.
      this.log.committed = idx;
      this.respondAppend(m.from, idx);
      return;
    }
    this.logger.info(`raft ${this.id}: restoring snapshot at ${idx} (term ${snap.metadata.term})`);
    this.log.restore(snap);
    this.confBase = membershipFromConfState(snap.metadata.confState);
    this.confLog = [];
    this.conf = this.confBase;
    this.appConf = this.confBase;
    this.respondAppend(m.from, idx);
  }

  // -------------------------------------------------------------------------------------------
  // ReadIndex (dissertation 6.4)

  private handleReadRequest(from: number, ctx: Uint8Array): void {
    if (!this.committedInTerm()) {
      // The leader does not yet know the full commit index: wait for its no-op to commit.
      this.deferredReads.push({ from, ctx });
      return;
    }
    const index = this.log.committed;
    if (this.cfg.readOnlyOption === ReadOnlyOption.LeaseBased) {
      this.answerRead(from, ctx, index);
      return;
    }
    const read: PendingRead = { ctx, index, from, acks: new Set() };
    if (this.conf.voters.has(this.id)) read.acks.add(this.id);
    this.readQueue.push(read);
    if (this.hasQuorum(read.acks)) {
      this.releaseReads(this.readQueue.length - 1);
      return;
    }
    this.broadcastHeartbeat(ctx);
  }

  private hasQuorum(acks: Set<number>): boolean {
    let n = 0;
    for (const v of this.conf.voters) if (acks.has(v)) n++;
    return n >= (this.conf.voters.size >> 1) + 1;
  }

  private ackRead(from: number, ctx: Uint8Array): void {
    for (let i = 0; i < this.readQueue.length; i++) {
      const r = this.readQueue[i];
      if (!bytesEqual(r.ctx, ctx)) continue;
      r.acks.add(from);
      // Confirming a later read also confirms every earlier one.
      if (this.hasQuorum(r.acks)) this.releaseReads(i);
      return;
    }
  }

  private releaseReads(upTo: number): void {
    const done = this.readQueue.splice(0, upTo + 1);
    for (const r of done) this.answerRead(r.from, r.ctx, r.index);
  }

  private answerRead(from: number, ctx: Uint8Array, index: number): void {
    if (from === this.id) {
      this.readStates.push({ index, requestCtx: ctx });
    } else {
      const m = this.mk(MT.MsgReadIndexResp, from);
      m.term = 0;
      m.index = index;
      m.context = ctx;
      this.msgs.push(m);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Leadership transfer (dissertation 3.10)

  private handleTransferRequest(target: number): void {
    if (target === this.id || !this.conf.voters.has(target)) return;
    if (this.transferee === target) return;
    const pr = this.peers.get(target);
    if (!pr) return;
    this.transferee = target;
    this.transferElapsed = 0;
    if (pr.match === this.log.lastIndex()) {
      this.msgs.push(this.mk(MT.MsgTimeoutNow, target));
      return;
    }
    // Bring the target up to date first, restarting from what it acknowledged.
    if (pr.mode !== "snapshot") pr.toProbe(pr.match + 1);
    this.sendAppends(target, false);
  }
}
