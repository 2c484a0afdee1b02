/* podnet-udp-forwarder: the data path of podnet's `udp` backend, as flannel's proxy.c.
 *
 * Reads IPv4 packets from a TUN device and sends each, whole, as the payload of one UDP datagram
 * to the node whose pod subnet holds its destination; writes the datagrams it receives into the
 * TUN device. Like a router it decrements the TTL (fixing the header checksum incrementally, RFC
 * 1624) and answers with ICMP: time exceeded when the TTL runs out, net unreachable for a
 * destination inside the cluster network that no route covers.
 *
 *   podnet-udp-forwarder TUN LOCAL_IP PORT CLUSTER_CIDR
 *
 * The route table comes on stdin, one command per line, while it runs (the agent's leases):
 *   add 10.244.2.0/24 172.31.0.12      a subnet and the underlay address of its node
 *   del 10.244.2.0/24
 *   flush
 * End of stdin (the agent is gone) ends the forwarder. Datagrams from addresses that are no
 * node in the table are dropped. Counters go to stderr on SIGUSR1 and at exit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ROUTES 4096
#define BATCH 64
#define BUF 65536

struct route { uint32_t net, mask; int len; struct sockaddr_in peer; };

static struct route routes[MAX_ROUTES];
static int nroutes;
static uint32_t cluster_net, cluster_mask;
static unsigned short port;
static volatile sig_atomic_t dump_stats;
static unsigned long long n_tx, n_rx, n_noroute, n_ttl, n_foreign, n_bad, n_senderr;  /* n_bad: not IPv4 (IPv6 is not carried) */

static uint32_t mask_of(int len) { return len == 0 ? 0 : htonl(~0u << (32 - len)); }

static int parse_cidr(const char *s, uint32_t *net, int *len) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *slash = strchr(buf, '/');
    if (!slash) return -1;
    *slash = 0;
    *len = atoi(slash + 1);
    struct in_addr a;
    if (*len < 0 || *len > 32 || inet_pton(AF_INET, buf, &a) != 1) return -1;
    *net = a.s_addr & mask_of(*len);
    return 0;
}

static struct route *lookup(uint32_t dst) {
    struct route *best = NULL;
    for (int i = 0; i < nroutes; i++)
        if ((dst & routes[i].mask) == routes[i].net && (!best || routes[i].len > best->len)) best = &routes[i];
    return best;
}

static int known_peer(uint32_t addr) {
    for (int i = 0; i < nroutes; i++)
        if (routes[i].peer.sin_addr.s_addr == addr) return 1;
    return 0;
}

static void command(char *line) {
    char op[8], cidr[64], peer[64];
    int n = sscanf(line, "%7s %63s %63s", op, cidr, peer);
    if (n >= 1 && !strcmp(op, "flush")) { nroutes = 0; return; }
    uint32_t net; int len;
    if (n < 2 || parse_cidr(cidr, &net, &len) < 0) { fprintf(stderr, "bad command: %s\n", line); return; }
    int i;
    for (i = 0; i < nroutes; i++) if (routes[i].net == net && routes[i].len == len) break;
    if (!strcmp(op, "del")) {
        if (i < nroutes) routes[i] = routes[--nroutes];
        return;
    }
    struct in_addr p;
    if (strcmp(op, "add") || n < 3 || inet_pton(AF_INET, peer, &p) != 1) { fprintf(stderr, "bad command: %s\n", line); return; }
    if (i == nroutes) {
        if (nroutes == MAX_ROUTES) { fprintf(stderr, "route table full (%d)\n", MAX_ROUTES); return; }
        nroutes++;
    }
    routes[i].net = net; routes[i].len = len; routes[i].mask = mask_of(len);
    memset(&routes[i].peer, 0, sizeof routes[i].peer);
    routes[i].peer.sin_family = AF_INET;
    routes[i].peer.sin_port = htons(port);
    routes[i].peer.sin_addr = p;
}

static uint16_t csum(const void *data, size_t len) {
    const uint8_t *p = data;
    uint32_t sum = 0;
    for (; len > 1; len -= 2, p += 2) sum += (p[0] << 8) | p[1];
    if (len) sum += p[0] << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return htons(~sum & 0xffff);
}

/* An ICMP error about `pkt` to its sender, sent by this node like any router's: from a raw socket,
 * so the kernel gives it the node's address towards the sender. (Written into the TUN device it
 * would come from the TUN's own address and be dropped as a martian.) */
static int icmp_sock = -1;

static void icmp_error(const uint8_t *pkt, size_t len, uint8_t type, uint8_t code) {
    size_t hl = (pkt[0] & 0xf) * 4;
    if (pkt[9] == IPPROTO_ICMP && len > hl && pkt[hl] != 8) return; /* never about an ICMP error (or reply) */
    size_t quote = hl + 8 < len ? hl + 8 : len;
    uint8_t out[8 + 60 + 8];
    memset(out, 0, sizeof out);
    out[0] = type; out[1] = code;
    memcpy(out + 8, pkt, quote);
    uint16_t c = csum(out, 8 + quote);
    memcpy(out + 2, &c, 2);
    struct sockaddr_in to = {.sin_family = AF_INET};
    memcpy(&to.sin_addr, pkt + 12, 4);
    if (sendto(icmp_sock, out, 8 + quote, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to) < 0) n_senderr++;
}

/* Up to BATCH packets from the TUN device, then one sendmmsg() for all of them (the socket
 * blocks when its buffer is full: back-pressure, not drops). */
