/**
 * The benchmark page renders: its charts and table are in the HTML, and headless Chromium (when
 * installed: `apt-get install chromium`) lays it out into a screenshot that is not blank.
 */
import assert from "node:assert/strict";
import { latencyChart, ratioChart, type RatioRow, renderHtml } from "./benchmarks_doc.ts";

const rows: RatioRow[] = [
  {
    service: "kv",
    measure: "SET ops/s",
    ours: "90,000",
    peer: "80,000 (Redis)",
    ratio: 1.125,
    better: "higher",
    date: "2026-12-01",
    latency: { ours: { p50: 0.3, p99: 1.1 }, peer: { p50: 0.35, p99: 0.7 } },
  },
  {
    service: "log",
    measure: "fetch <MB/s> & more",
    ours: "9,000",
    peer: "10,000 (dd read)",
    ratio: 0.9,
    better: "higher",
    date: "2026-12-01",
  },
];

Deno.test("benchmarks page: charts, escaped labels, every row in the table", () => {
  const html = renderHtml(rows, "2 cores");
  assert.equal((html.match(/<svg /g) ?? []).length, 2);
  assert.match(ratioChart(rows), /1\.13x/);
  assert.match(ratioChart(rows), /0\.90x/);
  // Only rows with latency figures are in the latency chart.
  assert.match(latencyChart(rows), /kv: SET ops\/s/);
  assert.doesNotMatch(latencyChart(rows), /log: fetch/);
  assert.match(html, /fetch &lt;MB\/s&gt; &amp; more/);
  assert.doesNotMatch(html, /<MB\/s>/);
  assert.equal((html.match(/<tr><td>/g) ?? []).length, 2);
  assert.doesNotMatch(html, /<script/);
});

async function chromium(): Promise<string | null> {
  for (const c of ["chromium", "chromium-browser", "google-chrome"]) {
    const out = await new Deno.Command("sh", { args: ["-c", `command -v ${c}`], stdout: "piped" })
      .output().catch(() => null);
    if (out?.success) return new TextDecoder().decode(out.stdout).trim();
  }
  return null;
}

// Without Chromium the test is reported as ignored, not passed.
const bin = await chromium();

Deno.test({
  name: "benchmarks page: headless Chromium renders it to a screenshot that is not blank",
  ignore: bin === null,
  fn: async () => {
    if (bin === null) return;
    await screenshot(bin);
  },
});

async function screenshot(bin: string): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bench-page-" });
  try {
    await Deno.writeTextFile(`${dir}/page.html`, renderHtml(rows, "2 cores"));
    const flags = ["--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars"];
    const shot = await new Deno.Command(bin, {
      args: [
        ...flags,
        "--window-size=1000,900",
        `--screenshot=${dir}/page.png`,
        `file://${dir}/page.html`,
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    assert.ok(shot.success, "chromium --screenshot failed");
    const png = await Deno.readFile(`${dir}/page.png`);
    // A PNG of the window's size (IHDR right after the signature).
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
    const view = new DataView(png.buffer, png.byteOffset);
    assert.equal(view.getUint32(16), 1000);
    assert.equal(view.getUint32(20), 900);
    // A blank page compresses to a few hundred bytes; charts, text and a table do not.
    assert.ok(png.length > 10_000, `screenshot of ${png.length} bytes`);
    // The laid-out page still holds both charts and the table.
    const dom = await new Deno.Command(bin, {
      args: [...flags, "--dump-dom", `file://${dir}/page.html`],
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(dom.stdout);
    assert.equal((text.match(/<svg /g) ?? []).length, 2);
    assert.match(text, /Throughput against the peers/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
