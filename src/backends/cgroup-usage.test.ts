import { test } from "node:test";
import assert from "node:assert/strict";
import { cgroupUsage, type CgroupCounters } from "./cgroup-usage.js";

const counters: CgroupCounters = {
  cpuNanos: async () => 11,
  memoryBytes: async () => 22,
  pids: async () => 33,
  oomKills: async () => 44,
};

test("a sample is the cgroup's four counters", async () => {
  assert.deepEqual(await cgroupUsage(counters), { cpuNanos: 11, memoryBytes: 22, pids: 33, oomKills: 44 });
});

test("another count of processes, where given, stands for the cgroup's", async () => {
  assert.deepEqual(await cgroupUsage(counters, Promise.resolve(5)), { cpuNanos: 11, memoryBytes: 22, pids: 5, oomKills: 44 });
  assert.equal((await cgroupUsage(counters, undefined)).pids, 33, "undefined: the cgroup's");
});
