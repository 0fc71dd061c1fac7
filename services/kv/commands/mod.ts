/**
 * Every command the server knows.
 *
 * @module
 */
import type { Command } from "../engine.ts";
import { HASH_COMMANDS } from "./hashes.ts";
import { KEY_COMMANDS } from "./keys.ts";
import { LIST_COMMANDS } from "./lists.ts";
import { SERVER_COMMANDS } from "./server.ts";
import { SET_COMMANDS } from "./sets.ts";
import { STRING_COMMANDS } from "./strings.ts";
import { ZSET_COMMANDS } from "./zsets.ts";

export const ALL_COMMANDS: readonly Command[] = [
  ...STRING_COMMANDS,
  ...KEY_COMMANDS,
  ...LIST_COMMANDS,
  ...HASH_COMMANDS,
  ...SET_COMMANDS,
  ...ZSET_COMMANDS,
  ...SERVER_COMMANDS,
];
