/**
 * `deno task log:cli`: a command-line client of the log's HTTP API.
 *
 * ```
 * log:cli topics                                    list topics
 * log:cli create <topic> [--partitions N] [--config key=value ...]
 * log:cli describe <topic>
 * log:cli delete <topic>
 * log:cli produce <topic> [--key-separator SEP] [--acks write|fsync] [--batch N]
 *     one record per stdin line (value, or key SEP value), sent in batches
 * log:cli tail <topic> [--partition N] [--from beginning|end|OFFSET] [--group G] [--once]
 *     prints "partition offset key value" per record, long-polling for more; with --group
 *     starts at the group's committed offsets and commits what it printed
 * ```
 *
 * `--url` (default `$LOG_URL` or http://127.0.0.1:8004). Keys and values travel as strings.
 *
 * @module
 */
import { parseArgs } from "node:util";

const args = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    url: { type: "string", default: Deno.env.get("LOG_URL") ?? "http://127.0.0.1:8004" },
    partitions: { type: "string", default: "1" },
    config: { type: "string", multiple: true, default: [] },
    "key-separator": { type: "string" },
    acks: { type: "string", default: "fsync" },
    batch: { type: "string", default: "500" },
    partition: { type: "string" },
    from: { type: "string", default: "end" },
    group: { type: "string" },
    once: { type: "boolean", default: false },
  },
});
const [command, topic] = args.positionals;
const base = args.values.url.replace(/\/$/, "");
const enc = encodeURIComponent;

async function call(method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const json = text === "" ? null : JSON.parse(text);
  if (!res.ok) {
    const e = json as { error?: { message?: string } } | null;
    throw new Error(`${method} ${path}: ${res.status} ${e?.error?.message ?? text}`);
  }
  return json;
}

function need(v: string | undefined, what: string): string {
  if (v === undefined) {
    console.error(`usage: log:cli ${command} <${what}> (see cli.ts)`);
    Deno.exit(2);
  }
  return v;
}

function configPairs(pairs: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of pairs) {
    const i = p.indexOf("=");
    if (i <= 0) throw new Error(`--config ${p}: expected key=value`);
    const v = p.slice(i + 1);
    out[p.slice(0, i)] = /^-?[0-9]+$/.test(v) ? Number(v) : v;
  }
  return out;
}

async function produce(name: string): Promise<void> {
  const sep = args.values["key-separator"];
  const batchSize = Math.max(1, Number(args.values.batch));
  let batch: { key?: string; value: string }[] = [];
  let sent = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    await call("POST", `/topics/${enc(name)}`, {
      format: "string",
      acks: args.values.acks,
      records: batch,
    });
    sent += batch.length;
    batch = [];
  };
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let rest = "";
  for await (const chunk of lines) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    for (const line of parts) {
      const i = sep === undefined ? -1 : line.indexOf(sep);
      batch.push(
        i < 0 ? { value: line } : { key: line.slice(0, i), value: line.slice(i + sep!.length) },
      );
      if (batch.length >= batchSize) await flush();
    }
  }
  if (rest !== "") batch.push({ value: rest });
  await flush();
  console.error(`${sent} records produced to ${name}`);
}

async function tail(name: string): Promise<void> {
  const t = await call("GET", `/topics/${enc(name)}`) as {
    partitions: { partition: number; log_start_offset: number; high_watermark: number }[];
  };
  const only = args.values.partition === undefined ? undefined : Number(args.values.partition);
  const parts = t.partitions.filter((p) => only === undefined || p.partition === only);
  const group = args.values.group;
  const committed = new Map<number, number>();
  if (group !== undefined) {
    const r = await call("GET", `/consumers/${enc(group)}/offsets?topic=${enc(name)}`) as {
      offsets: { partition: number; offset: number }[];
    };
    for (const o of r.offsets) committed.set(o.partition, o.offset);
  }
  const from = args.values.from;
  const out = new TextEncoder();
  await Promise.all(parts.map(async (p) => {
    let offset = committed.get(p.partition) ??
      (from === "beginning"
        ? p.log_start_offset
        : from === "end"
        ? p.high_watermark
        : Number(from));
    while (true) {
      const r = await call(
        "GET",
        `/topics/${enc(name)}/partitions/${p.partition}/records?format=string&offset=${offset}` +
          `&max_wait_ms=${args.values.once ? 0 : 10_000}`,
      ) as {
        records: { offset: number; key: string | null; value: string | null }[];
        next_offset: number;
      };
      let text = "";
      for (const rec of r.records) {
        text += `${p.partition}\t${rec.offset}\t${rec.key ?? ""}\t${rec.value ?? ""}\n`;
      }
      if (text !== "") await Deno.stdout.write(out.encode(text));
      if (group !== undefined && r.next_offset !== offset) {
        await call("POST", `/consumers/${enc(group)}/offsets`, {
          offsets: [{ topic: name, partition: p.partition, offset: r.next_offset }],
        });
      }
      const moved = r.next_offset !== offset;
      offset = r.next_offset;
      if (args.values.once && !moved) return;
    }
  }));
}

try {
  switch (command) {
    case "topics":
      for (
        const t
          of (await call("GET", "/topics") as { topics: { name: string; partitions: number }[] })
            .topics
      ) {
        console.log(`${t.name}\t${t.partitions}`);
      }
      break;
    case "create":
      console.log(JSON.stringify(
        await call("POST", "/topics", {
          name: need(topic, "topic"),
          partitions: Number(args.values.partitions),
          config: configPairs(args.values.config),
        }),
        null,
        2,
      ));
      break;
    case "describe":
      console.log(
        JSON.stringify(await call("GET", `/topics/${enc(need(topic, "topic"))}`), null, 2),
      );
      break;
    case "delete":
      await call("DELETE", `/topics/${enc(need(topic, "topic"))}`);
      break;
    case "produce":
      await produce(need(topic, "topic"));
      break;
    case "tail":
      await tail(need(topic, "topic"));
      break;
    default:
      console.error("usage: log:cli topics|create|describe|delete|produce|tail ... (see cli.ts)");
      Deno.exit(2);
  }
} catch (e) {
  console.error((e as Error).message);
  Deno.exit(1);
}
