import { test } from "node:test";
import assert from "node:assert/strict";
import { withoutDerivations } from "./nix-db-layer.js";

const OUT = "/nix/store/0dm64k4ay8jqqjf3hlxr9pjavgjiqccv-hello";
const DRV = "/nix/store/0mz9aj3w0zg400vz8c7n7ljpf4h4mh1q-hello.drv";
const BB = "/nix/store/r9zgkzc5zab416qddj283jlsvp18ydzr-busybox-static";

test("a registration keeps its outputs and drops the .drv files and references to them", () => {
  const reg = [BB, "f423", "1982568", "", "0", OUT, "8097", "648", DRV, "2", BB, DRV, DRV, "aaaa", "300", "", "1", BB, ""].join("\n");
  assert.equal(withoutDerivations(reg), [BB, "f423", "1982568", "", "0", OUT, "8097", "648", DRV, "1", BB, ""].join("\n"));
  assert.equal(withoutDerivations(""), "");
  assert.throws(() => withoutDerivations([OUT, "h", "1", "", "5", BB, ""].join("\n")), /should not have/);
});
