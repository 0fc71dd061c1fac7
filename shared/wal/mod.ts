/**
 * Write-ahead log, atomic snapshot files, CRC-32C and the file-system interface they run on.
 * See README.md for formats and guarantees.
 *
 * @module
 */

export { crc32c, crc32cUpdate } from "./crc32c.ts";
export {
  basename,
  DenoFileSystem,
  dirname,
  type FileHandle,
  type FileStat,
  type FileSystem,
  joinPath,
  type OpenOptions,
  writeFileAtomic,
} from "./fs.ts";
export {
  encodeRecord,
  RECORD_HEADER_BYTES,
  type RecoveryInfo,
  type SegmentInfo,
  segmentName,
  Wal,
  WalCorruptError,
  WalFailedError,
  type WalInput,
  type WalLogger,
  type WalOptions,
  type WalRecord,
} from "./wal.ts";
export {
  decodeSnapshot,
  encodeSnapshot,
  type LoadedSnapshot,
  SNAPSHOT_HEADER_BYTES,
  SnapshotFiles,
  type SnapshotFilesOptions,
  type SnapshotInfo,
  snapshotName,
} from "./snapshot_file.ts";
