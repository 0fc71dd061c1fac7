/**
 * Errors thrown by the shard containers. Every error leaves the container
 * unchanged: the operation that threw had no effect.
 *
 * @module
 */

export { InvalidCursorError } from "./cursor.ts";

/** A key longer than the table's `maxKeyBytes` (in UTF-8). */
export class KeyTooLongError extends RangeError {
  constructor(readonly keyBytes: number, readonly maxKeyBytes: number) {
    super(`key is ${keyBytes} bytes in UTF-8, over the limit of ${maxKeyBytes}`);
    this.name = "KeyTooLongError";
  }
}

/** A value that does not fit the largest arena size class. */
export class ValueTooLargeError extends RangeError {
  constructor(
    readonly valueBytes: number,
    readonly keyBytes: number,
    readonly maxBlockBytes: number,
    readonly headerBytes: number,
  ) {
    super(
      `value of ${valueBytes} bytes (with a ${keyBytes}-byte key and ${headerBytes}-byte header) ` +
        `does not fit the largest size class of ${maxBlockBytes} bytes; ` +
        `at most ${maxBlockBytes - headerBytes - keyBytes} value bytes fit with this key`,
    );
    this.name = "ValueTooLargeError";
  }
}

/** Base of the "no room left" errors: HTTP layers usually map it to 507. */
export class CapacityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CapacityError";
  }
}

/** The shared arena has no free block of the needed size class and cannot grow. */
export class ArenaFullError extends CapacityError {
  constructor(readonly blockBytes: number, readonly arenaMaxBytes: number) {
    super(
      `shared arena is full: no free ${blockBytes}-byte block and the arena is at its ` +
        `${arenaMaxBytes}-byte limit (raise arenaBytes)`,
    );
    this.name = "ArenaFullError";
  }
}

/** A shard's slot table reached its load limit. */
export class TableFullError extends CapacityError {
  constructor(readonly shard: number, readonly maxEntriesPerShard: number) {
    super(
      `shard ${shard} is full (${maxEntriesPerShard} entries at the load limit; ` +
        `raise slotsPerShard or shardCount)`,
    );
    this.name = "TableFullError";
  }
}
