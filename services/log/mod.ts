/**
 * The storage engine of the log service: a Kafka-style partition (segments, sparse indexes,
 * group commit, recovery, retention, key compaction) on the shared `FileSystem` interface.
 * See `docs/log.md`.
 *
 * @module
 */

export {
  BatchTooLargeError,
  CorruptBatchError,
  InvalidConfigError,
  InvalidRecordError,
  LogClosedError,
  LogCorruptError,
  LogError,
  type LogErrorCode,
  LogFailedError,
  OffsetOutOfRangeError,
  RecordTooLargeError,
} from "./errors.ts";
export {
  ATTR_LOG_APPEND_TIME,
  BATCH_HEADER_BYTES,
  BATCH_MAGIC,
  type BatchHeader,
  type BatchLimits,
  decodeBatches,
  type DecodedRecord,
  decodeRecords,
  DEFAULT_BATCH_LIMITS,
  encodeBatch,
  encodeGapBatch,
  type EncodeOptions,
  forEachRecord,
  HARD_MAX_BATCH_BYTES,
  type LogRecord,
  MAX_TIMESTAMP,
  readBatchHeader,
  type ReadHeaderOptions,
  RecordCursor,
  type RecordHeader,
  setBaseOffset,
  type TimestampType,
} from "./record_batch.ts";
export {
  LOG_SUFFIX,
  OffsetIndex,
  parseSegmentFileName,
  Segment,
  segmentFileName,
  type SegmentOptions,
  type SegmentRecovery,
  TimeIndex,
} from "./segment.ts";
export { hashKeyBytes, KeyOffsetMap, type KeyOffsetMapOptions } from "./key_offset_map.ts";
export {
  OffsetReservation,
  RESERVATION_FILE,
  type ReservationState,
} from "./offset_reservation.ts";
export {
  type Acks,
  type AppendOptions,
  type AppendResult,
  type CleanupPolicy,
  type CompactionResult,
  DEFAULT_PARTITION_CONFIG,
  Partition,
  type PartitionConfig,
  type PartitionLogger,
  type PartitionOptions,
  type PartitionRecovery,
  type PartitionStats,
  type ReadResult,
  type ResolvedPartitionConfig,
  resolvePartitionConfig,
} from "./partition.ts";
