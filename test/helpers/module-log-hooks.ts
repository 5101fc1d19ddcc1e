import fs from "node:fs";

type Next = (url: string, context: unknown) => Promise<unknown>;

/** The loader hook module-log.ts registers. */
export async function load(url: string, context: unknown, next: Next): Promise<unknown> {
  const log = process.env["CORRAL_MODULE_LOG"];
  if (log && url.startsWith("file:")) fs.appendFileSync(log, `${url}\n`);
  return next(url, context);
}
