/**
 * An in-process mock of the tasks API for tests (port 0, loopback): enough of
 * `/tasks` for the scenarios, plus `/ok` and `/fail`, counting what it served.
 *
 * @module
 */

/** A started mock and its counters. */
export interface MockServer {
  url: string;
  /** Requests answered, by "METHOD /first-path-segment". */
  counts: Map<string, number>;
  total(): number;
  close(): Promise<void>;
}

/** Starts the mock on a free loopback port. */
export function startMock(): MockServer {
  const counts = new Map<string, number>();
  const tasks = new Map<string, Record<string, unknown>>();
  let nextId = 1;
  const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json" },
    });
  const create = (body: Record<string, unknown>) => {
    const id = String(nextId++);
    const task = { id, description: "", status: "todo", priority: 0, ...body };
    tasks.set(id, task);
    return task;
  };
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
  }, async (req) => {
    const url = new URL(req.url);
    const parts = url.pathname.split("/").filter((p) => p.length > 0);
    count(`${req.method} /${parts[0] ?? ""}`);
    if (url.pathname === "/ok") return new Response("ok");
    if (url.pathname === "/fail") return new Response("nope", { status: 500 });
    if (url.pathname === "/healthz") return json(200, { status: "ok" });
    if (parts[0] !== "tasks") return json(404, { error: "not_found" });
    if (parts[1] === "bulk" && req.method === "POST") {
      const body = await req.json() as { tasks: Record<string, unknown>[] };
      const ids = body.tasks.map((t) => create(t).id);
      return json(201, { count: ids.length, ids });
    }
    if (parts.length === 1 && req.method === "POST") {
      return json(201, create(await req.json()));
    }
    if (parts.length === 1 && req.method === "GET") {
      const limit = Number(url.searchParams.get("limit") ?? "50");
      return json(200, {
        items: [...tasks.values()].slice(0, limit),
        nextCursor: null,
      });
    }
    const task = tasks.get(parts[1]!);
    if (task === undefined) return json(404, { error: "not_found" });
    if (req.method === "GET") return json(200, task);
    if (req.method === "PUT" || req.method === "PATCH") {
      Object.assign(task, await req.json());
      return json(200, task);
    }
    if (req.method === "DELETE") {
      tasks.delete(parts[1]!);
      return new Response(null, { status: 204 });
    }
    return json(405, { error: "method_not_allowed" });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    counts,
    total: () => [...counts.values()].reduce((s, v) => s + v, 0),
    close: () => server.shutdown(),
  };
}
