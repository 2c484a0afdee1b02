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
 *
 * Speed comes from batching, never from changing what goes on the wire (one inner packet of at
 * most the TUN's MTU per datagram): the TUN device hands over 64 KiB TCP segments (TSO, through
 * virtio-net headers), cut here into packets and sent with UDP GSO, one system call per run; the
 * receiving socket takes runs of datagrams at once (UDP GRO), and consecutive segments of one
 * TCP flow go into the TUN device as one (GRO). Without it, two system calls per packet held
 * this forwarder under 1 Gbit/s.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/udp.h>
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

/* Ones' complement sums (RFC 1071) and big-endian fields. */
static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum) {
    for (; len > 1; len -= 2, p += 2) sum += (p[0] << 8) | p[1];
    if (len) sum += p[0] << 8;
    return sum;
}

static uint16_t fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return sum;
}

static uint32_t pseudo(const uint8_t *ip, uint8_t proto, size_t l4len) {
    return sum16(ip + 12, 8, 0) + proto + l4len;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static uint16_t get16(const uint8_t *p) { return (p[0] << 8) | p[1]; }
static uint32_t get32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

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
    put16(out + 2, ~fold(sum16(out, 8 + quote, 0)) & 0xffff);
    struct sockaddr_in to = {.sin_family = AF_INET};
    memcpy(&to.sin_addr, pkt + 12, 4);
    if (sendto(icmp_sock, out, 8 + quote, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to) < 0) n_senderr++;
}

/* Offloads (as virtio-net, via IFF_VNET_HDR): every read and write on the TUN device starts with a
 * virtio_net_hdr. The kernel hands us TCP segments of up to 64 KiB (TSO) and we cut them into
 * packets of the TUN's MTU, one datagram each, as the wire carries them; on the way in, runs of
 * datagrams of one TCP flow are joined again into one segment (GRO) and written with one
 * write(). Each datagram on the wire stays exactly one IPv4 packet of at most the TUN's MTU: the
 * protocol is flannel's. Per-packet system calls were what limited this forwarder. */
struct vnet_hdr { uint8_t flags, gso_type; uint16_t hdr_len, gso_size, csum_start, csum_offset; };
#define VNET_NEEDS_CSUM 1
#define VNET_GSO_NONE 0
#define VNET_GSO_TCPV4 1
#define OUT_MAX 512   /* datagrams per sendmmsg() */
#define SEG 2048      /* one datagram: more than the TUN's MTU */

static void ip_checksum(uint8_t *ip) {
    size_t ihl = (ip[0] & 0xf) * 4;
    ip[10] = ip[11] = 0;
    put16(ip + 10, ~fold(sum16(ip, ihl, 0)) & 0xffff);
}

static uint8_t outbuf[OUT_MAX][SEG];
static struct mmsghdr outmsg[OUT_MAX];
static struct iovec outiov[OUT_MAX];
static int nout;
static int udp_gso = 1;   /* the kernel takes UDP_SEGMENT (Linux 4.18+) */
static int udp_gro = 0;   /* the socket gets coalesced datagrams (UDP_GRO, Linux 5.0+) */

static void flush_out(int udp) {
    for (int done = 0; done < nout;) {
        int sent = sendmmsg(udp, outmsg + done, nout - done, 0);
        if (sent < 0) {
            if (errno == EINTR) continue;
            n_senderr++;
            done++;  /* skip the one that failed (e.g. no route to its node) and go on */
            continue;
        }
        n_tx += sent;
        done += sent;
    }
    nout = 0;
}

static uint8_t *out_slot(int udp, struct route *r, size_t len) {
    if (nout == OUT_MAX) flush_out(udp);
    outiov[nout].iov_base = outbuf[nout]; outiov[nout].iov_len = len;
    memset(&outmsg[nout].msg_hdr, 0, sizeof outmsg[nout].msg_hdr);
    outmsg[nout].msg_hdr.msg_iov = &outiov[nout]; outmsg[nout].msg_hdr.msg_iovlen = 1;
    outmsg[nout].msg_hdr.msg_name = &r->peer; outmsg[nout].msg_hdr.msg_namelen = sizeof r->peer;
    return outbuf[nout++];
}

