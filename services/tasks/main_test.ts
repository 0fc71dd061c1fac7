import assert from "node:assert/strict";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

interface Running {
  url: string;
  child: Deno.ChildProcess;
  lines: string[];
  /** Resolves with every stdout line once the process exits. */
  done: Promise<string[]>;
}

async function start(env: Record<string, string>): Promise<Running> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN],
    env: { HOST: "127.0.0.1", PORT: "0", ACCESS_LOG: "false", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  let resolveUrl!: (url: string) => void;
  const urlPromise = new Promise<string>((resolve) => (resolveUrl = resolve));
  const done = (async () => {
    let rest = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        const entry = JSON.parse(line);
        if (entry.msg === "listening") resolveUrl(entry.url);
      }
    }
    resolveUrl("");
    return lines;
  })();
  const url = await urlPromise;
  if (url === "") {
    const err = await new Response(child.stderr).text();
    throw new Error(`service did not start: ${err}`);
  }
  child.stderr.cancel();
  return { url, child, lines, done };
}

async function stop(running: Running): Promise<{ code: number; lines: string[] }> {
  running.child.kill("SIGTERM");
  const status = await running.child.status;
  return { code: status.code, lines: await running.done };
}

Deno.test("tasks main serves, then drains and exits 0 on SIGTERM", async () => {
  const running = await start({ STORAGE_TYPE: "memory" });
  const res = await fetch(`${running.url}/tasks`, {
    method: "POST",
    body: JSON.stringify({ title: "hello" }),
  });
  assert.equal(res.status, 201);
  await res.body?.cancel();
  const { code, lines } = await stop(running);
  assert.equal(code, 0);
  const messages = lines.map((l) => JSON.parse(l).msg);
  assert.ok(messages.includes("shutting down"));
  assert.equal(messages.at(-1), "stopped");
});

Deno.test("tasks main refuses a bad variable, naming it", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN],
    env: { PORT: "0", STORAGE_TYPE: "mongo" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /STORAGE_TYPE/);
});

Deno.test("tasks main on kv keeps tasks across a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tasks-kv-" });
  try {
    const env = { STORAGE_TYPE: "kv", KV_PATH: `${dir}/tasks.kv` };
    const first = await start(env);
    const created = await (await fetch(`${first.url}/tasks`, {
      method: "POST",
      body: JSON.stringify({ title: "survive", priority: 4 }),
    })).json();
    assert.equal((await stop(first)).code, 0);
    const second = await start(env);
    const res = await fetch(`${second.url}/tasks/${created.id}`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), created);
    assert.equal((await stop(second)).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tasks main in pool mode shares writes between worker isolates", async () => {
  const running = await start({
    STORAGE_TYPE: "pool",
    POOL_WORKERS: "2",
    POOL_ARENA_BYTES: "16777216",
  });
  const fresh = async (path: string, init?: RequestInit) => {
    // A new client per request means a new connection, which the kernel may
    // hand to either worker listening on the port.
    using client = Deno.createHttpClient({});
    const res = await fetch(`${running.url}${path}`, { ...init, client });
    const body = res.status === 204 ? null : await res.json();
    return { res, body };
  };
  try {
    const servedBy = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const { res } = await fresh("/no-such-route");
      servedBy.add((res.headers.get("x-request-id") ?? "").split("-")[0]!);
    }
    assert.deepEqual([...servedBy].sort(), ["w0", "w1"]);
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const { res, body } = await fresh("/tasks", {
        method: "POST",
        body: JSON.stringify({ title: `pooled ${i}` }),
      });
      assert.equal(res.status, 201);
      ids.push(body.id);
    }
    assert.equal(new Set(ids).size, ids.length);
    for (const [i, id] of ids.entries()) {
      const { res, body } = await fresh(`/tasks/${id}`);
      assert.equal(res.status, 200);
      assert.equal(body.title, `pooled ${i}`);
    }
    const { body: bulk } = await fresh("/tasks/bulk", {
      method: "POST",
      body: JSON.stringify({ tasks: Array.from({ length: 500 }, (_, i) => ({ title: `b${i}` })) }),
    });
    let listed = 0;
    let cursor: string | null = null;
    do {
      const q: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`;
      const { body } = await fresh(`/tasks?limit=100${q}`);
      listed += body.items.length;
      cursor = body.nextCursor;
    } while (cursor !== null);
    assert.equal(listed, 60 + bulk.count);
  } finally {
    const { code } = await stop(running);
    assert.equal(code, 0);
  }
});
