import assert from "node:assert/strict";
import { createIdGenerator, ID_CHARS, isTaskId } from "./ids.ts";
import { seededRandom30 } from "./_testing.ts";

Deno.test("createIdGenerator makes well-formed ids that sort in creation order", () => {
  const ids = createIdGenerator(seededRandom30(7));
  const made: string[] = [];
  let now = 1_700_000_000_000;
  for (let i = 0; i < 5_000; i++) {
    if (i % 100 === 0) now += 1;
    made.push(ids.next(now));
  }
  assert.ok(made.every((id) => id.length === ID_CHARS && isTaskId(id)));
  assert.deepEqual([...made].sort(), made);
  assert.equal(new Set(made).size, made.length);
});

Deno.test("createIdGenerator stays ordered when the clock steps back", () => {
  const ids = createIdGenerator(seededRandom30(8));
  const a = ids.next(2_000);
  const b = ids.next(1_000);
  assert.ok(b > a);
});

Deno.test("isTaskId rejects junk", () => {
  for (const junk of ["", "abc", "ABCDEFGHJKMNPQRS", "0000000000000000x", "iiiiiiiiiiiiiiii"]) {
    assert.equal(isTaskId(junk), false, junk);
  }
});
