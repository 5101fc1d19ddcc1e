import net from "node:net";
import fs from "node:fs";

const O_PATH = 0o10000000;

/**
 * Connects to a unix socket without following a symlink at its last
 * component: the socket lives in a directory the sandbox can write, and a
 * sandbox that swapped it for a symlink to a host socket would otherwise
 * make the host talk to that socket (a confused deputy). The path is opened
 * O_PATH|O_NOFOLLOW, checked to be a socket, and connected to through
 * /proc/self/fd.
 */
export function connectUnixNoFollow(path: string): Promise<net.Socket> {
  let fd: number;
  try {
    fd = fs.openSync(path, O_PATH | fs.constants.O_NOFOLLOW);
  } catch (e) {
    return Promise.reject(e);
  }
  try {
    if (!fs.fstatSync(fd).isSocket()) {
      return Promise.reject(Object.assign(new Error(`${path} is not a socket`), { code: "ENOTSOCK" }));
    }
    return new Promise((resolve, reject) => {
      const s = net.connect(`/proc/self/fd/${fd}`);
      s.once("connect", () => {
        s.removeListener("error", reject);
        resolve(s);
      });
      s.once("error", reject);
    }).finally(() => fs.closeSync(fd)) as Promise<net.Socket>;
  } catch (e) {
    fs.closeSync(fd);
    return Promise.reject(e);
  }
}
