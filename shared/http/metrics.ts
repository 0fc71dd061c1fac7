/**
 * A small Prometheus registry: counters, gauges and histograms with labels,
 * rendered in the text exposition format (version 0.0.4).
 */

type Labels = Readonly<Record<string, string>>;

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function renderLabels(names: readonly string[], values: readonly string[], extra = ""): string {
  if (names.length === 0 && extra === "") return "";
  const parts = names.map((name, i) => `${name}="${escapeLabel(values[i] ?? "")}"`);
  if (extra !== "") parts.push(extra);
  return `{${parts.join(",")}}`;
}

function formatNumber(n: number): string {
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return Number.isNaN(n) ? "NaN" : String(n);
}

interface Metric {
  render(out: string[]): void;
}

/** The most distinct label sets one metric keeps; past it, new sets fold into `other`. */
export const SERIES_PER_METRIC_MAX = 2_000;

abstract class Family<S> implements Metric {
  protected readonly seriesByKey = new Map<string, { values: string[]; state: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: string,
    readonly labelNames: readonly string[],
  ) {}

  protected abstract create(): S;

  protected get(labels: Labels | undefined): S {
    let key = "";
    const values: string[] = [];
    for (const name of this.labelNames) {
      const value = labels?.[name] ?? "";
      values.push(value);
      key += value + "\u0000";
    }
    let entry = this.seriesByKey.get(key);
    if (entry === undefined) {
      if (this.seriesByKey.size >= SERIES_PER_METRIC_MAX) {
        const otherKey = this.labelNames.map(() => "other\u0000").join("");
        const other = this.seriesByKey.get(otherKey);
        if (other !== undefined) return other.state;
        const state = this.create();
        this.seriesByKey.set(otherKey, { values: this.labelNames.map(() => "other"), state });
        return state;
      }
      entry = { values, state: this.create() };
      this.seriesByKey.set(key, entry);
    }
    return entry.state;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`);
    for (const { values, state } of this.seriesByKey.values()) {
      this.renderSeries(out, values, state);
    }
  }

  protected abstract renderSeries(out: string[], values: string[], state: S): void;
}

/** A monotonically increasing counter. */
export class Counter extends Family<{ value: number }> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, "counter", labelNames);
  }
  protected create() {
    return { value: 0 };
  }
  /** The mutable state of the series for `labels` (for hot paths that cache it). */
  stateFor(labels?: Labels): { value: number } {
    return this.get(labels);
  }
  /** Adds `n` (default 1) to the series for `labels`. */
  inc(labels?: Labels, n = 1): void {
    this.get(labels).value += n;
  }
  /** The current value for `labels`. */
  value(labels?: Labels): number {
    return this.get(labels).value;
  }
  protected renderSeries(out: string[], values: string[], state: { value: number }) {
    out.push(`${this.name}${renderLabels(this.labelNames, values)} ${formatNumber(state.value)}`);
  }
}

/** A value that goes up and down; optionally computed at scrape time. */
export class Gauge extends Family<{ value: number }> {
  #collect: (() => void) | undefined;
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    collect?: (gauge: Gauge) => void,
  ) {
    super(name, help, "gauge", labelNames);
    this.#collect = collect === undefined ? undefined : () => collect(this);
  }
  protected create() {
    return { value: 0 };
  }
  /** Sets the series for `labels` to `value`. */
  set(value: number, labels?: Labels): void {
    this.get(labels).value = value;
  }
  /** Adds `n` (may be negative). */
  add(n: number, labels?: Labels): void {
    this.get(labels).value += n;
  }
  /** The current value for `labels`. */
  value(labels?: Labels): number {
    return this.get(labels).value;
  }
  override render(out: string[]): void {
    this.#collect?.();
    super.render(out);
  }
  protected renderSeries(out: string[], values: string[], state: { value: number }) {
    out.push(`${this.name}${renderLabels(this.labelNames, values)} ${formatNumber(state.value)}`);
  }
}

/** The state of one histogram series. */
export interface HistogramState {
  counts: Float64Array;
  sum: number;
  count: number;
}

function observeInto(buckets: readonly number[], state: HistogramState, value: number): void {
  let i = 0;
  while (i < buckets.length && value > buckets[i]!) i++;
  if (i < buckets.length) state.counts[i]!++;
  state.sum += value;
  state.count++;
}

/** Default latency buckets in seconds: 50 µs to 10 s. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  10,
];

/** A histogram with fixed cumulative buckets. */
export class Histogram extends Family<HistogramState> {
  readonly buckets: readonly number[];
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    buckets: readonly number[] = LATENCY_BUCKETS_SECONDS,
  ) {
    super(name, help, "histogram", labelNames);
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) throw new RangeError("buckets must increase");
    }
    this.buckets = buckets;
  }
  protected create(): HistogramState {
    return { counts: new Float64Array(this.buckets.length), sum: 0, count: 0 };
  }
  /** The mutable state of the series for `labels` (for hot paths that cache it). */
  stateFor(labels?: Labels): HistogramState {
    return this.get(labels);
  }
  /** Records one observation. */
  observe(value: number, labels?: Labels): void {
    observeInto(this.buckets, this.get(labels), value);
  }
  /** The number of observations for `labels`. */
  count(labels?: Labels): number {
    return this.get(labels).count;
  }
  protected renderSeries(out: string[], values: string[], state: HistogramState) {
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += state.counts[i]!;
      const le = `le="${formatNumber(this.buckets[i]!)}"`;
      out.push(`${this.name}_bucket${renderLabels(this.labelNames, values, le)} ${cumulative}`);
    }
    out.push(
      `${this.name}_bucket${renderLabels(this.labelNames, values, 'le="+Inf"')} ${state.count}`,
      `${this.name}_sum${renderLabels(this.labelNames, values)} ${formatNumber(state.sum)}`,
      `${this.name}_count${renderLabels(this.labelNames, values)} ${state.count}`,
    );
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** A set of metrics rendered together at `/metrics`. */
export class Registry {
  readonly #metrics = new Map<string, Metric>();

  /** Registers a metric; names must be unique and valid Prometheus names. */
  register<M extends Counter | Gauge | Histogram>(metric: M): M {
    if (!METRIC_NAME.test(metric.name)) throw new RangeError(`bad metric name ${metric.name}`);
    if (this.#metrics.has(metric.name)) {
      throw new RangeError(`metric ${metric.name} already registered`);
    }
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  /** Shorthand for registering a {@link Counter}. */
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(new Counter(name, help, labelNames));
  }

  /** Shorthand for registering a {@link Gauge}. */
  gauge(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    collect?: (gauge: Gauge) => void,
  ): Gauge {
    return this.register(new Gauge(name, help, labelNames, collect));
  }

  /** Shorthand for registering a {@link Histogram}. */
  histogram(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    buckets?: readonly number[],
  ): Histogram {
    return this.register(new Histogram(name, help, labelNames, buckets));
  }

  /** The text exposition of every metric. */
  render(): string {
    const out: string[] = [];
    for (const metric of this.#metrics.values()) metric.render(out);
    return out.join("\n") + "\n";
  }
}

/**
 * The request counter and latency histogram of a service, with one cached
 * pair of series per (method, route, status) so that recording a request is
 * one map lookup.
 */
export class HttpMetrics {
  readonly requests: Counter;
  readonly latency: Histogram;
  readonly #series = new Map<string, { count: { value: number }; hist: HistogramState }>();

  constructor(registry: Registry) {
    this.requests = registry.counter(
      "http_requests_total",
      "HTTP requests handled, by method, route and status.",
      ["method", "route", "status"],
    );
    this.latency = registry.histogram(
      "http_request_duration_seconds",
      "HTTP request latency in seconds, by method, route and status.",
      ["method", "route", "status"],
    );
  }

  /** Records one request. */
  observe(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${status} ${route}`;
    let series = this.#series.get(key);
    if (series === undefined) {
      const labels = { method, route, status: String(status) };
      series = { count: this.requests.stateFor(labels), hist: this.latency.stateFor(labels) };
      if (this.#series.size < SERIES_PER_METRIC_MAX) this.#series.set(key, series);
    }
    series.count.value++;
    observeInto(this.latency.buckets, series.hist, seconds);
  }
}
