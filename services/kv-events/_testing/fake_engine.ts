/**
 * A stand-in vLLM engine for tests and benchmarks: `testdata/fake_vllm.py` (pyzmq PUB + replay
 * ROUTER) driven by commands on its stdin.
 *
 * @module
 */
import { freePort, onCpus } from "../../../bench/lib/process.ts";

/** Debian's python3, which has pyzmq and msgpack (the one on PATH may not). */
export const PYTHON = "/usr/bin/python3";

/** True when PYTHON can import zmq and msgpack. */
export function hasPyzmq(): Promise<boolean> {
  return new Deno.Command(PYTHON, { args: ["-c", "import zmq, msgpack"] }).output()
    .then((o) => o.success).catch(() => false);
}

/** One fake engine process; see fake_vllm.py for its commands. */
export class FakeEngine {
  readonly pubPort: number;
  readonly replayPort: number;
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #reader: ReadableStreamDefaultReader<string>;
  #buf = "";

  /**
   * `ports`: where it binds (free ports when absent); `cpus`: the CPUs it may run on (taskset),
   * all of this process's when absent.
   */
  constructor(topic: string, ports?: { pub: number; replay: number }, cpus?: readonly number[]) {
    this.pubPort = ports?.pub ?? freePort();
    this.replayPort = ports?.replay ?? freePort();
    const { cmd, args } = onCpus(cpus, PYTHON, [
      new URL("../testdata/fake_vllm.py", import.meta.url).pathname,
      String(this.pubPort),
      String(this.replayPort),
      topic,
    ]);
    this.#child = new Deno.Command(cmd, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#reader = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next line the engine prints ("ready", "published", "blasted SECONDS"). */
  async line(): Promise<string> {
    while (!this.#buf.includes("\n")) {
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("fake engine exited");
      this.#buf += value;
    }
    const i = this.#buf.indexOf("\n");
    const line = this.#buf.slice(0, i);
    this.#buf = this.#buf.slice(i + 1);
    return line;
  }

  async send(command: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(command + "\n"));
  }

  /** Asks the engine to quit; one that has not exited 5 s later is killed. */
  async stop(): Promise<void> {
    await this.send("quit").catch(() => {});
    await this.#writer.close().catch(() => {});
    await this.#reader.cancel().catch(() => {});
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    }, 5000);
    await this.#child.status;
    clearTimeout(timer);
  }
}
