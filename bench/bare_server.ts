/**
 * The ceiling for the tasks comparison: a bare `Deno.serve` that answers
 * every request with the same JSON body the tasks service would send for one
 * task. Run: `PORT=9000 deno run -A bench/bare_server.ts`.
 *
 * @module
 */
const port = Number(Deno.env.get("PORT") ?? "9000");
const body = JSON.stringify({
  id: "01jd0000000000aa",
  title: "benchmark task",
  description: "the same body the tasks service returns",
  status: "todo",
  priority: 1,
  createdAt: "2026-01-01T00:00:00.000Z",
  updatedAt: "2026-01-01T00:00:00.000Z",
});
Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: ({ port }) => console.log(JSON.stringify({ msg: "listening", port })),
}, () => new Response(body, { headers: { "content-type": "application/json" } }));
