/**
 * A k6-like load runner for Deno: ramping VUs along `stages`, think time,
 * weighted request mixes, Zipf / hot-spot key choice over a seeded dataset,
 * checks, thresholds, HDR-style latency histograms, a k6-style summary JSON
 * and a self-contained HTML report.
 *
 * @example
 * ```ts ignore
 * import { buildSummary, renderHtmlReport, runScenario, weightedMix } from "./mod.ts";
 *
 * const result = await runScenario({
 *   name: "health",
 *   description: "GET /healthz",
 *   stages: [{ duration: "5s", target: 10 }],
 *   iteration: weightedMix([
 *     { name: "health", weight: 1, run: async (vu) => void (await vu.http.get("/healthz", { name: "health", expect: 200 })) },
 *   ]),
 * }, { baseUrl: "http://127.0.0.1:8001" });
 * const summary = buildSummary(result);
 * await Deno.writeTextFile("report.html", renderHtmlReport([summary]));
 * ```
 *
 * @module
 */
export * from "./duration.ts";
export * from "./histogram.ts";
export * from "./html_report.ts";
export * from "./http_client.ts";
export * from "./metrics.ts";
export * from "./prng.ts";
export * from "./runner.ts";
export * from "./scenario.ts";
export * from "./service.ts";
export * from "./stages.ts";
export * from "./summary.ts";
export * from "./svg.ts";
export * from "./thresholds.ts";
export * from "./zipf.ts";
