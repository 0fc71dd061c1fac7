/**
 * A small helper to declare commands tersely, and the expiry-argument rules several commands
 * share (SET, GETEX, EXPIRE...).
 *
 * @module
 */
import {
  type Command,
  CommandError,
  type CommandFlags,
  type Context,
  parseInt64,
} from "../engine.ts";

/** Declares a command (see {@link Command}). */
export function command(
  name: string,
  arity: number,
  keys: [number, number, number],
  group: string,
  summary: string,
  run: (ctx: Context, args: string[]) => void,
  flags: CommandFlags = {},
): Command {
  return { name, arity, keys, group, summary, run, flags };
}

/** Writes change data. */
export const WRITE: CommandFlags = { write: true };

/** Largest expiry in ms Redis accepts (an int64 of ms). */
const EXPIRE_MS_MAX = 2 ** 63 / 1;

/**
 * An expiry argument as an absolute time in ms: `unit` says what the number is (seconds or ms,
 * relative or absolute). `positive`: values <= 0 are errors (SET, GETEX), otherwise they mean
 * "already expired" (EXPIRE). Errors as Redis words them.
 */
export function expireAtMs(
  arg: string,
  unit: "EX" | "PX" | "EXAT" | "PXAT",
  nowMs: number,
  commandName: string,
  positive: boolean,
): number {
  const invalid = `ERR invalid expire time in '${commandName}' command`;
  const raw = parseInt64(arg);
  const v = Number(raw);
  if (positive && v <= 0) throw new CommandError(invalid);
  const ms = unit === "EX" || unit === "EXAT" ? v * 1000 : v;
  const at = unit === "EX" || unit === "PX" ? ms + nowMs : ms;
  if (!Number.isFinite(at) || Math.abs(ms) >= EXPIRE_MS_MAX || Math.abs(at) >= EXPIRE_MS_MAX) {
    throw new CommandError(invalid);
  }
  return at;
}
