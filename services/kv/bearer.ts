/**
 * Bearer-token checks shared by the HTTP API (app.ts) and KV Connect (kv_connect/routes.ts).
 *
 * @module
 */
const encoder = new TextEncoder();

/** The token of `Authorization: Bearer <token>` (scheme in any case), or undefined. */
export function bearer(req: Request): string | undefined {
  const auth = req.headers.get("authorization");
  if (auth === null) return undefined;
  const space = auth.indexOf(" ");
  if (space < 0 || auth.slice(0, space).toLowerCase() !== "bearer") return undefined;
  return auth.slice(space + 1).trim();
}

/**
 * A checker for one expected token ("" accepts any request): compares in time that does not
 * depend on where the bytes differ; the expected token is encoded once.
 */
export function tokenChecker(expected: string): (req: Request) => boolean {
  if (expected === "") return () => true;
  const want = encoder.encode(expected);
  return (req) => {
    const token = bearer(req);
    if (token === undefined) return false;
    const got = encoder.encode(token);
    let diff = got.length ^ want.length;
    for (let i = 0; i < want.length; i++) diff |= (got[i] ?? 0) ^ want[i];
    return diff === 0;
  };
}
