import type { FastifyInstance } from "fastify";
import type { ServerContext } from "../context.js";

export const VERSION = "0.1.0";

export function healthRoutes(app: FastifyInstance, _ctx: ServerContext): void {
  app.get("/health", { config: { operationId: "health" } }, async () => ({ status: "ok", version: VERSION }));
}
