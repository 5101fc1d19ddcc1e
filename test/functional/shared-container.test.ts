// The shared backend cases (shared/sandbox-cases.ts) on a container.
import { sandboxCases } from "./shared/sandbox-cases.js";

sandboxCases("container");
