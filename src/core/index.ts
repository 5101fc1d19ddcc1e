export * from "./errors.js";
export * from "./size.js";
export * from "./sandbox-spec.js";
