/**
 * Typed errors of the log storage engine. Every error carries a stable `code` an API layer can
 * map to a protocol error (Kafka's error names in parentheses where one fits).
 *
 * @module
 */

/** Stable error codes of {@link LogError}. */
export type LogErrorCode =
  | "CORRUPT_BATCH"
  | "RECORD_TOO_LARGE"
  | "BATCH_TOO_LARGE"
  | "INVALID_RECORD"
  | "OFFSET_OUT_OF_RANGE"
  | "LOG_CORRUPT"
  | "LOG_FAILED"
  | "LOG_CLOSED"
  | "INVALID_CONFIG";

/**
 * Base class of every error thrown by the log storage engine.
 *
 * @example
 * ```ts
 * import { LogError } from "@deno-stores/log";
 * try {
 *   // partition.read(...)
 * } catch (e) {
 *   if (e instanceof LogError && e.code === "OFFSET_OUT_OF_RANGE") {
 *     // reset the consumer
 *   }
 * }
 * ```
 */
export class LogError extends Error {
  /** A stable machine-readable code. */
  readonly code: LogErrorCode;

  constructor(code: LogErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LogError";
    this.code = code;
  }
}

/** Bytes that do not parse as a valid record batch (Kafka: CORRUPT_MESSAGE). */
export class CorruptBatchError extends LogError {
  /** Byte position (in the buffer or file examined) where the problem was found. */
  readonly position: number;

  constructor(message: string, position: number) {
    super("CORRUPT_BATCH", `corrupt record batch at ${position}: ${message}`);
    this.name = "CorruptBatchError";
    this.position = position;
  }
}

/** A record (key, value or header) exceeds a configured limit (Kafka: MESSAGE_TOO_LARGE). */
export class RecordTooLargeError extends LogError {
  constructor(message: string) {
    super("RECORD_TOO_LARGE", message);
    this.name = "RecordTooLargeError";
  }
}

/** A batch exceeds `maxBatchBytes` or `maxRecordsPerBatch` (Kafka: RECORD_LIST_TOO_LARGE). */
export class BatchTooLargeError extends LogError {
  constructor(message: string) {
    super("BATCH_TOO_LARGE", message);
    this.name = "BatchTooLargeError";
  }
}

/** A record is not acceptable (bad timestamp, null key on a compacted log, empty batch...). */
export class InvalidRecordError extends LogError {
  constructor(message: string) {
    super("INVALID_RECORD", message);
    this.name = "InvalidRecordError";
  }
}

/** The requested offset is below the log start or above the high watermark. */
export class OffsetOutOfRangeError extends LogError {
  readonly offset: number;
  readonly logStartOffset: number;
  readonly highWatermark: number;

  constructor(offset: number, logStartOffset: number, highWatermark: number) {
    super(
      "OFFSET_OUT_OF_RANGE",
      `offset ${offset} is out of range [${logStartOffset}, ${highWatermark}]`,
    );
    this.name = "OffsetOutOfRangeError";
    this.offset = offset;
    this.logStartOffset = logStartOffset;
    this.highWatermark = highWatermark;
  }
}

/** The files on disk are inconsistent in a way recovery must not paper over. */
export class LogCorruptError extends LogError {
  readonly file: string;

  constructor(file: string, message: string) {
    super("LOG_CORRUPT", `log corrupt (${file}): ${message}`);
    this.name = "LogCorruptError";
    this.file = file;
  }
}

/** An earlier write or fsync failed; the partition refuses work until it is reopened. */
export class LogFailedError extends LogError {
  constructor(cause: unknown) {
    super(
      "LOG_FAILED",
      `partition unusable after an I/O error: ${cause instanceof Error ? cause.message : cause}`,
      { cause },
    );
    this.name = "LogFailedError";
  }
}

/** The partition was closed. */
export class LogClosedError extends LogError {
  constructor() {
    super("LOG_CLOSED", "partition is closed");
    this.name = "LogClosedError";
  }
}

/** A configuration value is out of range. */
export class InvalidConfigError extends LogError {
  constructor(message: string) {
    super("INVALID_CONFIG", message);
    this.name = "InvalidConfigError";
  }
}
