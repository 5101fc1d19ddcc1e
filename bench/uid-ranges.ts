// node dist/bench/uid-ranges.js: what a sandbox's own uid range costs on
// the create path. The container backend's create (corral-launch, crun,
// the agent's ready) of the same busybox request, interleaved: once on the
// store's range (the plain overlay, as before ranges) and once on a range
// of its own (the layers id-mapped: a user namespace, open_tree +
// mount_setattr + move_mount per layer, a tmpfs). Then the whole cold
// create and a warm pool claim through the runtime. Prints p50/p90 in ms.
import fsp from "node:fs/promises";
import path from "node:path";
import { parseSpec } from "../src/core/sandbox-spec.js";
import { rangeBase } from "../src/runtime/uid-ranges.js";
import { percentile, timeInterleaved, timeRuns } from "./stats.js";
import { benchState } from "./state.js";

const N = Number(process.env["CORRAL_BENCH_RUNS"] ?? 40);

async function main(): Promise<void> {
  const { s, dispose } = await benchState("uid-ranges");
  try {
    await s.store.ensureTemplate("busybox");
    const layers = await s.store.templateLayerDirs("busybox");
    const backend = s.backend("container");
    const spec = parseSpec({ template: "busybox" });
    let k = 0;
    const once = async (uidBase: number | undefined) => {
      const id = `bench${(k++).toString(16).padStart(11, "0")}`;
      const dir = path.join(s.stateDir, "sandboxes", id);
      await fsp.mkdir(dir, { mode: 0o711 });
      const t0 = performance.now();
      const h = await backend.create({ id, spec, hostname: "bench", layers, dir, ...(uidBase === undefined ? {} : { uidBase }) });
      const ms = performance.now() - t0;
      await h.destroy();
      return ms;
    };
    const shared: number[] = [];
    const own: number[] = [];
    await timeInterleaved(N, {
      shared: async () => shared.push(await once(undefined)),
      own: async () => own.push(await once(rangeBase(s.uidBase, 7))),
    });
    const cold = await timeRuns(N, async () => s.destroy((await s.create({ template: "busybox" })).id));
    s.pools.set("busybox", {}, 1);
    const claim: number[] = [];
    for (let i = 0; i < Math.min(N, 20); i++) {
      await s.refillPools();
      const t0 = performance.now();
      const sb = await s.create({ template: "busybox" });
      claim.push(performance.now() - t0);
      await s.destroy(sb.id);
    }
    const row = (name: string, xs: number[]) => `| ${name} | ${percentile(xs, 50).toFixed(1)} | ${percentile(xs, 90).toFixed(1)} | ${xs.length} |`;
    console.log("| what | p50 ms | p90 ms | runs |\n|---|---|---|---|");
    console.log(row("backend create, shared range (plain overlay)", shared.slice(-N)));
    console.log(row("backend create, own range (id-mapped layers)", own.slice(-N)));
    console.log(row("cold create→destroy (runtime, own range)", cold));
    console.log(row("warm pool claim (runtime)", claim));
    s.pools.set("busybox", {}, 0);
    await s.refillPools();
  } finally {
    await dispose();
  }
}

await main();
