/**
 * Requests, results and errors of the MVCC store, in etcd v3 terms. Keys and values are "binary
 * strings": one char per byte (0-255), as `atob` returns them. JavaScript string order on them is
 * byte order, they are compact in V8, and base64 converts to and from them directly.
 *
 * @module
 */

/** A key-value pair as of a revision (etcd `mvccpb.KeyValue`). */
export interface KeyValue {
  key: string;
  createRevision: number;
  modRevision: number;
  version: number;
  value: string;
  /** Lease id as a canonical decimal string ("0": none); int64 ids do not fit a JS number. */
  lease: string;
}

export const SortOrder = { NONE: 0, ASCEND: 1, DESCEND: 2 } as const;
export const SortTarget = { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 } as const;
export const CompareResult = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;
export const CompareTarget = { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } as const;

export interface RangeRequest {
  key: string;
  rangeEnd?: string;
  limit?: number;
  revision?: number;
  sortOrder?: number;
  sortTarget?: number;
  serializable?: boolean;
  keysOnly?: boolean;
  countOnly?: boolean;
  minModRevision?: number;
  maxModRevision?: number;
  minCreateRevision?: number;
  maxCreateRevision?: number;
}

export interface RangeResult {
  revision: number;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface PutRequest {
  key: string;
  value: string;
  lease?: string;
  prevKv?: boolean;
  ignoreValue?: boolean;
  ignoreLease?: boolean;
}

export interface PutResult {
  revision: number;
  prevKv?: KeyValue;
}

export interface DeleteRangeRequest {
  key: string;
  rangeEnd?: string;
  prevKv?: boolean;
}

export interface DeleteRangeResult {
  revision: number;
  deleted: number;
  prevKvs: KeyValue[];
}

export interface Compare {
  result: number;
  target: number;
  key: string;
  rangeEnd?: string;
  version?: number;
  createRevision?: number;
  modRevision?: number;
  value?: string;
  lease?: string;
}

export type RequestOp =
  | { range: RangeRequest }
  | { put: PutRequest }
  | { deleteRange: DeleteRangeRequest }
  | { txn: TxnRequest };

export type ResponseOp =
  | { range: RangeResult }
  | { put: PutResult }
  | { deleteRange: DeleteRangeResult }
  | { txn: TxnResult };

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResult {
  revision: number;
  succeeded: boolean;
  responses: ResponseOp[];
}

/** One change seen by watchers. */
export interface WatchEvent {
  type: "PUT" | "DELETE";
  kv: KeyValue;
  prevKv?: KeyValue;
}

/** gRPC status codes used by etcd errors. */
export const GrpcCode = {
  Canceled: 1,
  InvalidArgument: 3,
  AlreadyExists: 6,
  PermissionDenied: 7,
  Aborted: 10,
  Unauthenticated: 16,
  NotFound: 5,
  FailedPrecondition: 9,
  ResourceExhausted: 8,
  OutOfRange: 11,
  Unavailable: 14,
  DeadlineExceeded: 4,
  Internal: 13,
  Unimplemented: 12,
} as const;

/** An error with etcd's message and gRPC code (the HTTP status is derived from the code). */
export class EtcdError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = "EtcdError";
  }
}

export const Errors = {
  compacted: () =>
    new EtcdError(GrpcCode.OutOfRange, "etcdserver: mvcc: required revision has been compacted"),
  futureRev: () =>
    new EtcdError(GrpcCode.OutOfRange, "etcdserver: mvcc: required revision is a future revision"),
  leaseNotFound: () => new EtcdError(GrpcCode.NotFound, "etcdserver: requested lease not found"),
  leaseExists: () => new EtcdError(GrpcCode.FailedPrecondition, "etcdserver: lease already exists"),
  leaseTtlTooLarge: () => new EtcdError(GrpcCode.OutOfRange, "etcdserver: too large lease TTL"),
  keyNotFound: () => new EtcdError(GrpcCode.InvalidArgument, "etcdserver: key not found"),
  emptyKey: () => new EtcdError(GrpcCode.InvalidArgument, "etcdserver: key is not provided"),
  duplicateKey: () =>
    new EtcdError(GrpcCode.InvalidArgument, "etcdserver: duplicate key given in txn request"),
  tooManyOps: () =>
    new EtcdError(GrpcCode.InvalidArgument, "etcdserver: too many operations in txn request"),
  noSpace: () =>
    new EtcdError(GrpcCode.ResourceExhausted, "etcdserver: mvcc: database space exceeded"),
  requestTooLarge: () =>
    new EtcdError(GrpcCode.InvalidArgument, "etcdserver: request is too large"),
} as const;
