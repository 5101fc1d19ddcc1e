# corral's identity functions, the same as src/backends/vm/identity.ts:
# a sandbox's MAC, vsock CID and tap name come from its name alone, so a
# NixOS configuration can know them (for /etc/hosts, a DHCP reservation,
# firewall rules) before the daemon has made the sandbox. A parity test
# (test/functional/nix-lib.test.ts) compares both over 100 names.
{ lib }:
let
  # The SHA-256 of the name (salted past a collision), as hex.
  digest = name: salt: builtins.hashString "sha256" (if salt == 0 then name else "${name}#${toString salt}");

  # Byte i of a hex digest, as two hex digits.
  byteHex = h: i: builtins.substring (2 * i) 2 h;

  identityWith = name: salt:
    let
      h = digest name salt;
    in
    {
      # Locally administered unicast: 02 then the digest's first 5 bytes.
      mac = lib.concatStringsSep ":" ([ "02" ] ++ map (byteHex h) (lib.range 0 4));
      # 100 + the first 24 bits (vsock CIDs 0-2 are reserved).
      cid = 100 + lib.fromHexString (builtins.substring 0 6 h);
      # At most 15 characters (IFNAMSIZ - 1).
      tap = "cr${builtins.substring 0 13 h}";
    };
in
rec {
  # { mac, cid, tap } of a sandbox named `name` (identity.ts vmIdentity(name)).
  identity = name: identityWith name 0;

  # The same with a salt (vmIdentity(name, salt)): the step past a collision.
  identityWithSalt = identityWith;

  # name -> identity for a set of names, collisions resolved as
  # identity.ts assignIdentities does: names in sorted order, a name whose
  # MAC, CID or tap is taken tries salt 1, 2, ...
  assignIdentities = names:
    let
      step = acc: name:
        let
          free = id: !(acc.macs ? ${id.mac} || acc.cids ? ${toString id.cid} || acc.taps ? ${id.tap});
          pick = salt: let id = identityWith name salt; in if free id then id else pick (salt + 1);
          id = pick 0;
        in
        {
          out = acc.out // { ${name} = id; };
          macs = acc.macs // { ${id.mac} = true; };
          cids = acc.cids // { ${toString id.cid} = true; };
          taps = acc.taps // { ${id.tap} = true; };
        };
    in
    (builtins.foldl' step { out = { }; macs = { }; cids = { }; taps = { }; } (lib.sort lib.lessThan (lib.unique names))).out;
}
