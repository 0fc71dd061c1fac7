/**
 * k6-style duration strings ("500ms", "10s", "1m30s", "2h").
 *
 * @module
 */

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a k6 duration string (or a plain number of seconds) into milliseconds.
 *
 * @example
 * ```ts
 * import { parseDurationMs } from "./duration.ts";
 * parseDurationMs("1m30s"); // 90000
 * ```
 */
export function parseDurationMs(text: string | number): number {
  if (typeof text === "number") {
    if (!Number.isFinite(text) || text < 0) {
      throw new Error(`bad duration ${text}`);
    }
    return text * 1000;
  }
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < trimmed.length) {
    part.lastIndex = pos;
    const m = part.exec(trimmed);
    if (m === null) throw new Error(`bad duration "${text}"`);
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = part.lastIndex;
  }
  if (trimmed.length === 0) throw new Error("empty duration");
  return total;
}

/** Formats milliseconds as a short k6-style duration ("1m30s", "250ms"). */
export function formatDurationMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const totalS = Math.round(ms / 100) / 10;
  const m = Math.floor(totalS / 60);
  const s = Math.round((totalS - m * 60) * 10) / 10;
  if (m === 0) return `${s}s`;
  return s === 0 ? `${m}m` : `${m}m${s}s`;
}
