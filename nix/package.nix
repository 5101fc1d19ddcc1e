# corral from this repository and its npm lockfile: the TypeScript built
# by tsc, the static C parts (agent, launcher, VM init) by musl-gcc.
# importNpmLock reads package-lock.json itself, so no dependency hash is
# kept here (each package's integrity is in the lockfile).
{ lib, buildNpmPackage, importNpmLock, nodejs_20, musl, python3, makeWrapper }:
buildNpmPackage {
  pname = "corral";
  version = (lib.importJSON ../package.json).version;
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json ../package-lock.json ../tsconfig.json
      ../src ../sdk ../api ../scripts ../bin ../bench ../test
    ];
  };
  nodejs = nodejs_20;
  npmDeps = importNpmLock { npmRoot = ../.; };
  npmConfigHook = importNpmLock.npmConfigHook;
  # better-sqlite3 compiles its addon with node-gyp.
  nativeBuildInputs = [ python3 musl makeWrapper ];
  env.CORRAL_CC = "${musl.dev}/bin/musl-gcc";
  npmBuildScript = "build";
  # The dev dependencies (tsc, openapi-typescript) are for the build only.
  npmPruneFlags = [ "--omit=dev" ];
  meta = {
    description = "Self-hosted sandboxes for AI coding agents and untrusted code: containers and microVMs";
    license = lib.licenses.asl20;
    mainProgram = "corral";
    platforms = [ "x86_64-linux" ];
  };
}
