/**
 * The four load scenarios of the tasks service (baseline CRUD, stress,
 * read-heavy, comparative). The same scenarios exist as k6 scripts in
 * `k6/tasks-*.ts`.
 *
 * @module
 */
import type { HttpClient } from "../http_client.ts";
import type { Prng } from "../prng.ts";
import { type MixEntry, type Scenario, type VuContext, weightedMix } from "../scenario.ts";
import { type KeyPicker, parseKeyPicker } from "../zipf.ts";

/** Tasks per `POST /tasks/bulk` request while seeding (the API takes up to 10,000). */
export const SEED_BATCH_SIZE = 1_000;
/** Largest dataset a scenario may seed. */
export const SEED_COUNT_MAX = 1_000_000;
/** Ids a VU remembers of the tasks it created (for its deletes). */
const OWN_IDS_MAX = 1_000;

const STATUSES = ["todo", "in_progress", "done"] as const;

/** What the tasks scenarios share between VUs: the seeded ids and the key picker. */
export interface TasksData {
  ids: string[];
  keys: KeyPicker;
}

/** Knobs of the tasks scenarios (the CLI sets them from flags). */
export interface TasksParams {
  /** Tasks created by setup. */
  seedCount?: number;
  /** Key distribution over the seeded ids: "uniform", "zipf[:s]" or "hot[:80/20]". */
  keys?: string;
}

/** A random, valid task body. */
export function taskBody(rng: Prng, n: number): Record<string, unknown> {
  return {
    title: `load task ${n}`,
    description: `created by the load runner (${rng.nextUint32().toString(16)})`,
    status: STATUSES[rng.int(STATUSES.length)],
    priority: rng.int(6),
  };
}

/** Creates `count` tasks with `POST /tasks/bulk` and returns their ids. Throws on any failure. */
export async function seedTasks(
  http: HttpClient,
  rng: Prng,
  count: number,
  log: (message: string) => void = () => {},
): Promise<string[]> {
  if (!Number.isInteger(count) || count < 1 || count > SEED_COUNT_MAX) {
    throw new Error(
      `seed count must be in [1, ${SEED_COUNT_MAX}], got ${count}`,
    );
  }
  const ids: string[] = [];
  while (ids.length < count) {
    const size = Math.min(SEED_BATCH_SIZE, count - ids.length);
    const tasks = Array.from(
      { length: size },
      (_, i) => taskBody(rng, ids.length + i),
    );
    const res = await http.post("/tasks/bulk", { tasks }, {
      name: "seed",
      expect: 201,
    });
    const body = res.json<{ count: number; ids: string[] }>();
    if (
      !res.ok || body === undefined || !Array.isArray(body.ids) ||
      body.ids.length !== size
    ) {
      throw new Error(
        `seeding failed: status ${res.status} ${res.error ?? ""} ${res.body.slice(0, 200)}`,
      );
    }
    ids.push(...body.ids);
  }
  log(`seeded ${ids.length} tasks`);
  return ids;
}

function setupWith(
  params: TasksParams,
  defaultCount: number,
  defaultKeys: string,
) {
  return async (
    ctx: Parameters<NonNullable<Scenario<TasksData>["setup"]>>[0],
  ) => {
    const ids = await seedTasks(
      ctx.http,
      ctx.rng,
      params.seedCount ?? defaultCount,
      ctx.log,
    );
    return {
      ids,
      keys: parseKeyPicker(params.keys ?? defaultKeys, ids.length),
    };
  };
}

function pickId(vu: VuContext<TasksData>): string {
  return vu.data.ids[vu.data.keys.pick(vu.rng)]!;
}

function ownIds(vu: VuContext<TasksData>): string[] {
  return (vu.state.created ??= []) as string[];
}

/** GET a seeded task by id (the key distribution decides which). */
const getById: MixEntry<TasksData>["run"] = async (vu) => {
  await vu.http.get(`/tasks/${pickId(vu)}`, { name: "get", expect: 200 });
};

/** POST a new task and remember its id for this VU's deletes. */
const create: MixEntry<TasksData>["run"] = async (vu) => {
  const res = await vu.http.post("/tasks", taskBody(vu.rng, vu.iteration), {
    name: "create",
    expect: 201,
  });
  const id = res.json<{ id?: string }>()?.id;
  const own = ownIds(vu);
  if (typeof id === "string" && own.length < OWN_IDS_MAX) own.push(id);
};

/** PUT (full replace) a seeded task. */
const replace: MixEntry<TasksData>["run"] = async (vu) => {
  await vu.http.put(`/tasks/${pickId(vu)}`, taskBody(vu.rng, vu.iteration), {
    name: "replace",
    expect: 200,
  });
};

/** PATCH the status of a seeded task. */
const patchStatus: MixEntry<TasksData>["run"] = async (vu) => {
  await vu.http.patch(`/tasks/${pickId(vu)}`, {
    status: STATUSES[vu.rng.int(STATUSES.length)],
  }, {
    name: "patch",
    expect: 200,
  });
};

