import assert from "node:assert/strict";
import { startEtcdCluster } from "../../bench/lib/etcd_cluster.ts";
import { have } from "../../bench/lib/process.ts";
import { type Answer, differences, GOLDEN, runAll } from "./conformance.ts";

function assertSame(ours: Answer[], theirs: Answer[], what: string): void {
  const d = differences(theirs, ours);
  assert.equal(
    d.length,
    0,
    `${d.length} answers differ from ${what}:\n` +
      d.map((x) => `${x.name}\n  etcd: ${JSON.stringify(x.a)}\n  ours: ${JSON.stringify(x.b)}`)
        .join("\n"),
  );
}

Deno.test("conformance: a fresh metastore answers the sequence exactly as etcd 3.4.23 did", async () => {
  const golden: Answer[] = JSON.parse(await Deno.readTextFile(GOLDEN));
  assert.ok(golden.length >= 50, "the golden file holds the whole sequence");
  const ours = await startEtcdCluster("metastore", 1);
  try {
    assertSame(await runAll(ours.members[0].clientUrl), golden, "the recorded etcd answers");
  } finally {
    await ours.stop();
  }
});

Deno.test({
  name: "conformance: the metastore and a live etcd answer the sequence alike",
  ignore: !(await have("etcd")),
  async fn() {
    const [etcd, ours] = await Promise.all([
      startEtcdCluster("etcd", 1),
      startEtcdCluster("metastore", 1),
    ]);
    try {
      const [theirs, mine] = await Promise.all([
        runAll(etcd.members[0].clientUrl),
        runAll(ours.members[0].clientUrl),
      ]);
      assert.ok(theirs.length >= 50);
      assertSame(mine, theirs, `etcd on this machine`);
    } finally {
      await Promise.all([etcd.stop(), ours.stop()]);
    }
  },
});
