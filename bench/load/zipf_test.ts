import assert from "node:assert/strict";
import { Prng } from "./prng.ts";
import { hotSpotKeys, type KeyPicker, parseKeyPicker, uniformKeys, zipfKeys } from "./zipf.ts";

function hotShare(picker: KeyPicker, draws: number, seed: number): number {
  const rng = new Prng(seed);
  const hot = Math.round(picker.size * 0.2);
  let inHot = 0;
  for (let i = 0; i < draws; i++) {
    const k = picker.pick(rng);
    assert.ok(k >= 0 && k < picker.size, `index ${k} out of range`);
    if (k < hot) inHot++;
  }
  return inHot / draws;
}

Deno.test("zipfKeys(s=1) sends about 80% of picks to the hottest 20% of keys", () => {
  const share = hotShare(zipfKeys(10_000, 1.0), 200_000, 11);
  // Exact share for n=10,000, s=1 is H(2000)/H(10000) ≈ 0.836.
  assert.ok(share > 0.8 && share < 0.87, `hot share ${share}`);
});

Deno.test("zipfKeys picks rank 1 about twice as often as rank 2", () => {
  const picker = zipfKeys(1_000, 1.0);
  const rng = new Prng(5);
  const counts = new Array(3).fill(0);
  for (let i = 0; i < 200_000; i++) {
    const k = picker.pick(rng);
    if (k < 3) counts[k]++;
  }
  const ratio = counts[0] / counts[1];
  assert.ok(ratio > 1.85 && ratio < 2.15, `ratio ${ratio}`);
});

Deno.test("hotSpotKeys(80/20) sends 80% of picks to 20% of keys", () => {
  const share = hotShare(hotSpotKeys(10_000, 0.2, 0.8), 200_000, 3);
  assert.ok(Math.abs(share - 0.8) < 0.01, `hot share ${share}`);
});

Deno.test("uniformKeys sends about 20% of picks to 20% of keys", () => {
  const share = hotShare(uniformKeys(10_000), 200_000, 4);
  assert.ok(Math.abs(share - 0.2) < 0.01, `hot share ${share}`);
});

Deno.test("parseKeyPicker reads distribution names", () => {
  assert.equal(parseKeyPicker("uniform", 10).label, "uniform");
  assert.equal(parseKeyPicker("zipf", 10).label, "zipf(s=1)");
  assert.equal(parseKeyPicker("zipf:1.2", 10).label, "zipf(s=1.2)");
  assert.equal(parseKeyPicker("hot:90/10", 10).label, "hotspot(90/10)");
  assert.throws(() => parseKeyPicker("pareto", 10));
  assert.throws(() => zipfKeys(0));
});