/* A TSO segment cut into packets of gso_size payload bytes: IP id, total length and checksum,
 * TCP sequence number, flags (FIN and PSH only on the last) and checksum of each. They leave
 * as one sendmsg() with UDP_SEGMENT (UDP GSO): the kernel's UDP and netfilter path once per
 * run instead of once per datagram; each datagram is still one packet, cut where ours are. */
static void send_gso(int udp, struct route *r, uint8_t *data, size_t len, size_t seg) {
    char control[CMSG_SPACE(sizeof(uint16_t))] = {0};
    struct iovec iov = {.iov_base = data, .iov_len = len};
    struct msghdr mh = {.msg_name = &r->peer, .msg_namelen = sizeof r->peer, .msg_iov = &iov, .msg_iovlen = 1};
    if (len > seg) {
        mh.msg_control = control; mh.msg_controllen = sizeof control;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_UDP; cm->cmsg_type = UDP_SEGMENT; cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t size = seg;
        memcpy(CMSG_DATA(cm), &size, sizeof size);
    }
    while (sendmsg(udp, &mh, 0) < 0) {
        if (errno == EINTR) continue;
        if (errno == EIO || errno == EINVAL) udp_gso = 0;  /* no UDP GSO here: cut them ourselves from now on */
        n_senderr += (len + seg - 1) / seg;
        return;
    }
    n_tx += (len + seg - 1) / seg;
}

static void tso_split(int udp, struct route *r, uint8_t *pkt, size_t len, const struct vnet_hdr *h) {
    static uint8_t run[65536];
    size_t ihl = (pkt[0] & 0xf) * 4, hdr = h->hdr_len, mss = h->gso_size;
    if (hdr < ihl + 20 || hdr > len || !mss || hdr + mss > SEG) { n_bad++; return; }
    uint32_t seq = get32(pkt + ihl + 4);
    uint16_t id = get16(pkt + 4);
    size_t per_run = udp_gso ? 65000 / (hdr + mss) : 0, used = 0, in_run = 0;
    if (per_run > 64) per_run = 64;
    for (size_t off = hdr, i = 0; off < len; off += mss, i++) {
        size_t chunk = len - off < mss ? len - off : mss;
        uint8_t *o = per_run ? run + used : out_slot(udp, r, hdr + chunk);
        memcpy(o, pkt, hdr);
        memcpy(o + hdr, pkt + off, chunk);
        put16(o + 2, hdr + chunk);
        put16(o + 4, id + i);
        ip_checksum(o);
        put32(o + ihl + 4, seq + (uint32_t)(off - hdr));
        if (off + chunk < len) o[ihl + 13] &= ~0x09;  /* FIN, PSH */
        o[ihl + 16] = o[ihl + 17] = 0;
        uint32_t sum = sum16(o + ihl, hdr - ihl + chunk, pseudo(o, IPPROTO_TCP, hdr - ihl + chunk));
        put16(o + ihl + 16, ~fold(sum) & 0xffff);
        if (per_run) {
            used += hdr + chunk;
            if (++in_run == per_run || off + chunk >= len) {
                send_gso(udp, r, run, used, hdr + mss);
                used = in_run = 0;
            }
        }
    }
}

