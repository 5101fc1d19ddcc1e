import assert from "node:assert/strict";
import { test } from "node:test";
import { unsigned } from "./initrd.js";

/** A module as kbuild's sign-file leaves it: ELF, PKCS#7 blob, struct module_signature, the mark. */
function signedModule(elf: Buffer, sig: Buffer): Buffer {
  const info = Buffer.alloc(12);
  info[2] = 2; // id_type PKEY_ID_PKCS7
  info.writeUInt32BE(sig.length, 8);
  return Buffer.concat([elf, sig, info, Buffer.from("~Module signature appended~\n")]);
}

test("unsigned drops a module's appended signature and keeps the module", () => {
  const elf = Buffer.concat([Buffer.from("\x7fELF"), Buffer.alloc(200, 7)]);
  assert.deepEqual(unsigned(signedModule(elf, Buffer.alloc(530, 1))), elf);
});

test("unsigned leaves an unsigned or malformed module as it is", () => {
  const elf = Buffer.concat([Buffer.from("\x7fELF"), Buffer.alloc(64, 3)]);
  assert.deepEqual(unsigned(elf), elf);
  // A signature length longer than the file: not a signature to trust the framing of.
  const bogus = signedModule(Buffer.alloc(0), Buffer.alloc(0));
  bogus.writeUInt32BE(1 << 20, bogus.length - 28 - 4);
  assert.deepEqual(unsigned(bogus), bogus);
});
