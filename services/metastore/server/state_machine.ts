/**
 * The metastore's replicated state machine: the commands that travel through the Raft log, how
 * each is applied to the {@link MvccStore}, the lease deadlines (volatile, per member) and the
 * member list (from conf-change contexts, kept in snapshots).
 *
 * @module
 */

import type { ConfChange, ConfState, Snapshot, StateMachine } from "@deno-stores/shared/raft";
import { ConfChangeType } from "@deno-stores/shared/raft";
import { MvccStore, type MvccStoreOptions } from "../mvcc/store.ts";
import {
  type DeleteRangeRequest,
  type DeleteRangeResult,
  EtcdError,
  type PutRequest,
  type PutResult,
  type TxnRequest,
  type TxnResult,
} from "../mvcc/types.ts";

/** A replicated command. Lease ids are decimal strings; TTLs are already normalised. */
export type Command =
  | { op: "put"; req: PutRequest }
  | { op: "deleteRange"; req: DeleteRangeRequest }
  | { op: "txn"; req: TxnRequest }
  | { op: "compact"; revision: number }
  | { op: "leaseGrant"; id: string; ttl: number }
  | { op: "leaseRevoke"; id: string }
  | { op: "leaseKeepAlive"; id: string }
  /** A member publishes its name and client URLs (as etcd members do after starting). */
  | { op: "publish"; id: number; name: string; clientURLs: string[] };

/** What applying a command produced (errors are deterministic results, not exceptions). */
export type CommandResult =
  | { put: PutResult }
  | { deleteRange: DeleteRangeResult }
  | { txn: TxnResult }
  | { compact: { revision: number } }
  | { lease: { id: string; ttl: number; revision: number } }
  | { published: { id: number } }
  | { error: { code: number; message: string } };

/** A cluster member as etcd lists it. */
export interface MemberInfo {
  id: number;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** Context of a conf-change entry: who the member is. */
export interface MemberContext {
  name: string;
  peerURLs: string[];
  clientURLs: string[];
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeCommand(c: Command): Uint8Array {
  return enc.encode(JSON.stringify(c));
}

export function decodeCommand(b: Uint8Array): Command {
  return JSON.parse(dec.decode(b)) as Command;
}

/** Volatile lease deadlines (ms on the member's monotonic clock). */
export class Lessor {
  readonly #deadline = new Map<string, number>();
  constructor(private readonly store: MvccStore, private readonly now: () => number) {}

  /** Grant or keepalive applied: the lease lives `ttl` seconds from now. */
  refresh(id: string, ttl: number): void {
    this.#deadline.set(id, this.now() + ttl * 1000);
  }

  forget(id: string): void {
    this.#deadline.delete(id);
  }

  /** This member became leader: every lease gets its full TTL again (as etcd's lessor does). */
  promote(): void {
    const now = this.now();
    for (const l of this.store.leases.values()) this.#deadline.set(l.id, now + l.ttl * 1000);
  }

  /** Leases whose deadline passed. */
  expired(): string[] {
    const now = this.now();
    const out: string[] = [];
    for (const l of this.store.leases.values()) {
      const d = this.#deadline.get(l.id);
      if (d === undefined) this.#deadline.set(l.id, now + l.ttl * 1000);
      else if (d <= now) out.push(l.id);
    }
    return out;
  }

  /** Seconds left (rounded up), or -1 for an unknown lease. */
  remaining(id: string): number {
    const l = this.store.leases.get(id);
    if (!l) return -1;
    const d = this.#deadline.get(id) ?? this.now() + l.ttl * 1000;
    return Math.max(0, Math.ceil((d - this.now()) / 1000));
  }
}

/** Options of {@link MetaStateMachine}. */
export interface MetaStateMachineOptions extends MvccStoreOptions {
  /** Monotonic ms clock for lease deadlines. */
  now?: () => number;
  /** Members of a new cluster (before any conf change is applied). */
  members?: MemberInfo[];
  /** Called when a member is added, updated or removed by an applied conf change. */
  onMembersChanged?: (members: MemberInfo[], change: ConfChange) => void;
  onLeaderChange?: (lead: number, isLeader: boolean, term: number) => void;
}

/** The state machine a RaftNode applies entries to. */
export class MetaStateMachine implements StateMachine<CommandResult> {
  readonly store: MvccStore;
  readonly lessor: Lessor;
  readonly members = new Map<number, MemberInfo>();
  appliedIndex = 0;
  readonly #opts: MetaStateMachineOptions;