static void tun_to_udp(int tun, int udp) {
    static uint8_t buf[sizeof(struct vnet_hdr) + 65536];
    for (int k = 0; k < BATCH; k++) {
        ssize_t n = read(tun, buf, sizeof buf);
        if (n < 0) break;                        /* EAGAIN: drained */
        struct vnet_hdr h;
        memcpy(&h, buf, sizeof h);
        uint8_t *pkt = buf + sizeof h;
        size_t len = n - sizeof h;
        if ((ssize_t)sizeof h + 20 > n || (pkt[0] >> 4) != 4) { n_bad++; continue; }
        uint32_t dst;
        memcpy(&dst, pkt + 16, 4);
        struct route *r = lookup(dst);
        if (!r) {
            n_noroute++;
            if ((dst & cluster_mask) == cluster_net) icmp_error(pkt, len, 3, 0);
            continue;
        }
        if (pkt[8] <= 1) { n_ttl++; icmp_error(pkt, len, 11, 0); continue; }
        pkt[8]--;                                /* TTL - 1 */
        if (h.gso_type == VNET_GSO_TCPV4) {
            if (udp_gso) flush_out(udp);         /* what came before leaves before */
            tso_split(udp, r, pkt, len, &h);
            continue;
        }
        if (h.gso_type != VNET_GSO_NONE) { n_bad++; continue; }
        if (h.flags & VNET_NEEDS_CSUM) {         /* the kernel left the L4 checksum to us */
            size_t at = h.csum_start + h.csum_offset;
            if (at + 2 > len) { n_bad++; continue; }
            uint32_t initial = get16(pkt + at);
            pkt[at] = pkt[at + 1] = 0;
            put16(pkt + at, ~fold(sum16(pkt + h.csum_start, len - h.csum_start, initial)) & 0xffff);
        }
        ip_checksum(pkt);
        if (len > SEG) { n_bad++; continue; }
        memcpy(out_slot(udp, r, len), pkt, len);
    }
    flush_out(udp);
}

/* Whether TCP segment b continues segment a (same flow and headers, the next bytes) so that they
 * can travel up the stack as one. */
static int continues(const uint8_t *a, uint32_t next_seq, const uint8_t *b, size_t blen) {
    if ((b[0] != 0x45) || b[9] != IPPROTO_TCP || memcmp(a + 12, b + 12, 8)) return 0;
    if (get16(b + 6) & 0x3fff) return 0;                       /* fragments */
    size_t thl = (a[20 + 12] >> 4) * 4, bthl = (b[20 + 12] >> 4) * 4;
    if (thl != bthl || blen <= 20 + thl || blen != get16(b + 2)) return 0;
    if (memcmp(a + 20, b + 20, 4) || get32(b + 24) != next_seq) return 0;  /* ports, sequence */
    if (memcmp(a + 28, b + 28, 4) || a[32] != b[32]) return 0;             /* ack, data offset */
    if ((b[33] & ~0x08) != 0x10 || (a[33] & 0x08)) return 0;               /* ACK (+PSH on the last only) */
    if (memcmp(a + 34, b + 34, 2) || memcmp(a + 40, b + 40, thl - 20)) return 0;  /* window, options */
    return 1;
}

static int tcp_checksum_ok(const uint8_t *p, size_t len) {
    return fold(sum16(p + 20, len - 20, pseudo(p, IPPROTO_TCP, len - 20))) == 0xffff;
}

struct dgram { uint8_t *p; size_t len; uint32_t from; };

