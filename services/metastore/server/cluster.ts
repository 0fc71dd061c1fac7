/**
 * `MetaCluster`: one metastore member. Wires the {@link MetaStateMachine} to a `RaftNode` over a
 * persistence (durable in production) and a transport (HTTP between members), expires leases
 * when leading, and turns Raft failures into etcd errors.
 *
 * Writes go through the log from any member (followers forward proposals to the leader) and
 * resolve with the result applied on this member; linearizable reads wait for a ReadIndex
 * barrier; serializable reads read the local store directly.
 *
 * @module
 */

import {
  ConfChangeType,
  NodeBusyError,
  NodeStoppedError,
  ProposalDroppedError,
  RaftNode,
  type RaftPersistence,
  RaftTimeoutError,
  type RaftTransport,
  type Rand,
  type Ticker,
} from "@deno-stores/shared/raft";
import { ConfChangeError } from "@deno-stores/shared/raft";
import { EtcdError, GrpcCode } from "../mvcc/types.ts";
import {
  type Command,
  type CommandResult,
  encodeCommand,
  type MemberInfo,
  MetaStateMachine,
  type MetaStateMachineOptions,
} from "./state_machine.ts";
import { WatchHub } from "./watch.ts";

/** Options of {@link MetaCluster}. */
export interface MetaClusterOptions {
  memberId: number;
  /** Decimal cluster id shown in response headers. */
  clusterId: string;
  persistence: RaftPersistence;
  transport: RaftTransport;
  rand: Rand;
  /** Members of a new cluster (names and URLs for the bootstrap entries). */
  members?: MemberInfo[];
  tickMs?: number;
  electionTick?: number;
  snapshotEntries?: number;
  requestTimeoutMs?: number;
  /** How often the leader looks for expired leases (default 500 ms). */
  leaseCheckMs?: number;
  quotaBytes?: number;
  /** Interval of watch progress notifications (default 10 minutes, as etcd). */
  progressNotifyMs?: number;
  /**
   * This member's name and client URLs, published through the log once it runs (so that every
   * member lists them), unless the member list already has them.
   */
  publish?: { name: string; clientURLs: string[] };
  /** Revisions of history kept by automatic compaction (0 = off, the default, as etcd). */
  autoCompactionRetention?: number;
  /** How often the leader compacts automatically (default 5 minutes, as etcd). */
  autoCompactionIntervalMs?: number;
  ticker?: Ticker;
  now?: () => number;
  onFatal?: (e: unknown) => void;
}

const etcdTimeout = () => new EtcdError(GrpcCode.Unavailable, "etcdserver: request timed out");

/** Maps Raft driver failures to the errors etcd gives in the same situations. */
export function raftErrorToEtcd(e: unknown): unknown {
  if (e instanceof EtcdError) return e;
  if (e instanceof RaftTimeoutError) return etcdTimeout();
  if (e instanceof ProposalDroppedError) {
    if (/no leader/.test(e.message)) {
      return new EtcdError(GrpcCode.Unavailable, "etcdserver: no leader");
    }
    if (/transfer/.test(e.message)) {
      return new EtcdError(GrpcCode.Unavailable, "etcdserver: leader changed");
    }
    if (/membership change|committed an entry/.test(e.message)) {
      return new EtcdError(GrpcCode.FailedPrecondition, "etcdserver: unhealthy cluster");
    }
    return new EtcdError(GrpcCode.Unavailable, `etcdserver: ${e.message}`);
  }
  if (e instanceof NodeBusyError) {
    return new EtcdError(GrpcCode.ResourceExhausted, "etcdserver: too many requests");
  }
  if (e instanceof NodeStoppedError) {
    return new EtcdError(GrpcCode.Unavailable, "etcdserver: server stopped");
  }
  if (e instanceof ConfChangeError) {
    return new EtcdError(GrpcCode.FailedPrecondition, `etcdserver: ${e.message}`);
  }
  return e;
}

export class MetaCluster {
  readonly memberId: number;
  readonly clusterId: string;
  readonly sm: MetaStateMachine;
  readonly node: RaftNode<CommandResult>;
  readonly watches: WatchHub;
  readonly transport: RaftTransport;
  readonly #persistence: RaftPersistence;
  readonly #timeoutMs: number;
  readonly #revoking = new Set<string>();
  #leaseTimer: ReturnType<typeof setInterval> | undefined;
  readonly #leaseCheckMs: number;
  readonly #progressNotifyMs: number;
  readonly #retention: number;
  readonly #compactionMs: number;
  #compactionTimer: ReturnType<typeof setInterval> | undefined;
  readonly #publish: { name: string; clientURLs: string[] } | undefined;
  #closed = false;

