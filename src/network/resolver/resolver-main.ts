import fs from "node:fs";
import path from "node:path";
import { runCommand } from "../../host/command.js";
import { addResolved } from "../nft-rules.js";
import { netNames } from "../names.js";
import { Resolver } from "./resolver.js";

/**
 * The resolver process of one state dir: `node resolver-main.js NETDIR`.
 * Started detached by whichever corral process sets the state dir's
 * network up (networks.ts), so it outlives a CLI run and a daemon killed
 * with SIGKILL, as the sandboxes it serves do; stopped when the network is
 * taken down. It says "ready" on stdout once it listens, and exits by
 * itself once its state dir's network is gone (a starter killed between
 * the two).
 */
interface MainConfig {
  readonly stateDir: string;
  readonly listen: string;
  readonly upstream: string[];
}

const netDir = process.argv[2];
if (!netDir) {
  process.stderr.write("usage: resolver-main NETDIR\n");
  process.exit(2);
}
const configFile = path.join(netDir, "resolver-config.json");
const config = JSON.parse(fs.readFileSync(configFile, "utf8")) as MainConfig;
const names = netNames(config.stateDir);
const resolver = new Resolver({
  listen: config.listen,
  upstream: config.upstream,
  netDir,
  async record(slot, addresses, seconds) {
    await runCommand("nft", ["-f", "-"], { input: addResolved(names, slot, addresses, seconds) });
  },
});
process.on("SIGTERM", () => {
  resolver.close();
  process.exit(0);
});
resolver.listen().then(
  () => {
    process.stdout.write("ready\n");
    // Gone with its state dir's network, even if whoever took it down missed this process.
    setInterval(() => {
      if (!fs.existsSync(configFile)) process.exit(0);
    }, 1000).unref();
  },
  (e: Error) => {
    process.stderr.write(`corral resolver: cannot listen on ${config.listen}:53: ${e.message}\n`);
    process.exit(1);
  },
);