static void udp_to_tun(int udp, int tun) {
    static uint8_t bufs[BATCH][65536];
    static struct mmsghdr msgs[BATCH];
    static struct iovec iov[BATCH];
    static struct sockaddr_in from[BATCH];
    static char control[BATCH][CMSG_SPACE(sizeof(int))];
    static struct dgram d[BATCH * 64];
    static uint8_t joined[sizeof(struct vnet_hdr) + 65536];
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i]; iov[i].iov_len = udp_gro ? sizeof bufs[i] : SEG;
        memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
        msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &from[i]; msgs[i].msg_hdr.msg_namelen = sizeof from[i];
        msgs[i].msg_hdr.msg_control = control[i]; msgs[i].msg_hdr.msg_controllen = sizeof control[i];
    }
    int n = recvmmsg(udp, msgs, BATCH, MSG_DONTWAIT, NULL), nd = 0;
    for (int i = 0; i < n; i++) {                 /* each buffer: one datagram, or a run of gso_size ones */
        size_t len = msgs[i].msg_len, seg = len;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msgs[i].msg_hdr); cm; cm = CMSG_NXTHDR(&msgs[i].msg_hdr, cm))
            if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) { int v; memcpy(&v, CMSG_DATA(cm), sizeof v); seg = v; }
        if (!known_peer(from[i].sin_addr.s_addr)) { n_foreign += seg ? (len + seg - 1) / seg : 1; continue; }
        for (size_t off = 0; off < len && seg; off += seg) {
            d[nd].p = bufs[i] + off; d[nd].len = len - off < seg ? len - off : seg; d[nd].from = from[i].sin_addr.s_addr;
            nd++;
        }
    }
    for (int i = 0; i < nd;) {
        uint8_t *p = d[i].p;
        size_t len = d[i].len;
        if (len < 20 || (p[0] >> 4) != 4 || len != get16(p + 2)) { n_bad++; i++; continue; }
        struct vnet_hdr h = {0};
        uint8_t *pkt = joined + sizeof h;
        size_t total = len, segs = 1;
        memcpy(pkt, p, len);
        int tcp = p[0] == 0x45 && p[9] == IPPROTO_TCP && len > 40 && !(get16(p + 6) & 0x3fff) &&
                  len > 20 + (size_t)(p[32] >> 4) * 4 && tcp_checksum_ok(p, len);
        int j = i + 1;
        if (tcp) {
            size_t hdr = 20 + (p[32] >> 4) * 4, mss = len - hdr;
            uint32_t next = get32(p + 24) + mss;
            while (j < nd && total + mss <= 65535) {
                uint8_t *q = d[j].p;
                size_t qlen = d[j].len;
                if (qlen < 40 || !continues(pkt, next, q, qlen) || qlen - hdr > mss || !tcp_checksum_ok(q, qlen)) break;
                memcpy(pkt + total, q + hdr, qlen - hdr);
                pkt[33] |= q[33] & 0x08;          /* PSH of the last */
                total += qlen - hdr;
                next += qlen - hdr;
                segs++;
                j++;
                if (qlen - hdr < mss) break;      /* a short one ends the run */
            }
            if (segs > 1) {
                h.flags = VNET_NEEDS_CSUM; h.gso_type = VNET_GSO_TCPV4;
                h.hdr_len = hdr; h.gso_size = mss; h.csum_start = 20; h.csum_offset = 16;
                put16(pkt + 2, total);
                ip_checksum(pkt);
                pkt[36] = pkt[37] = 0;             /* the kernel adds the rest of the checksum */
                put16(pkt + 36, fold(pseudo(pkt, IPPROTO_TCP, total - 20)));
            }
        }
        memcpy(joined, &h, sizeof h);
        if (write(tun, joined, sizeof h + total) < 0) n_senderr += segs;
        else n_rx += segs;
        i = j;
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
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", argv[1]);
    if (ioctl(tun, TUNSETIFF, &ifr) < 0) { perror("TUNSETIFF"); return 1; }
    if (ioctl(tun, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) < 0) { perror("TUNSETOFFLOAD"); return 1; }

    int udp = socket(AF_INET, SOCK_DGRAM, 0);  /* sends block (back-pressure); receives use MSG_DONTWAIT */
    int size = 8 << 20;
    setsockopt(udp, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    setsockopt(udp, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
    int off = IP_PMTUDISC_DONT;  /* an inner packet that fits the TUN MTU always fits the underlay */
    setsockopt(udp, IPPROTO_IP, IP_MTU_DISCOVER, &off, sizeof off);
    int on = 1;
    udp_gro = setsockopt(udp, SOL_UDP, UDP_GRO, &on, sizeof on) == 0;
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
