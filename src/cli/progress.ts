import cliProgress from "cli-progress";
import type { BuildProgress, ProgressFn } from "../store/builders/builder.js";
import { formatSize } from "../core/index.js";

/**
 * Shows template build progress on stderr: a bar (with bytes when the step
 * reports them) on a terminal, one line per step otherwise (CI logs). Returns the callback and a finisher.
 */
export function buildProgress(label: string): { onProgress: ProgressFn; done(): void } {
  if (!process.stderr.isTTY) {
    let last = "";
    return {
      onProgress: (p: BuildProgress) => {
        const line = `${label}: ${p.phase}${p.message ? ` - ${p.message}` : ""}`;
        if (line !== last) process.stderr.write(`${line}\n`);
        last = line;
      },
      done() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {percent}% {phase}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    onProgress: (p) => {
      if (!started) {
        bar.start(100, 0, { phase: "" });
        started = true;
      }
      const bytes = p.bytes !== undefined && p.totalBytes ? ` ${formatSize(p.bytes)}/${formatSize(p.totalBytes)}` : "";
      bar.update(p.percent ?? 0, { phase: `${p.message ?? p.phase}${bytes}` });
    },
    done: () => {
      if (started) bar.stop();
    },
  };
}

/** Runs `fn` with a progress display for template builds it may start. */
export async function withProgress<T>(template: string, fn: (onProgress: ProgressFn) => Promise<T>): Promise<T> {
  const p = buildProgress(`building template ${template}`);
  try {
    return await fn(p.onProgress);
  } finally {
    p.done();
  }
}
