// `node --import <this file>`: appends the URL of every file module the
// process loads to the file $CORRAL_MODULE_LOG, one a line (a module
// loader hook, run in the loader's own thread).
import { register } from "node:module";

register("./module-log-hooks.js", import.meta.url);
