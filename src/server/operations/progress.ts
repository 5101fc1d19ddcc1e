import { toHttpError } from "../http-errors.js";
import type { EventSink, EventStream } from "./types.js";

/**
 * The events of a long task (a template build or import): `progress`
 * events as it reports them, then `done` with its result or `error`. The
 * task starts when the transport is ready for its events. Progress events
 * are few and small (one per phase or layer, a few a second at most), so
 * the task is not paused for a slow reader; a caller that leaves does not
 * stop it either (a half-built template would be of no use to anyone).
 */
export function progressEvents(task: (progress: (p: object) => void) => Promise<Record<string, unknown>>): EventStream {
  let sink: EventSink | undefined;
  let started = false;
  const run = () => {
    started = true;
    task((p) => sink?.event({ type: "progress", ...p })).then(
      (result) => sink?.end({ type: "done", ...result }),
      (e: unknown) => sink?.end({ type: "error", error: toHttpError(e).body.error }),
    );
  };
  return {
    start(s) {
      sink = s;
      if (!started) run();
    },
    pause() {},
    resume() {},
    cancel() {
      sink = undefined;
      if (!started) run(); // it owns what the request left it (an uploaded archive)
    },
  };
}
