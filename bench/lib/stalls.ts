/**
 * Where the publish-to-indexed time of slow batches went (bench/kv_events.ts).
 *
 * @module
 */

/** Batches of one publisher, in the order they were indexed. */
export interface Samples {
  /** Publish time of each measured batch (s, the publisher's clock). */
  ts: Float64Array;
  /** When it was indexed (s). */
  at: Float64Array;
  /** How long the service worked on it: its message read to indexed (s). */
  busy: Float64Array;
  n: number;
}

/**
 * Where the slow batches' time went: of the batches indexed more than `overUs` after they were
 * published, their count, and the share of their publish-to-indexed time the service spent
 * decoding and indexing batches, from each message read to indexed (theirs and those queued
 * before them). The rest it was working on none: its thread not running, the message still on its
 * way, or the runtime reading the socket or collecting garbage.
 */
export function slowShare(s: Samples, overUs = 1000): { slow: number; busyShare: number } {
  const end = new Float64Array(s.n + 1); // end[k]: busy time of batches 0..k-1
  for (let k = 0; k < s.n; k++) end[k + 1] = end[k] + s.busy[k];
  let slow = 0, waited = 0, busy = 0;
  for (let i = 0, j = 0; i < s.n; i++) {
    const lat = s.at[i] - s.ts[i];
    if (lat * 1e6 <= overUs) continue;
    slow++;
    waited += lat;
    // First batch indexed after batch i was published; its work counted from that moment on.
    while (j < i && s.at[j] <= s.ts[i]) j++;
    while (j > 0 && s.at[j - 1] > s.ts[i]) j--;
    const first = Math.min(s.busy[j], s.at[j] - s.ts[i]);
    busy += first + (end[i + 1] - end[j + 1]);
  }
  return { slow, busyShare: slow === 0 ? 0 : busy / waited };
}
