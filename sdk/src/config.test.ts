import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_API_URL, DEFAULT_REQUEST_TIMEOUT_MS, resolveConfig } from "./config.js";
import { AuthError, InvalidArgumentError } from "./errors.js";

describe("resolveConfig", () => {
  it("prefers arguments, then the environment, then defaults", () => {
    const env = { CORRAL_API_URL: "http://env:1/", CORRAL_API_KEY: "crl_env" };
    assert.deepEqual(resolveConfig({ apiUrl: "http://arg:2", apiKey: "crl_arg", requestTimeoutMs: 5 }, env), {
      apiUrl: "http://arg:2",
      apiKey: "crl_arg",
      requestTimeoutMs: 5,
      transport: "auto",
    });
    assert.deepEqual(resolveConfig({}, env), { apiUrl: "http://env:1", apiKey: "crl_env", requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS, transport: "auto" });
    assert.equal(resolveConfig({ apiKey: "k" }, { CORRAL_TRANSPORT: "http" }).transport, "http");
    assert.equal(resolveConfig({ apiKey: "k", transport: "auto" }, { CORRAL_TRANSPORT: "http" }).transport, "auto");
    assert.equal(resolveConfig({ apiKey: "k" }, {}).apiUrl, DEFAULT_API_URL);
  });

  it("throws AuthError without a key", () => {
    assert.throws(() => resolveConfig({}, {}), (e: unknown) => e instanceof AuthError && e.code === "missing_api_key" && /CORRAL_API_KEY/.test(e.message));
    assert.throws(() => resolveConfig({ apiKey: "" }, { CORRAL_API_KEY: "" }), AuthError);
  });

  it("refuses a negative request timeout and an unknown transport", () => {
    assert.throws(() => resolveConfig({ apiKey: "k", requestTimeoutMs: -1 }, {}), InvalidArgumentError);
    assert.throws(() => resolveConfig({ apiKey: "k", transport: "carrier-pigeon" as "http" }, {}), InvalidArgumentError);
  });
});
