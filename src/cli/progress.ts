import type { BuildProgress, ProgressFn } from "../store/builders/builder.js";
import { formatSize } from "../core/size.js";

/**
 * Shows template build progress on stderr: a bar (with bytes when the step
 * reports them) on a terminal, one line per step otherwise (CI logs).
 * cli-progress is imported only for a terminal, and only once a build
 * reports progress: most commands never build.
 */
export function buildProgress(label: string): { onProgress: ProgressFn; done(): Promise<void> } {
  if (!process.stderr.isTTY) {
    let last = "";
    return {
      onProgress: (p: BuildProgress) => {
        const line = `${label}: ${p.phase}${p.message ? ` - ${p.message}` : ""}`;
        if (line !== last) process.stderr.write(`${line}\n`);
        last = line;
      },
      done: async () => {},
    };
  }
  let latest: BuildProgress | undefined;
  let bar: Promise<{ update(p: BuildProgress): void; stop(): void }> | undefined;
  const start = async () => {
    const { default: cliProgress } = await import("cli-progress");
    const b = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percent}% {phase}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
      cliProgress.Presets.shades_classic,
    );
    b.start(100, 0, { phase: "" });
    const update = (p: BuildProgress) => {
      const bytes = p.bytes !== undefined && p.totalBytes ? ` ${formatSize(p.bytes)}/${formatSize(p.totalBytes)}` : "";
      b.update(p.percent ?? 0, { phase: `${p.message ?? p.phase}${bytes}` });
    };
    if (latest) update(latest);
    return { update, stop: () => b.stop() };
  };
  return {
    onProgress: (p) => {
      latest = p;
      bar ??= start();
      void bar.then((b) => b.update(p), () => {});
    },
    done: async () => {
      if (bar) (await bar).stop();
    },
  };
}

/** Runs `fn` with a progress display for template builds it may start. */
export async function withProgress<T>(template: string, fn: (onProgress: ProgressFn) => Promise<T>): Promise<T> {
  const p = buildProgress(`building template ${template}`);
  try {
    return await fn(p.onProgress);
  } finally {
    await p.done();
  }
}
