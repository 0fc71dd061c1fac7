/**
 * Task ids: 16 characters of lowercase Crockford base32, time-ordered.
 * The first 10 characters are the creation time in ms (50 bits), the last 6
 * a 30-bit sequence that starts at a random point each millisecond and counts
 * up within it, so ids from one generator sort in creation order and ids
 * from different processes collide only with negligible probability.
 */
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
/** Length of every task id. */
export const ID_CHARS = 16;
const SEQUENCE_MAX = 2 ** 30;
const ID_PATTERN = /^[0-9a-hjkmnp-tv-z]{16}$/;

function encode(value: number, chars: number): string {
  let out = "";
  for (let i = 0; i < chars; i++) {
    out = ALPHABET[value % 32]! + out;
    value = Math.floor(value / 32);
  }
  return out;
}

/**
 * The id for creation time `ms` and a 30-bit sequence number (used by stores
 * whose sequence comes from elsewhere, such as the pool's shared counter).
 */
export function encodeId(ms: number, sequence30: number): string {
  return encode(Math.floor(ms), 10) + encode(sequence30 % SEQUENCE_MAX, 6);
}

/** True when `id` has the shape of a task id (used to 404 early on junk ids). */
export function isTaskId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/** A generator of time-ordered ids. */
export interface IdGenerator {
  next(nowMs: number): string;
}

/**
 * Creates an id generator. `random` returns a 30-bit start offset per
 * millisecond (inject a seeded one in tests). Time never goes backwards for
 * one generator: a clock step back keeps using the last millisecond.
 */
export function createIdGenerator(random: () => number): IdGenerator {
  let lastMs = -1;
  let sequence = 0;
  return {
    next(nowMs: number): string {
      let ms = Math.floor(nowMs);
      if (ms <= lastMs) {
        ms = lastMs;
        sequence++;
        if (sequence >= SEQUENCE_MAX) {
          ms = lastMs + 1;
          sequence = random() % (SEQUENCE_MAX / 2);
        }
      } else {
        sequence = random() % (SEQUENCE_MAX / 2);
      }
      lastMs = ms;
      return encode(ms, 10) + encode(sequence, 6);
    },
  };
}
