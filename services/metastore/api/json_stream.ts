/**
 * Splits a stream of concatenated JSON objects (`{...}{...}` or one per line, as the etcd gateway
 * accepts on its streaming endpoints) into complete object texts, with a bound on object size.
 *
 * @module
 */

/** Incremental splitter: feed text, get back the complete top-level objects. */
export class JsonObjectSplitter {
  #buf = "";
  #depth = 0;
  #inString = false;
  #escape = false;
  #start = -1;
  #scanned = 0;

  constructor(private readonly maxObjectChars = 1 << 20) {}

  /** Adds text; returns the objects completed by it. Throws on garbage or oversize objects. */
  push(text: string): string[] {
    this.#buf += text;
    const out: string[] = [];
    const b = this.#buf;
    let i = this.#scanned;
    for (; i < b.length; i++) {
      const ch = b.charCodeAt(i);
      if (this.#depth === 0) {
        if (ch === 0x7b /* { */) {
          this.#start = i;
          this.#depth = 1;
          continue;
        }
        if (ch === 0x20 || ch === 0x0a || ch === 0x0d || ch === 0x09) continue;
        throw new SyntaxError(`unexpected ${JSON.stringify(b[i])} between JSON objects`);
      }
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (ch === 0x5c /* \ */) this.#escape = true;
        else if (ch === 0x22 /* " */) this.#inString = false;
        continue;
      }
      if (ch === 0x22) this.#inString = true;
      else if (ch === 0x7b || ch === 0x5b) this.#depth++;
      else if (ch === 0x7d || ch === 0x5d) {
        this.#depth--;
        if (this.#depth === 0) {
          out.push(b.slice(this.#start, i + 1));
          this.#start = -1;
        }
      }
    }
    // Drop what was consumed.
    const keepFrom = this.#depth > 0 ? this.#start : b.length;
    this.#buf = b.slice(keepFrom);
    this.#scanned = i - keepFrom;
    if (this.#depth > 0) this.#start = 0;
    if (this.#buf.length > this.maxObjectChars) {
      throw new RangeError(`JSON object larger than ${this.maxObjectChars} characters`);
    }
    return out;
  }

  /** True when no partial object is buffered. */
  get idle(): boolean {
    return this.#depth === 0;
  }
}
