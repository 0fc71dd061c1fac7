/**
 * Clocks. Simulations drive a {@link ManualClock}; production code takes a {@link Clock} and is
 * given a {@link SystemClock}.
 *
 * @module
 */

/** A source of time in milliseconds. */
export interface Clock {
  /** Current time in ms. */
  now(): number;
}

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  #now: number;

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  /** Moves time forward by `ms` (>= 0) and returns the new time. */
  advance(ms: number): number {
    if (!(ms >= 0)) throw new RangeError(`ManualClock.advance(${ms}): ms must be >= 0`);
    this.#now += ms;
    return this.#now;
  }

  /** Sets the time; it may not go backwards. */
  set(ms: number): void {
    if (!(ms >= this.#now)) {
      throw new RangeError(`ManualClock.set(${ms}): time may not go back from ${this.#now}`);
    }
    this.#now = ms;
  }
}

/** Wall-clock time (`Date.now()`, ms since the Unix epoch). */
export class SystemClock implements Clock {
  now(): number {
    return Date.now();
  }
}

/** Monotonic time (`performance.now()`, ms since process start); immune to wall-clock jumps. */
export class MonotonicClock implements Clock {
  now(): number {
    return performance.now();
  }
}
