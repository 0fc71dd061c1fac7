/**
 * Deterministic simulation kit: clocks, a seeded PRNG, a simulated network, a crash-simulating
 * disk and a linearizability checker. See README.md.
 *
 * @module
 */

export { type Clock, ManualClock, MonotonicClock, SystemClock } from "./clock.ts";
export { Prng, type Rand, seedFromString } from "./prng.ts";
export {
  type Envelope,
  type NetworkFaults,
  type NetworkOptions,
  type NetworkStats,
  type NodeId,
  type SendOutcome,
  SimNetwork,
} from "./network.ts";
export {
  type CrashOptions,
  type DiskOp,
  type DiskStats,
  SimDisk,
  type SimDiskOptions,
  StaleHandleError,
} from "./disk.ts";
export {
  checkKvHistory,
  type CheckOptions,
  type CheckResult,
  describeOp,
  KvHistory,
  type KvOperation,
  type KvOpKind,
  type KvValue,
  type OpHandle,
} from "./checker.ts";
