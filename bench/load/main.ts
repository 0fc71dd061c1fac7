/**
 * Load runner CLI. `deno run -A bench/load/main.ts <scenario> [--url ...]
 * [--storage memory] [--out dir] [--scale 0.1]`; see README.md.
 *
 * Exit codes as k6: 0 all thresholds passed, 99 a threshold failed, 1 error.
 *
 * @module
 */
import { parseArgs, reportCommand, runCommand, USAGE } from "./cli.ts";
import { SCENARIOS } from "./scenarios/mod.ts";

async function main(): Promise<number> {
  const args = parseArgs(Deno.args);
  const log = (line: string) => console.error(line);
  if (args.command === "help") {
    console.log(USAGE);
    return 0;
  }
  if (args.command === "list") {
    for (const s of SCENARIOS) {
      const scenario = s.build({});
      console.log(`${s.name.padEnd(20)} ${scenario.description}`);
    }
    return 0;
  }
  if (args.command === "report") {
    const outcome = await reportCommand(args);
    console.log(outcome.files.join("\n"));
    return 0;
  }
  const stop = new AbortController();
  let interrupts = 0;
  const onInterrupt = () => {
    interrupts++;
    if (interrupts === 1) {
      log("stopping gracefully (Ctrl-C again to quit at once) ...");
      stop.abort();
    } else {
      Deno.exit(130);
    }
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    const outcome = await runCommand(args, stop.signal, log);
    for (const file of outcome.files) console.log(file);
    if (outcome.summaries.some((s) => s.meta.setupError !== undefined)) {
      return 1;
    }
    return outcome.ok ? 0 : 99;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    Deno.exit(1);
  }
}
