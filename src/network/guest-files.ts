/**
 * /etc/hosts of a networked sandbox: loopback, and its own name at its
 * address (what corral-init's guest-net.c writes in a VM at boot).
 */
export function hostsFile(address: string, hostname: string): string {
  return `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${address}\t${hostname}\n`;
}

/** /etc/resolv.conf of a networked sandbox: corral's resolver only. */
export function resolvConf(dns: string): string {
  return `nameserver ${dns}\n`;
}
