/*
 * The real kernel layer's TCP/IP on bare metal, over a network interface
 * the image was linked with: NetBSD's vioif (librumpdev_virtio_if_vioif on
 * librumpdev_pci, through the rumpcomp_pci_* hypercalls) or if_virt
 * (librumpnet_virtif, through our VIFHYPER_* over virtio-net).
 * Freestanding (no C library): output with rumpuser_dprintf.
 *
 *   kernel_net serve  IFNAME ADDR MASK [PINGHOST]
 *   kernel_net serve-detach IFNAME ADDR MASK PEER
 *   kernel_net client IFNAME ADDR MASK SERVER
 *
 * serve: configures IFNAME (creating it first when it is virtN), pings
 * PINGHOST ten times if given, then serves TCP port 7777 until told to
 * quit. Each connection gets the banner "rumpnet\n" and then one command
 * byte: 'E' echo everything until EOF; 'S' + 8-byte big-endian length:
 * send that many bytes of the pattern; 'R' + length: receive that many
 * bytes, check them against the pattern, answer "OK\n" or "BAD\n"; 'Q':
 * answer "BYE\n", wait for the client to close, leave main with 0.
 *
 * serve-detach: serve, pinging PEER first, then wait for the interface's
 * device to be detached under it (PEER stops answering pings), take the
 * interface down and destroy it (which must return) and make it again,
 * which must fail with ENXIO. The Xen test detaches the vif from dom0 after its session.
 *
 * client: configures IFNAME, pings SERVER ten times, then runs the same
 * session a host program runs against a server (echo round trips, a
 * 64 MiB stream each way checked byte for byte, quit) and prints its
 * figures. `cargo xtask baremetal-test` boots both roles under QEMU.
 */
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include <rump/netconfig.h>
#include <rump/rump.h>
#include <rump/rump_syscalls.h>
#include <rump/rumpdefs.h>

void rumpuser_dprintf(const char *, ...);
int rumpuser_pvh_errno(void);
int rumpuser_clock_gettime(int, int64_t *, long *);
#define RUMPUSER_CLOCK_ABSMONO 1

#define PORT 7777
#define STREAM (64u << 20)
#define ECHO_ROUNDS 1000

#define FAIL(what) do {							\
	rumpuser_dprintf("kernel-net: FAIL %s (errno %d)\n", what,	\
	    rumpuser_pvh_errno());				\
	return 1;							\
} while (0)
#define CHECK(cond, what) do { if (!(cond)) FAIL(what); } while (0)

/* NetBSD's struct sockaddr_in and struct pollfd. */
struct nb_sin {
	uint8_t len, family;
	uint16_t port;
	uint32_t addr;
	uint8_t zero[8];
};
struct nb_pollfd {
	int fd;
	short events, revents;
};
#define NB_POLLIN 0x0001

static unsigned char buf[65536];

static uint16_t
be16(uint16_t v)
{
	return (uint16_t)(v << 8 | v >> 8);
}

static uint64_t
now_ns(void)
{
	int64_t s;
	long ns;

	rumpuser_clock_gettime(RUMPUSER_CLOCK_ABSMONO, &s, &ns);
	return (uint64_t)s * 1000000000u + (uint64_t)ns;
}

static int
parse_ip(const char *s, uint32_t *out)
{
	uint32_t a = 0, part = 0;
	int dots = 0, digits = 0;

	for (;; s++) {
		if (*s >= '0' && *s <= '9') {
			part = part * 10 + (uint32_t)(*s - '0');
			if (part > 255 || ++digits > 3)
				return -1;
		} else if (*s == '.' || *s == '\0') {
			if (digits == 0)
				return -1;
			a = a << 8 | part;
			part = 0;
			digits = 0;
			if (*s == '\0')
				break;
			if (++dots > 3)
				return -1;
		} else {
			return -1;
		}
	}
	if (dots != 3)
		return -1;
	*out = a;
	return 0;
}

