import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { listedConfig } from "./process-join.js";

const info = (argv: string[]) => ({ pid: 5, argv, cwd: "/home/user", tag: null, pty: false, keepAlive: true, detached: false, truncated: false });

describe("E2B process listing", () => {
  it("describes a command this corrald did not start by its argv, without the setpriv that ran it as its user", () => {
    assert.deepEqual(listedConfig(info(["setpriv", "--reuid=1000", "--regid=1000", "--init-groups", "--", "/bin/bash", "-l", "-c", "sleep 9"]), undefined), {
      cmd: "/bin/bash",
      args: ["-l", "-c", "sleep 9"],
      envs: {},
      cwd: "/home/user",
    });
    assert.deepEqual(listedConfig(info(["/bin/bash", "-i", "-l"]), undefined).args, ["-i", "-l"]);
    assert.deepEqual(listedConfig(info([]), undefined).cmd, "");
  });

  it("prefers this corrald's record of a command it started (it has the environment)", () => {
    const known = { cmd: "/bin/bash", args: ["-l", "-c", "x"], envs: { A: "1" }, cwd: undefined };
    assert.equal(listedConfig(info(["setpriv", "--", "/bin/bash"]), known), known);
  });
});