/** DELETE a task this VU created (seeded tasks stay, so reads never 404); creates one if none. */
const deleteOwn: MixEntry<TasksData>["run"] = async (vu) => {
  const id = ownIds(vu).pop();
  if (id === undefined) return create(vu);
  await vu.http.del(`/tasks/${id}`, { name: "delete", expect: 204 });
};

/** GET a page of the list, sometimes filtered by status, sometimes following the last cursor. */
const list: MixEntry<TasksData>["run"] = async (vu) => {
  const cursor = vu.state.cursor as string | undefined;
  let query = `limit=50`;
  if (cursor !== undefined && vu.rng.next() < 0.5) {
    query += `&cursor=${encodeURIComponent(cursor)}`;
  } else if (vu.rng.next() < 0.3) {
    query += `&status=${STATUSES[vu.rng.int(STATUSES.length)]}`;
  }
  const res = await vu.http.get(`/tasks?${query}`, {
    name: "list",
    expect: 200,
  });
  const next = res.json<{ nextCursor?: string | null }>()?.nextCursor;
  vu.state.cursor = typeof next === "string" ? next : undefined;
};

/**
 * Baseline CRUD: 40% get, 30% create, 20% replace, 10% delete (of own
 * tasks), 1 s think time, ramp to 100 VUs; 40 s.
 */
export function tasksBaseline(params: TasksParams = {}): Scenario<TasksData> {
  return {
    name: "tasks-baseline",
    description: "Baseline CRUD: 40% GET, 30% POST, 20% PUT, 10% DELETE, 1 s think time, 100 VUs",
    stages: [
      { duration: "10s", target: 100 },
      { duration: "25s", target: 100 },
      { duration: "5s", target: 0 },
    ],
    thinkTime: { fixedMs: 1_000 },
    thresholds: {
      http_req_failed: ["rate==0"],
      http_req_duration: ["p(95)<100", "p(99)<250"],
      checks: ["rate==1"],
    },
    setup: setupWith(params, 1_000, "uniform"),
    iteration: weightedMix<TasksData>([
      { name: "get", weight: 40, run: getById },
      { name: "create", weight: 30, run: create },
      { name: "replace", weight: 20, run: replace },
      { name: "delete", weight: 10, run: deleteOwn },
    ]),
  };
}

/** Stress: 80% GET by id, 20% writes (POST, PATCH, PUT), no think time, 100 → 500 → 1000 VUs; 90 s. */
export function tasksStress(params: TasksParams = {}): Scenario<TasksData> {
  return {
    name: "tasks-stress",
    description: "Stress: 80% GET by id / 20% writes, no think time, 100 → 500 → 1000 VUs",
    stages: [
      { duration: "10s", target: 100 },
      { duration: "20s", target: 100 },
      { duration: "10s", target: 500 },
      { duration: "20s", target: 500 },
      { duration: "10s", target: 1_000 },
      { duration: "15s", target: 1_000 },
      { duration: "5s", target: 0 },
    ],
    thresholds: {
      http_req_failed: ["rate==0"],
      http_req_duration: ["p(95)<50"],
    },
    setup: setupWith(params, 1_000, "uniform"),
    iteration: weightedMix<TasksData>([
      { name: "get", weight: 80, run: getById },
      { name: "create", weight: 10, run: create },
      { name: "patch", weight: 5, run: patchStatus },
      { name: "replace", weight: 5, run: replace },
    ]),
  };
}

/**
 * Read-heavy: 10,000 seeded tasks, 70% GET by id with 80/20 hot keys, 25%
 * list, 5% writes (PATCH of hot keys), 800 VUs; 50 s.
 */
export function tasksReadHeavy(params: TasksParams = {}): Scenario<TasksData> {
  return {
    name: "tasks-read-heavy",
    description:
      "Read-heavy: 10,000 seeded tasks, 70% GET by id (80/20 hot keys), 25% list, 5% PATCH, 800 VUs",
    stages: [
      { duration: "10s", target: 800 },
      { duration: "35s", target: 800 },
      { duration: "5s", target: 0 },
    ],
    thresholds: {
      http_req_failed: ["rate==0"],
      http_req_duration: ["p(95)<100"],
      "http_req_duration{name:get}": ["p(95)<50"],
    },
    setup: setupWith(params, 10_000, "hot:80/20"),
    iteration: weightedMix<TasksData>([
      { name: "get", weight: 70, run: getById },
      { name: "list", weight: 25, run: list },
      { name: "patch", weight: 5, run: patchStatus },
    ]),
  };
}

/** Storage types the comparative scenario runs the stress mix against, in order. */
export const COMPARATIVE_STORAGES = ["memory", "shard", "pool", "kv"] as const;

/** Comparative: the stress scenario, renamed, run once per storage type by the CLI. */
export function tasksComparative(
  params: TasksParams = {},
): Scenario<TasksData> {
  return {
    ...tasksStress(params),
    name: "tasks-comparative",
    description: "Comparative: the stress mix against each storage type in turn",
  };
}