static void tun_to_udp(int tun, int udp) {
    static uint8_t bufs[BATCH][BUF / 4];  /* 16 KiB each: more than any MTU here */
    static struct mmsghdr msgs[BATCH];
    static struct iovec iov[BATCH];
    int m = 0;
    for (int k = 0; k < BATCH; k++) {
        uint8_t *buf = bufs[m];
        ssize_t n = read(tun, buf, sizeof bufs[m]);
        if (n < 0) break;                        /* EAGAIN: drained */
        if (n < 20 || (buf[0] >> 4) != 4) { n_bad++; continue; }
        uint32_t dst;
        memcpy(&dst, buf + 16, 4);
        struct route *r = lookup(dst);
        if (!r) {
            n_noroute++;
            if ((dst & cluster_mask) == cluster_net) icmp_error(buf, n, 3, 0);
            continue;
        }
        if (buf[8] <= 1) { n_ttl++; icmp_error(buf, n, 11, 0); continue; }
        /* TTL - 1; the checksum word holding it goes up by 0x0100 (RFC 1624, eqn. 3) */
        buf[8]--;
        uint32_t sum = ((buf[10] << 8) | buf[11]) + 0x0100;
        sum = (sum & 0xffff) + (sum >> 16);
        buf[10] = sum >> 8; buf[11] = sum & 0xff;
        iov[m].iov_base = buf; iov[m].iov_len = n;
        memset(&msgs[m].msg_hdr, 0, sizeof msgs[m].msg_hdr);
        msgs[m].msg_hdr.msg_iov = &iov[m]; msgs[m].msg_hdr.msg_iovlen = 1;
        msgs[m].msg_hdr.msg_name = &r->peer; msgs[m].msg_hdr.msg_namelen = sizeof r->peer;
        m++;
    }
    for (int done = 0; done < m;) {
        int sent = sendmmsg(udp, msgs + done, m - done, 0);
        if (sent < 0) {
            if (errno == EINTR) continue;
            n_senderr += m - done;
            done++;  /* skip the one that failed (e.g. no route to its node) and go on */
            continue;
        }
        n_tx += sent;
        done += sent;
    }
}

static void udp_to_tun(int udp, int tun) {
    static uint8_t bufs[BATCH][BUF / 4];  /* 16 KiB each: more than any MTU here */
    static struct mmsghdr msgs[BATCH];
    static struct iovec iov[BATCH];
    static struct sockaddr_in from[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i]; iov[i].iov_len = sizeof bufs[i];
        msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &from[i]; msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    int n = recvmmsg(udp, msgs, BATCH, MSG_DONTWAIT, NULL);
    for (int i = 0; i < n; i++) {
        if (!known_peer(from[i].sin_addr.s_addr)) { n_foreign++; continue; }
        size_t len = msgs[i].msg_len;
        if (len < 20 || (bufs[i][0] >> 4) != 4) { n_bad++; continue; }
        if (write(tun, bufs[i], len) < 0) n_senderr++;
        else n_rx++;
    }
}

static void stats(void) {
    fprintf(stderr, "sent %llu received %llu no-route %llu ttl-exceeded %llu foreign %llu not-ipv4 %llu send-errors %llu routes %d\n",
            n_tx, n_rx, n_noroute, n_ttl, n_foreign, n_bad, n_senderr, nroutes);
}

static void on_usr1(int sig) { (void)sig; dump_stats = 1; }

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s TUN LOCAL_IP PORT CLUSTER_CIDR  (routes on stdin: add CIDR PEER | del CIDR | flush)\n", argv[0]);
        return 2;
    }
    int clen;
    struct in_addr local;
    port = atoi(argv[3]);
    if (inet_pton(AF_INET, argv[2], &local) != 1 || !port || parse_cidr(argv[4], &cluster_net, &clen) < 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    cluster_mask = mask_of(clen);

    int tun = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
    if (tun < 0) { perror("open /dev/net/tun"); return 1; }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", argv[1]);
    if (ioctl(tun, TUNSETIFF, &ifr) < 0) { perror("TUNSETIFF"); return 1; }

    int udp = socket(AF_INET, SOCK_DGRAM, 0);  /* sends block (back-pressure); receives use MSG_DONTWAIT */
    int size = 8 << 20;
    setsockopt(udp, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    setsockopt(udp, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
    int off = IP_PMTUDISC_DONT;  /* an inner packet that fits the TUN MTU always fits the underlay */
    setsockopt(udp, IPPROTO_IP, IP_MTU_DISCOVER, &off, sizeof off);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = local};
    if (bind(udp, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 1; }

    icmp_sock = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (icmp_sock < 0) { perror("socket(SOCK_RAW, IPPROTO_ICMP)"); return 1; }
    signal(SIGUSR1, on_usr1);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    char line[256];
    size_t have = 0;
    struct pollfd fds[3] = {{.fd = tun, .events = POLLIN}, {.fd = udp, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    fprintf(stderr, "forwarding %s <-> udp %s:%d (cluster %s)\n", argv[1], argv[2], port, argv[4]);
    for (;;) {
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR) { if (dump_stats) { stats(); dump_stats = 0; } continue; }
            perror("poll"); return 1;
        }
        if (fds[0].revents & POLLIN) tun_to_udp(tun, udp);
        if (fds[1].revents & POLLIN) udp_to_tun(udp, tun);
        if (fds[2].revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(0, line + have, sizeof line - 1 - have);
            if (n == 0) { stats(); return 0; }          /* the agent is gone */
            if (n > 0) {
                have += n;
                line[have] = 0;
                char *start = line, *nl;
                while ((nl = strchr(start, '\n'))) { *nl = 0; command(start); start = nl + 1; }
                have = strlen(start);
                memmove(line, start, have + 1);
                if (have == sizeof line - 1) have = 0;  /* an overlong line: dropped */
            }
        }
    }
}
