import assert from "node:assert/strict";
import { ConfigError } from "@deno-stores/shared/config";
import { loadMetastoreConfig, memberIdFor, parseInitialCluster } from "./config.ts";

Deno.test("loadMetastoreConfig applies etcd-like defaults", () => {
  const c = loadMetastoreConfig({});
  assert.equal(c.PORT, 2379);
  assert.equal(c.PEER_PORT, 2380);
  assert.equal(c.INITIAL_CLUSTER_STATE, "new");
  assert.equal(c.SNAPSHOT_COUNT, 100_000);
  assert.equal(c.MAX_REQUEST_BYTES, 1_572_864);
  assert.equal(c.INITIAL_CLUSTER, undefined);
});

Deno.test("loadMetastoreConfig parses INITIAL_CLUSTER and rejects bad values", () => {
  const c = loadMetastoreConfig({
    NAME: "m2",
    INITIAL_CLUSTER: "m1=http://127.0.0.1:12380/,m2=http://127.0.0.1:22380",
  });
  assert.deepEqual(c.INITIAL_CLUSTER, [
    { name: "m1", peerUrl: "http://127.0.0.1:12380" },
    { name: "m2", peerUrl: "http://127.0.0.1:22380" },
  ]);
  for (
    const bad of [
      { INITIAL_CLUSTER: "m1" },
      { INITIAL_CLUSTER: "m1=notaurl" },
      { INITIAL_CLUSTER: "m1=https://x:1" },
      { INITIAL_CLUSTER: "m1=http://a:1,m1=http://b:2" },
      { INITIAL_CLUSTER: "," },
      { INITIAL_CLUSTER_STATE: "maybe" },
      { HEARTBEAT_INTERVAL_MS: "100", ELECTION_TIMEOUT_MS: "200" },
      { PEER_PORT: "70000" },
    ]
  ) {
    assert.throws(() => loadMetastoreConfig(bad), ConfigError, JSON.stringify(bad));
  }
  assert.throws(() => parseInitialCluster("=http://a:1"), /name=url/);
});

Deno.test("memberIdFor is stable, distinct per name and token, and a positive safe integer", () => {
  const a = memberIdFor("t", "m1");
  assert.equal(a, memberIdFor("t", "m1"));
  assert.notEqual(a, memberIdFor("t", "m2"));
  assert.notEqual(a, memberIdFor("u", "m1"));
  for (const n of ["", "x", "a-long-member-name-0123456789"]) {
    const id = memberIdFor("tok", n);
    assert.ok(Number.isSafeInteger(id) && id > 0);
  }
});
