/**
 * The scenario registry the CLI reads. Each entry names the service it
 * drives and, for comparative scenarios, the storage types to run in turn.
 *
 * @module
 */
import type { Scenario } from "../scenario.ts";
import {
  COMPARATIVE_STORAGES,
  tasksBaseline,
  tasksComparative,
  type TasksParams,
  tasksReadHeavy,
  tasksStress,
} from "./tasks.ts";
import { logProduceConsume } from "./log.ts";
import { kvEventsRoute, kvHttp, metastoreKv } from "./services.ts";

/** Parameters a scenario factory accepts from the command line. */
export type ScenarioParams = TasksParams;

/** One runnable scenario. */
export interface ScenarioEntry {
  name: string;
  /** The service it drives (the CLI knows how to start it). */
  service: "tasks" | "log" | "kv" | "metastore" | "kv-events";
  build(params: ScenarioParams): Scenario<unknown>;
  /** When set, the CLI runs the scenario once per storage type and writes a comparison. */
  storages?: readonly string[];
}

/** Every scenario, by name. */
export const SCENARIOS: readonly ScenarioEntry[] = [
  { name: "tasks-baseline", service: "tasks", build: tasksBaseline },
  { name: "tasks-stress", service: "tasks", build: tasksStress },
  { name: "tasks-read-heavy", service: "tasks", build: tasksReadHeavy },
  {
    name: "tasks-comparative",
    service: "tasks",
    build: tasksComparative,
    storages: COMPARATIVE_STORAGES,
  },
  { name: "log-produce-consume", service: "log", build: logProduceConsume },
  { name: "kv-http", service: "kv", build: kvHttp },
  { name: "metastore-kv", service: "metastore", build: metastoreKv },
  { name: "kv-events-route", service: "kv-events", build: kvEventsRoute },
];

/** Looks a scenario up by name (also accepts the short form without the service prefix). */
export function findScenario(name: string): ScenarioEntry | undefined {
  return SCENARIOS.find((s) => s.name === name || s.name === `tasks-${name}`);
}
