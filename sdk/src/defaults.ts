/**
 * The template a sandbox starts from when none is named, here and in the
 * `corral` CLI (which imports this constant). busybox, not debian: it is
 * built from the host's busybox in about a second and offline, so a first
 * `Sandbox.create()` or `corral run -- echo hi` answers at once; debian
 * (python3, apt) takes ~40 s and Debian's mirrors to build the first time,
 * longer than the SDK's default request timeout. Ask for it by name.
 * No imports: the CLI loads this file on every run.
 */
export const DEFAULT_TEMPLATE = "busybox";
