import { test } from "node:test";
import assert from "node:assert/strict";
import { nixError } from "./nix-command.js";

// nix-build 2.8's stderr for a file with a missing ';' (bad.nix line 2).
const SYNTAX = `error: syntax error, unexpected '=', expecting ';'

       at /tmp/bad.nix:3:5:

            2|   a = 1
            3|   b = 2;
             |     ^
            4| in a
`;

test("a Nix error keeps its error: line and where it is", () => {
  assert.equal(nixError(SYNTAX), SYNTAX.trim());
});

test("a failed build keeps the builder's last lines before Nix's error, not Nix's progress", () => {
  const failed = `this derivation will be built:
  /nix/store/nsp0zlr3kznvfaf4j0fsg5880s92vy5d-fail.drv
building '/nix/store/nsp0zlr3kznvfaf4j0fsg5880s92vy5d-fail.drv'...
one
deliberate failure
error: builder for '/nix/store/nsp0zlr3kznvfaf4j0fsg5880s92vy5d-fail.drv' failed with exit code 3
`;
  assert.equal(nixError(failed), "one\ndeliberate failure\nerror: builder for '/nix/store/nsp0zlr3kznvfaf4j0fsg5880s92vy5d-fail.drv' failed with exit code 3");
  const chatty = `${Array.from({ length: 30 }, (_, i) => `out ${i}`).join("\n")}\nerror: builder failed\n`;
  assert.equal(nixError(chatty), `${Array.from({ length: 10 }, (_, i) => `out ${i + 20}`).join("\n")}\nerror: builder failed`);
});

test("bounded: 20 lines and 2000 characters at most; the last lines when there is no error: line", () => {
  assert.equal(nixError(`error: a\n${"x\n".repeat(100)}`).split("\n").length, 20);
  assert.equal(nixError(`error: ${"y".repeat(5000)}`).length, 2001);
  assert.equal(nixError(`${"line\n".repeat(40)}last`).split("\n").length, 20);
  assert.equal(nixError("\x1b[31;1merror:\x1b[0m colored"), "error: colored");
});
