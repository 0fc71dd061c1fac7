/**
 * k6-style thresholds: `{ "http_req_duration": ["p(95)<50"], "http_req_failed":
 * ["rate==0"] }`, evaluated against the flat metric values of a summary.
 *
 * @module
 */

/** Threshold expressions per metric key (a key may carry a tag: `http_req_duration{name:get}`). */
export type Thresholds = Record<string, string[]>;

/** The outcome of one expression. */
export interface ThresholdResult {
  metric: string;
  expression: string;
  /** The measured value the expression compared, or null when missing. */
  actual: number | null;
  ok: boolean;
}

const EXPRESSION =
  /^\s*([a-z]+(?:\(\d+(?:\.\d+)?\))?)\s*(<=|>=|==|!=|<|>|===)\s*(-?\d+(?:\.\d+)?)\s*$/;

/** Splits an expression like "p(95)<50" into aggregation, operator and bound. */
export function parseThreshold(
  expression: string,
): { stat: string; op: string; bound: number } {
  const m = EXPRESSION.exec(expression);
  if (m === null) throw new Error(`bad threshold expression "${expression}"`);
  return {
    stat: m[1]!,
    op: m[2] === "===" ? "==" : m[2]!,
    bound: Number(m[3]),
  };
}

function compare(actual: number, op: string, bound: number): boolean {
  switch (op) {
    case "<":
      return actual < bound;
    case "<=":
      return actual <= bound;
    case ">":
      return actual > bound;
    case ">=":
      return actual >= bound;
    case "==":
      return actual === bound;
    case "!=":
      return actual !== bound;
  }
  return false;
}

/**
 * Evaluates thresholds against `metrics` (metric key → stat name → value, as
 * in the summary JSON). A missing metric or stat fails the threshold.
 *
 * @example
 * ```ts
 * import { evaluateThresholds } from "./thresholds.ts";
 * const results = evaluateThresholds(
 *   { http_req_failed: ["rate==0"] },
 *   { http_req_failed: { rate: 0 } },
 * );
 * results[0]!.ok; // true
 * ```
 */
export function evaluateThresholds(
  thresholds: Thresholds,
  metrics: Record<string, Record<string, unknown>>,
): ThresholdResult[] {
  const out: ThresholdResult[] = [];
  for (const [metric, expressions] of Object.entries(thresholds)) {
    for (const expression of expressions) {
      const { stat, op, bound } = parseThreshold(expression);
      const raw = metrics[metric]?.[stat === "value" ? "value" : stat];
      const actual = typeof raw === "number" ? raw : null;
      out.push({
        metric,
        expression,
        actual,
        ok: actual !== null && compare(actual, op, bound),
      });
    }
  }
  return out;
}
