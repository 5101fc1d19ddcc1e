import fs from "node:fs";
import path from "node:path";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** The key's file in the state dir (0600, made on first use). */
export const TOKEN_KEY_FILE = "e2b-token.key";

/**
 * E2B's `envdAccessToken`: what the SDK sends as X-Access-Token on every
 * request to a sandbox's daemon, and all that authorizes them (they carry
 * no API key). corral's is HMAC-SHA256 of the sandbox id under a key kept
 * in the state dir, so nothing per sandbox is stored, a restarted daemon
 * checks the same tokens, and a token opens its own sandbox only (ids are
 * random and never reused).
 */
export class AccessTokens {
  private constructor(private readonly key: Buffer) {}

  /** The state dir's key, made (32 random bytes) if it has none yet. */
  static forStateDir(stateDir: string): AccessTokens {
    const file = path.join(stateDir, TOKEN_KEY_FILE);
    try {
      fs.writeFileSync(file, randomBytes(32), { flag: "wx", mode: 0o600 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const key = fs.readFileSync(file);
    if (key.length < 32) throw new Error(`${file} is shorter than 32 bytes: remove it (every E2B access token changes) and start again`);
    return new AccessTokens(key);
  }

  tokenOf(sandboxId: string): string {
    return createHmac("sha256", this.key).update(`e2b-envd:${sandboxId}`).digest("base64url");
  }

  /** Constant-time: the comparison does not tell how much of a guess was right. */
  valid(sandboxId: string, token: string | undefined): boolean {
    if (token === undefined) return false;
    const want = Buffer.from(this.tokenOf(sandboxId));
    const got = Buffer.from(token);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}
