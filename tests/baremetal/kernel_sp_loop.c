/*
 * The syscall proxy of a guest without a network device: the kernel
 * serves itself on its loopback interface (tcp://127.0.0.1:5555) and the
 * application speaks the protocol to it over a kernel socket of its own
 * (banner, GUEST handshake, getpid in the new remote process, an
 * oversized frame that closes the connection, a request before the
 * handshake answered with ERROR(AUTH)), then reboots. Freestanding (no C
 * library); the same source runs on bare metal and Xen.
 * `cargo xtask baremetal-test` boots it on bare metal; on Xen:
 * `cargo xtask xen-run --lib rumpkern_sysproxy --lib rumpnet_netinet
 *  --lib rumpnet_net --lib rumpnet --lib rumpvfs --lib rump kernel_sp_loop.c`.
 */
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include <rump/rump.h>
#include <rump/rump_syscalls.h>
#include <rump/rumpdefs.h>

void rumpuser_dprintf(const char *, ...);

#define FAIL(what, v) do {						\
	rumpuser_dprintf("kernel-sp-loop: FAIL %s (%ld)\n", what, (long)(v)); \
	return 1;							\
} while (0)
#define CHECK(cond, what, v) do { if (!(cond)) FAIL(what, v); } while (0)

/* NetBSD's struct sockaddr_in. */
struct nb_sin {
	uint8_t len, family;
	uint16_t port;
	uint32_t addr;
	uint8_t zero[8];
};

/* The frame header: length, request number, class, type, argument. */
struct hdr {
	uint64_t len, reqno;
	uint16_t class, type;
	uint32_t arg;
};

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

/* A connection to the server with its banner read; -1 if none. */
static int
session(void)
{
	struct nb_sin a = { sizeof(a), RUMP_AF_INET, 0, 0, { 0 } };
	unsigned char b[128];
	size_t n = 0;
	int s = rump_sys_socket(RUMP_AF_INET, RUMP_SOCK_STREAM, 0);

	if (s < 0)
		return -1;
	a.port = (uint16_t)(5555 >> 8 | (5555 & 0xff) << 8);
	a.addr = 0x0100007f; /* 127.0.0.1 in network order */
	if (rump_sys_connect(s, (void *)&a, sizeof(a)) != 0) {
		rump_sys_close(s);
		return -1;
	}
	do {
		if (n == sizeof(b) || rump_sys_read(s, b + n, 1) != 1) {
			rump_sys_close(s);
			return -1;
		}
	} while (b[n++] != '\n');
	if (n < 11 || b[0] != 'R' || b[6] != '-' || b[7] != '0' || b[9] != '4') {
		rump_sys_close(s);
		return -1;
	}
	return s;
}

static int
send_frame(int s, uint64_t reqno, uint16_t type, uint32_t arg, const void *body, size_t len)
{
	struct hdr h = { sizeof(h) + len, reqno, 0, type, arg };

	if (write_all(s, &h, sizeof(h)) != 0)
		return -1;
	return len ? write_all(s, body, len) : 0;
}

int
main(void)
{
	unsigned char body[64];
	struct hdr h;
	uint64_t zero = 0;
	int32_t err;
	int64_t pid;
	int s, r;

	CHECK(rump_init() == 0, "rump_init", 0);
	r = rump_init_server("tcp://127.0.0.1:5555");
	CHECK(r == 0, "rump_init_server", r);
	rumpuser_dprintf("kernel-sp-loop: serving tcp://127.0.0.1:5555\n");

	s = session();
	CHECK(s >= 0, "connect and banner", s);
	CHECK(send_frame(s, 1, 0 /* HANDSHAKE */, 0 /* GUEST */, "loop", 4) == 0,
	    "send handshake", 0);
	CHECK(read_all(s, &h, sizeof(h)) == 0 && h.class == 1 && h.reqno == 1
	    && h.len == sizeof(h) + 4, "handshake response", h.class);
	CHECK(read_all(s, &err, 4) == 0 && err == 0, "handshake error", err);
	CHECK(send_frame(s, 2, 1 /* SYSCALL */, 20 /* getpid */, &zero, 8) == 0,
	    "send getpid", 0);
	CHECK(read_all(s, &h, sizeof(h)) == 0 && h.class == 1 && h.reqno == 2
	    && h.len == sizeof(h) + 24, "getpid response", h.class);
	CHECK(read_all(s, body, 24) == 0, "getpid body", 0);
	err = (int32_t)(body[0] | body[1] << 8 | body[2] << 16 | (uint32_t)body[3] << 24);
	pid = 0;
	for (r = 7; r >= 0; r--)
		pid = pid << 8 | body[8 + r];
	CHECK(err == 0 && pid > 1, "a remote process of its own", pid);
	rumpuser_dprintf("kernel-sp-loop: handshake and getpid over loopback: pid %ld\n",
	    (long)pid);

	/* A body over 4 KiB: closed from the header. */
	h.len = sizeof(h) + 4097, h.reqno = 3, h.class = 0, h.type = 1, h.arg = 20;
	CHECK(write_all(s, &h, sizeof(h)) == 0, "send oversized header", 0);
	r = (int)rump_sys_read(s, body, sizeof(body));
	CHECK(r == 0, "the server closes after an oversized frame", r);
	rump_sys_close(s);

	/* A request before the handshake: ERROR(AUTH), then the close. */
	s = session();
	CHECK(s >= 0, "second connection", s);
	CHECK(send_frame(s, 1, 1, 20, &zero, 8) == 0, "send early request", 0);
	CHECK(read_all(s, &h, sizeof(h)) == 0 && h.class == 2 && h.arg == 2,
	    "ERROR(AUTH) before the close", h.class);
	r = (int)rump_sys_read(s, body, sizeof(body));
	CHECK(r == 0, "the server closes after ERROR(AUTH)", r);
	rump_sys_close(s);
	rumpuser_dprintf("kernel-sp-loop: frame limit and handshake rule hold\n");

	rump_sys_reboot(0, NULL);
	return 2;
}
