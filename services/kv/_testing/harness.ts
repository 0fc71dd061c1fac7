/**
 * Runs commands in process, as a connection would, and decodes the replies: the command tests'
 * harness. Time is a manual clock; randomness a seeded generator.
 *
 * @module
 */
import { ALL_COMMANDS } from "../commands/mod.ts";
import { type Client, Engine, type EngineConfig } from "../engine.ts";
import { type Reply, ReplyReader } from "../reply.ts";
import { RespWriter } from "../resp.ts";
import { Prng } from "@deno-stores/shared/sim";

/** A connection of the harness. */
export interface Conn {
  client: Client;
  /** Runs a command; its decoded reply. */
  cmd(...args: (string | number)[]): Reply;
}

export interface Harness extends Conn {
  engine: Engine;
  /** Moves the clock. */
  advance(ms: number): void;
  now(): number;
  /** Another connection to the same engine. */
  connect(): Conn;
}

export function harness(config: Partial<EngineConfig> = {}): Harness {
  let t = 1_700_000_000_000;
  const rng = new Prng(42);
  const random = () => rng.next();
  const engine = new Engine(ALL_COMMANDS, {
    config,
    now: () => t,
    random,
    onInternalError: (e) => {
      throw e;
    },
  });
  const connect = (): Conn => {
    const client = engine.connect("test", "test");
    const out = new RespWriter();
    const reader = new ReplyReader();
    return {
      client,
      cmd(...args) {
        out.reset();
        engine.execute(client, args.map(String), out);
        reader.push(out.bytes());
        const r = reader.next();
        if (r === undefined) throw new Error(`no reply to ${args.join(" ")}`);
        if (reader.next() !== undefined) throw new Error(`two replies to ${args.join(" ")}`);
        return r;
      },
    };
  };
  const first = connect();
  return {
    ...first,
    engine,
    advance: (ms) => (t += ms),
    now: () => t,
    connect,
  };
}
