/* corral-init's network set-up (guest-net.c). */
#ifndef CORRAL_GUEST_NET_H
#define CORRAL_GUEST_NET_H

/* Brings the loopback up (the port proxy reaches servers on 127.0.0.1). 0 or an errno. */
int guest_lo_up(void);

/* corral.net=ADDR/PREFIX,GATEWAY,DNS: eth0 gets ADDR/PREFIX and a default
 * route through GATEWAY (waiting up to wait_ms for the device), and
 * root/etc/resolv.conf names DNS, root/etc/hosts the host's name at ADDR.
 * 0, or an errno with what failed in why. */
int guest_net_up(const char *spec, const char *hostname, const char *root, long wait_ms, char why[static 256]);

#endif