static struct nb_sin
sin_of(uint32_t host_order_addr, uint16_t port)
{
	struct nb_sin s;
	size_t i;

	for (i = 0; i < sizeof(s.zero); i++)
		s.zero[i] = 0;
	s.len = sizeof(s);
	s.family = RUMP_AF_INET;
	s.port = be16(port);
	s.addr = (uint32_t)be16((uint16_t)(host_order_addr >> 16))
	    | (uint32_t)be16((uint16_t)host_order_addr) << 16;
	return s;
}

static unsigned char
pattern(uint64_t i)
{
	return (unsigned char)(i * 7 + (i >> 10));
}

static int
streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static int
write_all(int fd, const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n > 0) {
		ssize_t w = rump_sys_write(fd, c, n);
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
read_all(int fd, void *p, size_t n)
{
	unsigned char *c = p;

	while (n > 0) {
		ssize_t r = rump_sys_read(fd, c, n);
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static uint16_t
inet_sum(const unsigned char *p, size_t n)
{
	uint32_t s = 0;
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/*
 * One ICMP echo request with sequence number `seq` to `to` over the raw
 * socket `s`: 1 if it is answered within `ms` milliseconds, 0 if not, -1
 * if it could not be sent.
 */
static int
echo_once(int s, const struct nb_sin *to, int seq, int ms)
{
	unsigned char pkt[64], in[256];
	struct nb_pollfd pfd;
	uint64_t t0 = now_ns();
	int i;

	for (i = 0; i < (int)sizeof(pkt); i++)
		pkt[i] = (unsigned char)(i + seq);
	pkt[0] = 8, pkt[1] = 0, pkt[2] = 0, pkt[3] = 0;
	pkt[4] = 0x52, pkt[5] = 0x42, pkt[6] = 0, pkt[7] = (unsigned char)seq;
	{
		uint16_t c = inet_sum(pkt, sizeof(pkt));
		pkt[2] = (unsigned char)(c >> 8), pkt[3] = (unsigned char)c;
	}
	if (rump_sys_sendto(s, pkt, sizeof(pkt), 0, (const void *)to,
	    sizeof(*to)) != (ssize_t)sizeof(pkt))
		return -1;
	for (;;) {
		int64_t left = ms - (int64_t)((now_ns() - t0) / 1000000);
		ssize_t n;
		size_t ihl;

		if (left <= 0)
			return 0;
		pfd.fd = s, pfd.events = NB_POLLIN, pfd.revents = 0;
		if (rump_sys_poll((void *)&pfd, 1, (int)left) <= 0)
			return 0;
		n = rump_sys_recvfrom(s, in, sizeof(in), 0, NULL, NULL);
		if (n < 20)
			continue;
		ihl = (size_t)(in[0] & 15) * 4;
		if ((size_t)n < ihl + sizeof(pkt))
			continue;
		if (in[ihl] == 0 && in[ihl + 4] == 0x52 && in[ihl + 5] == 0x42
		    && in[ihl + 7] == (unsigned char)seq
		    && inet_sum(in + ihl, (size_t)n - ihl) == 0)
			return 1;
	}
}

/* ICMP echo requests to `host` over a raw socket; ten must all be answered. */
static int
ping(const char *host)
{
	struct nb_sin to;
	uint32_t a;
	uint64_t total = 0;
	int s, seq, answered = 0, warmups = 0;

	CHECK(parse_ip(host, &a) == 0, "ping address");
	to = sin_of(a, 0);
	s = rump_sys_socket(RUMP_AF_INET, RUMP_SOCK_RAW, RUMP_IPPROTO_ICMP);
	CHECK(s >= 0, "raw ICMP socket");
	/*
	 * Sequence 0 is sent until it is answered (for up to a minute: the
	 * other guest may still be booting); then ten more, each of which
	 * must be answered within 2 s.
	 */
	for (seq = 0; seq <= 10; seq++) {
		uint64_t t0 = now_ns();
		int got = echo_once(s, &to, seq, 2000);

		CHECK(got >= 0, "ping sendto");
		if (seq == 0) {
			if (!got) {
				CHECK(++warmups < 30, "no answer to a ping in a minute");
				seq = -1;
			}
			continue;
		}
		if (got) {
			answered++;
			total += now_ns() - t0;
		}
	}
	rump_sys_close(s);
	rumpuser_dprintf("kernel-net: ping %s: %d of 10 answered, %u us mean round trip\n",
	    host, answered, answered ? (unsigned)(total / (uint64_t)answered / 1000) : 0u);
	CHECK(answered == 10, "every ping answered");
	return 0;
}

static int
up(const char *ifname, const char *addr, const char *mask)
{
	CHECK(rump_init() == 0, "rump_init");
	if (ifname[0] == 'v' && ifname[1] == 'i' && ifname[2] == 'r' && ifname[3] == 't')
		CHECK(rump_pub_netconfig_ifcreate(ifname) == 0, "ifcreate");
	CHECK(rump_pub_netconfig_ipv4_ifaddr(ifname, addr, mask) == 0, "ifaddr");
	CHECK(rump_pub_netconfig_ifup(ifname) == 0, "ifup");
	rumpuser_dprintf("kernel-net: %s up as %s/%s\n", ifname, addr, mask);
	return 0;
}

static uint64_t
get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void
put_be64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

/* One connection of the server; returns 1 after 'Q', -1 on error. */
static int
serve_one(int c)
{
	unsigned char cmd[9];
	uint64_t n, off, t0;
	ssize_t r;

	if (write_all(c, "rumpnet\n", 8) != 0 || read_all(c, cmd, 1) != 0)
		return -1;
	switch (cmd[0]) {
	case 'E':
		while ((r = rump_sys_read(c, buf, sizeof(buf))) > 0)
			if (write_all(c, buf, (size_t)r) != 0)
				return -1;
		return r == 0 ? 0 : -1;
	case 'S':
		if (read_all(c, cmd + 1, 8) != 0)
			return -1;
		n = get_be64(cmd + 1);
		t0 = now_ns();
		for (off = 0; off < n; ) {
			size_t k = n - off < sizeof(buf) ? (size_t)(n - off) : sizeof(buf);
			size_t i;

			for (i = 0; i < k; i++)
				buf[i] = pattern(off + i);
			if (write_all(c, buf, k) != 0)
				return -1;
			off += k;
		}
		rumpuser_dprintf("kernel-net: sent %u MiB in %u ms\n",
		    (unsigned)(n >> 20), (unsigned)((now_ns() - t0) / 1000000));
		return 0;
	case 'R':
		if (read_all(c, cmd + 1, 8) != 0)
			return -1;
		n = get_be64(cmd + 1);
		t0 = now_ns();
		for (off = 0; off < n; ) {
			size_t k = n - off < sizeof(buf) ? (size_t)(n - off) : sizeof(buf);
			size_t i;

			r = rump_sys_read(c, buf, k);
			if (r <= 0)
				return -1;
			for (i = 0; i < (size_t)r; i++) {
				if (buf[i] != pattern(off + i)) {
					rumpuser_dprintf("kernel-net: byte %u differs\n",
					    (unsigned)(off + i));
					write_all(c, "BAD\n", 4);
					return -1;
				}
			}
			off += (uint64_t)r;
		}
		rumpuser_dprintf("kernel-net: received %u MiB in %u ms, every byte as sent\n",
		    (unsigned)(n >> 20), (unsigned)((now_ns() - t0) / 1000000));
		return write_all(c, "OK\n", 3);
	case 'Q':
		/*
		 * The client waits for the goodbye before it powers off, and we
		 * for its close (up to 3 s: a guest that powers off may not
		 * send its FIN) before we do, so that the goodbye has left.
		 */
		if (write_all(c, "BYE\n", 4) != 0)
			return -1;
		{
			struct nb_pollfd pfd = { c, NB_POLLIN, 0 };

			if (rump_sys_poll((void *)&pfd, 1, 3000) > 0)
				(void)rump_sys_read(c, buf, sizeof(buf));
		}
		return 1;
	default:
		return -1;
	}
}

/*
 * After the sessions: waits (up to two minutes) until `peer` has missed
 * five pings in a row, each given a second (the device is gone), then
 * takes `ifname` down, destroys it and makes it again, which must fail
 * with ENXIO.
 */
static int
detached(const char *ifname, const char *peer)
{
	struct nb_sin to;
	uint32_t a;
	uint64_t t0 = now_ns(), t;
	int s, seq = 100, missed = 0, answered = 0, rv;

	CHECK(parse_ip(peer, &a) == 0, "peer address");
	to = sin_of(a, 0);
	s = rump_sys_socket(RUMP_AF_INET, RUMP_SOCK_RAW, RUMP_IPPROTO_ICMP);
	CHECK(s >= 0, "raw ICMP socket");
	while (missed < 5) {
		int got = echo_once(s, &to, seq++ & 0xff, 1000);

		CHECK(got >= 0, "ping sendto");
		CHECK(now_ns() - t0 < 120000000000ull,
		    "the peer still answers two minutes after the session");
		if (got) {
			answered++;
			missed = 0;
		} else {
			missed++;
		}
	}
	rump_sys_close(s);
	rumpuser_dprintf("kernel-net: %s: the peer stopped answering %u ms after the "
	    "session (%d pings answered before)\n", ifname,
	    (unsigned)((now_ns() - t0) / 1000000), answered);
	t = now_ns();
	/* if_virt refuses to destroy an interface that is up. */
	rv = rump_pub_netconfig_ifdown(ifname);
	CHECK(rv == 0, "ifdown of the detached interface");
	rv = rump_pub_netconfig_ifdestroy(ifname);
	if (rv != 0)
		rumpuser_dprintf("kernel-net: ifdestroy %s: error %d\n", ifname, rv);
	CHECK(rv == 0, "ifdestroy of the detached interface");
	rumpuser_dprintf("kernel-net: %s down and destroyed in %u us\n", ifname,
	    (unsigned)((now_ns() - t) / 1000));
	rv = rump_pub_netconfig_ifcreate(ifname);
	rumpuser_dprintf("kernel-net: making %s again: error %d\n", ifname, rv);
	CHECK(rv == 6, "ifcreate on the detached device fails with ENXIO");
	return 0;
}

static int
serve(void)
{
	struct nb_sin a = sin_of(0, PORT);
	int s, one = 1, sessions = 0;

	s = rump_sys_socket(RUMP_AF_INET, RUMP_SOCK_STREAM, 0);
	CHECK(s >= 0, "socket");
	rump_sys_setsockopt(s, RUMP_SOL_SOCKET, RUMP_SO_REUSEADDR, &one, sizeof(one));
	CHECK(rump_sys_bind(s, (void *)&a, sizeof(a)) == 0, "bind");
	CHECK(rump_sys_listen(s, 4) == 0, "listen");
	rumpuser_dprintf("kernel-net: listening on port %d\n", PORT);
	for (;;) {
		int c = rump_sys_accept(s, NULL, NULL), r;

		CHECK(c >= 0, "accept");
		r = serve_one(c);
		rump_sys_close(c);
		sessions++;
		if (r == 1)
			break;
		if (r < 0)
			rumpuser_dprintf("kernel-net: session %d failed (errno %d)\n",
			    sessions, rumpuser_pvh_errno());
	}
	rump_sys_close(s);
	rumpuser_dprintf("kernel-net: server done after %d sessions\n", sessions);
	return 0;
}

/* Connects to the server and reads its banner; retries while it boots. */
static int
session(uint32_t server, char cmd)
{
	struct nb_sin a = sin_of(server, PORT);
	unsigned char b[8];
	int tries;

	for (tries = 0; tries < 600; tries++) {
		int s = rump_sys_socket(RUMP_AF_INET, RUMP_SOCK_STREAM, 0);

		if (s < 0)
			return -1;
		if (rump_sys_connect(s, (void *)&a, sizeof(a)) == 0
		    && read_all(s, b, 8) == 0 && b[0] == 'r' && b[7] == '\n'
		    && write_all(s, &cmd, 1) == 0)
			return s;
		rump_sys_close(s);
		{
			struct { int64_t sec; long nsec; } ts = { 0, 100000000 };
			rump_sys_nanosleep((void *)&ts, NULL);
		}
	}
	return -1;
}

static int
client(const char *server_s)
{
	unsigned char hdr[8], msg[64], back[64];
	uint32_t server;
	uint64_t t0, off;
	int s, i;
	size_t j;

	CHECK(parse_ip(server_s, &server) == 0, "server address");
	CHECK(ping(server_s) == 0, "ping the server");
	s = session(server, 'E');
	CHECK(s >= 0, "echo session");
	t0 = now_ns();
	for (i = 0; i < ECHO_ROUNDS; i++) {
		for (j = 0; j < sizeof(msg); j++)
			msg[j] = (unsigned char)(i + (int)j);
		CHECK(write_all(s, msg, sizeof(msg)) == 0, "echo write");
		CHECK(read_all(s, back, sizeof(back)) == 0, "echo read");
		for (j = 0; j < sizeof(msg); j++)
			CHECK(back[j] == msg[j], "echo matches");
	}
	rumpuser_dprintf("kernel-net: %d echo round trips of 64 bytes: %u us each\n",
	    ECHO_ROUNDS, (unsigned)((now_ns() - t0) / ECHO_ROUNDS / 1000));
	rump_sys_close(s);

	s = session(server, 'S');
	CHECK(s >= 0, "stream-in session");
	put_be64(hdr, STREAM);
	CHECK(write_all(s, hdr, 8) == 0, "stream-in length");
	t0 = now_ns();
	for (off = 0; off < STREAM; ) {
		ssize_t r = rump_sys_read(s, buf, sizeof(buf));

		CHECK(r > 0, "stream-in read");
		for (j = 0; j < (size_t)r; j++)
			CHECK(buf[j] == pattern(off + j), "stream-in bytes as sent");
		off += (uint64_t)r;
	}
	rumpuser_dprintf("kernel-net: client received %u MiB in %u ms, every byte as sent\n",
	    STREAM >> 20, (unsigned)((now_ns() - t0) / 1000000));
	rump_sys_close(s);

	s = session(server, 'R');
	CHECK(s >= 0, "stream-out session");
	CHECK(write_all(s, hdr, 8) == 0, "stream-out length");
	t0 = now_ns();
	for (off = 0; off < STREAM; ) {
		size_t k = sizeof(buf);

		for (j = 0; j < k; j++)
			buf[j] = pattern(off + j);
		CHECK(write_all(s, buf, k) == 0, "stream-out write");
		off += k;
	}
	CHECK(read_all(s, back, 3) == 0 && back[0] == 'O' && back[1] == 'K',
	    "the server checked the stream");
	rumpuser_dprintf("kernel-net: client sent %u MiB in %u ms, the server checked every byte\n",
	    STREAM >> 20, (unsigned)((now_ns() - t0) / 1000000));
	rump_sys_close(s);

	s = session(server, 'Q');
	CHECK(s >= 0, "quit session");
	CHECK(read_all(s, back, 4) == 0 && back[0] == 'B', "the server's goodbye");
	rump_sys_close(s);
	rumpuser_dprintf("kernel-net: client done\n");
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 5 && streq(argv[1], "serve")) {
		if (up(argv[2], argv[3], argv[4]) != 0)
			return 1;
		if (argc >= 6 && ping(argv[5]) != 0)
			return 1;
		return serve();
	}
	if (argc >= 6 && streq(argv[1], "serve-detach")) {
		if (up(argv[2], argv[3], argv[4]) != 0 || ping(argv[5]) != 0
		    || serve() != 0)
			return 1;
		return detached(argv[2], argv[5]);
	}
	if (argc >= 6 && streq(argv[1], "client")) {
		if (up(argv[2], argv[3], argv[4]) != 0)
			return 1;
		return client(argv[5]);
	}
	rumpuser_dprintf("usage: kernel_net serve IF ADDR MASK [PING] | serve-detach IF ADDR MASK PEER"
	    " | client IF ADDR MASK SERVER\n");
	return 2;
}
