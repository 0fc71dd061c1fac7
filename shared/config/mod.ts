/**
 * Environment configuration parsed with zod. A bad value stops start-up with a
 * {@link ConfigError} naming the variable.
 *
 * Conventions for every service: `PORT` and `HOST` for the HTTP server,
 * `DATA_DIR` where it keeps data, other ports named after their protocol
 * (`RESP_PORT`, `PEER_PORT`, ...).
 *
 * @module
 */
export {
  bool,
  ConfigError,
  type Env,
  host,
  httpEnvShape,
  int,
  parseEnv,
  port,
  startOrExit,
} from "./config.ts";
