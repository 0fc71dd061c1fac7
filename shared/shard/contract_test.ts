import { type ContainerFactory, shardContainerContract } from "./_contract_test_suite.ts";
import { ShardMap } from "./shard_map.ts";
import { SharedShardTable } from "./shared_table.ts";

const shardMap: ContainerFactory = (shardCount = 64) => new ShardMap<Uint8Array>(shardCount);

const sharedTable: ContainerFactory = (shardCount = 64) =>
  SharedShardTable.create({
    shardCount,
    slotsPerShard: 1024,
    arenaBytes: 16 * 2 ** 20,
    arenaInitialBytes: 4096,
  });

shardContainerContract("ShardMap", shardMap);
shardContainerContract("SharedShardTable", sharedTable);