  constructor(o: MetaClusterOptions) {
    this.memberId = o.memberId;
    this.clusterId = o.clusterId;
    this.transport = o.transport;
    this.#persistence = o.persistence;
    this.#timeoutMs = o.requestTimeoutMs ?? 5000;
    this.#leaseCheckMs = o.leaseCheckMs ?? 500;
    const smOptions: MetaStateMachineOptions = {
      members: o.members,
      quotaBytes: o.quotaBytes,
      now: o.now,
      onMembersChanged: (members, cc) => {
        if (cc.type === ConfChangeType.RemoveNode) {
          this.transport.removePeer(cc.nodeId);
          return;
        }
        const m = members.find((x) => x.id === cc.nodeId);
        if (m && m.peerURLs[0]) this.transport.addPeer(m.id, m.peerURLs[0]);
      },
    };
    this.sm = new MetaStateMachine(smOptions);
    this.watches = new WatchHub(this.sm.store);
    this.#progressNotifyMs = o.progressNotifyMs ?? 600_000;
    this.#retention = o.autoCompactionRetention ?? 0;
    this.#publish = o.publish;
    this.#compactionMs = o.autoCompactionIntervalMs ?? 300_000;
    for (const m of o.members ?? []) {
      if (m.id !== o.memberId && m.peerURLs[0]) o.transport.addPeer(m.id, m.peerURLs[0]);
    }
    this.node = new RaftNode<CommandResult>({
      id: o.memberId,
      persistence: o.persistence,
      transport: o.transport,
      stateMachine: this.sm,
      rand: o.rand,
      tickMs: o.tickMs,
      electionTick: o.electionTick,
      snapshotEntries: o.snapshotEntries,
      proposalTimeoutMs: this.#timeoutMs,
      readTimeoutMs: this.#timeoutMs,
      ticker: o.ticker,
      clock: o.now ? { now: o.now } : undefined,
      onFatal: o.onFatal,
    });
    // Members restored from a snapshot know their peers too.
    for (const m of this.sm.members.values()) {
      if (m.id !== o.memberId && m.peerURLs[0]) o.transport.addPeer(m.id, m.peerURLs[0]);
    }
  }

  start(): void {
    this.node.start();
    this.#leaseTimer = setInterval(() => this.#expireLeases(), this.#leaseCheckMs);
    this.watches.startProgressNotify(this.#progressNotifyMs);
    if (this.#retention > 0) {
      this.#compactionTimer = setInterval(() => this.#autoCompact(), this.#compactionMs);
    }
    if (this.#publish) this.#publishSelf(this.#publish);
  }

  /** Proposes this member's attributes until it succeeds (or the cluster closes). */
  async #publishSelf(attrs: { name: string; clientURLs: string[] }): Promise<void> {
    while (!this.#closed) {
      const m = this.sm.members.get(this.memberId);
      if (
        m && m.name === attrs.name &&
        JSON.stringify(m.clientURLs) === JSON.stringify(attrs.clientURLs)
      ) {
        return;
      }
      try {
        await this.propose({ op: "publish", id: this.memberId, ...attrs });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#leaseTimer);
    clearInterval(this.#compactionTimer);
    this.watches.close();
    await this.node.stop();
    await this.transport.close();
    await this.#persistence.close();
  }

  get term(): number {
    return this.node.core.term;
  }

  get leader(): number {
    return this.node.leader;
  }

  /** Replicates `cmd`; resolves with its result on this member or rejects with an EtcdError. */
  async propose(cmd: Command, signal?: AbortSignal): Promise<CommandResult> {
    try {
      const res = await this.node.propose(encodeCommand(cmd), { signal });
      if ("error" in res) throw new EtcdError(res.error.code, res.error.message);
      return res;
    } catch (e) {
      throw raftErrorToEtcd(e);
    }
  }

  /** Linearizable read barrier. */
  async readBarrier(signal?: AbortSignal): Promise<void> {
    try {
      await this.node.readIndex({ signal });
    } catch (e) {
      throw raftErrorToEtcd(e);
    }
  }

  members(): MemberInfo[] {
    const conf = this.node.membership();
    const ids = [...conf.voters, ...conf.learners];
    return ids.map((id) =>
      this.sm.members.get(id) ??
        { id, name: "", peerURLs: [], clientURLs: [], isLearner: conf.learners.includes(id) }
    );
  }

  async memberAdd(id: number, peerURLs: string[], isLearner: boolean): Promise<MemberInfo[]> {
    const context = new TextEncoder().encode(
      JSON.stringify({ name: "", peerURLs, clientURLs: [] }),
    );
    try {
      await this.node.proposeConfChange({
        type: isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode,
        nodeId: id,
        context,
      });
    } catch (e) {
      throw raftErrorToEtcd(e);
    }
    return this.members();
  }

  async memberRemove(id: number): Promise<MemberInfo[]> {
    if (!this.members().some((m) => m.id === id)) {
      throw new EtcdError(GrpcCode.NotFound, "etcdserver: member not found");
    }
    try {
      await this.node.proposeConfChange({
        type: ConfChangeType.RemoveNode,
        nodeId: id,
        context: new Uint8Array(),
      });
    } catch (e) {
      throw raftErrorToEtcd(e);
    }
    return this.members();
  }

  async memberPromote(id: number): Promise<MemberInfo[]> {
    const m = this.members().find((x) => x.id === id);
    if (!m) throw new EtcdError(GrpcCode.NotFound, "etcdserver: member not found");
    if (!m.isLearner) {
      throw new EtcdError(
        GrpcCode.FailedPrecondition,
        "etcdserver: can only promote a learner member",
      );
    }
    try {
      await this.node.proposeConfChange({
        type: ConfChangeType.AddNode,
        nodeId: id,
        context: new Uint8Array(),
      });
    } catch (e) {
      throw raftErrorToEtcd(e);
    }
    return this.members();
  }

  /** The leader compacts to `revision - retention` (bounds the history kept in memory). */
  #autoCompact(): void {
    if (!this.node.isLeader) return;
    const store = this.sm.store;
    const target = store.revision - this.#retention;
    if (target <= store.compactRevision) return;
    this.propose({ op: "compact", revision: target }).catch(() => {});
  }

  #expireLeases(): void {
    if (!this.node.isLeader) return;
    for (const id of this.sm.lessor.expired()) {
      if (this.#revoking.has(id)) continue;
      this.#revoking.add(id);
      this.propose({ op: "leaseRevoke", id }).catch(() => {}).finally(() =>
        this.#revoking.delete(id)
      );
    }
  }
}