  constructor(options: MetaStateMachineOptions = {}) {
    this.#opts = options;
    this.store = new MvccStore(options);
    this.lessor = new Lessor(this.store, options.now ?? (() => performance.now()));
    for (const m of options.members ?? []) this.members.set(m.id, { ...m });
  }

  apply(data: Uint8Array, index: number): CommandResult {
    this.appliedIndex = index;
    let cmd: Command;
    try {
      cmd = decodeCommand(data);
    } catch {
      return { error: { code: 13, message: "etcdserver: undecodable command in the log" } };
    }
    return this.execute(cmd);
  }

  /** Applies one command (also used directly by tests). */
  execute(cmd: Command): CommandResult {
    const s = this.store;
    try {
      switch (cmd.op) {
        case "put":
          return { put: s.put(cmd.req) };
        case "deleteRange":
          return { deleteRange: s.deleteRange(cmd.req) };
        case "txn":
          return { txn: s.txn(cmd.req) };
        case "compact":
          return { compact: { revision: s.compact(cmd.revision) } };
        case "leaseGrant": {
          const l = s.leaseGrant(cmd.id, cmd.ttl);
          this.lessor.refresh(l.id, l.ttl);
          return { lease: { id: l.id, ttl: l.ttl, revision: s.revision } };
        }
        case "leaseRevoke": {
          const rev = s.leaseRevoke(cmd.id);
          this.lessor.forget(cmd.id);
          return { lease: { id: cmd.id, ttl: 0, revision: rev } };
        }
        case "leaseKeepAlive": {
          const l = s.leases.get(cmd.id);
          if (!l) return { lease: { id: cmd.id, ttl: 0, revision: s.revision } };
          this.lessor.refresh(l.id, l.ttl);
          return { lease: { id: l.id, ttl: l.ttl, revision: s.revision } };
        }
        case "publish": {
          const m = this.members.get(cmd.id);
          if (!m) return { error: { code: 5, message: "etcdserver: member not found" } };
          m.name = cmd.name;
          m.clientURLs = [...cmd.clientURLs];
          return { published: { id: cmd.id } };
        }
        default:
          return { error: { code: 3, message: "etcdserver: unknown command" } };
      }
    } catch (e) {
      if (e instanceof EtcdError) return { error: { code: e.code, message: e.message } };
      throw e;
    }
  }

  restore(snapshot: Snapshot): void {
    const data = snapshot.data;
    if (data.length < 4) throw new Error("metastore snapshot: too short");
    const n = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
    if (4 + n > data.length) throw new Error("metastore snapshot: bad member section");
    const members = JSON.parse(dec.decode(data.subarray(4, 4 + n))) as MemberInfo[];
    this.store.restore(data.subarray(4 + n));
    this.members.clear();
    for (const m of members) this.members.set(m.id, m);
    this.lessor.promote(); // fresh deadlines for every restored lease
    this.appliedIndex = snapshot.metadata.index;
  }

  /** Members and store as of this call; the store's history is encoded in slices. */
  async snapshot(): Promise<Uint8Array> {
    const members = enc.encode(JSON.stringify([...this.members.values()]));
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, members.length);
    return await this.store.snapshotAsync([length, members]);
  }

  onConfChange(cc: ConfChange, conf: ConfState): void {
    const id = cc.nodeId;
    if (cc.type === ConfChangeType.RemoveNode) {
      this.members.delete(id);
    } else {
      let ctx: MemberContext | null = null;
      try {
        if (cc.context.length > 0) ctx = JSON.parse(dec.decode(cc.context)) as MemberContext;
      } catch {
        ctx = null;
      }
      const prev = this.members.get(id);
      this.members.set(id, {
        id,
        name: ctx?.name ?? prev?.name ?? "",
        peerURLs: ctx?.peerURLs ?? prev?.peerURLs ?? [],
        clientURLs: ctx?.clientURLs ?? prev?.clientURLs ?? [],
        isLearner: conf.learners.includes(id),
      });
    }
    // Keep the learner flags in line with the membership.
    for (const m of this.members.values()) m.isLearner = conf.learners.includes(m.id);
    this.#opts.onMembersChanged?.([...this.members.values()], cc);
  }

  onLeaderChange(lead: number, isLeader: boolean, term: number): void {
    if (isLeader) this.lessor.promote();
    this.#opts.onLeaderChange?.(lead, isLeader, term);
  }
}
