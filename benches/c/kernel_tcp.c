/*
 * A real-kernel network benchmark: two rump kernels (this process and a
 * forked child, each NetBSD's kernel layer with TCP/IP, linked
 * dynamically so any librumpuser.so.0 can sit under it) talk TCP over the
 * shared-memory interface (shmif: the frames only ever exist in a bus
 * file). Every frame wakes the other kernel's shmif thread, its network
 * soft interrupt and the reading thread, so this measures how quickly the
 * hypercall layer hands work between threads of two processes that share
 * the host's CPUs.
 *
 * usage: kernel_tcp BUSFILE rt N     (N 64-byte request/reply round trips)
 *        kernel_tcp BUSFILE stream N (N bytes one way, 64 KiB writes)
 * prints "kernel_tcp_rt_64b NS_PER_ROUND_TRIP" or
 *        "kernel_tcp_stream MIB_PER_SECOND"
 * Run by `cargo xtask bench-kernel`. Uses the documentation prefix
 * 192.0.2.0/24.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rump/netconfig.h>
#include <rump/rump.h>
#include <rump/rump_syscalls.h>
#include <rump/rumpdefs.h>

#include "kernel_bench.h"
#include <rump/rumpnet_if_pub.h>

/* NetBSD's struct sockaddr_in (sin_len first). */
struct nb_sin {
	uint8_t len, family;
	uint16_t port;
	uint32_t addr;
	uint8_t zero[8];
};

#define NB_AF_INET 2
#define NB_SOCK_STREAM 1
#define PORT 7777
#define SERVER 0xc0000201u /* 192.0.2.1 */

static char buf[65536];



static void
up(const char *bus, const char *addr)
{
	int ifn;

	if (rump_init() != 0)
		die("rump_init");
	if (rump_pub_shmif_create(bus, &ifn) != 0)
		die("shmif_create");
	if (rump_pub_netconfig_ipv4_ifaddr("shmif0", addr, "255.255.255.0") != 0)
		die("ifaddr");
	if (rump_pub_netconfig_ifup("shmif0") != 0)
		die("ifup");
}

static struct nb_sin
server_addr(void)
{
	struct nb_sin s;

	memset(&s, 0, sizeof(s));
	s.len = sizeof(s);
	s.family = NB_AF_INET;
	s.port = htons(PORT);
	s.addr = htonl(SERVER);
	return s;
}

/* The child: accepts one connection, then echoes (rt) or sinks (stream). */
static void
server(const char *bus, int rt, long total, int ready_fd)
{
	struct nb_sin a = server_addr();
	long got = 0;
	int s, c;

	up(bus, "192.0.2.1");
	if ((s = rump_sys_socket(NB_AF_INET, NB_SOCK_STREAM, 0)) < 0)
		die("socket");
	if (rump_sys_bind(s, (void *)&a, sizeof(a)) != 0)
		die("bind");
	if (rump_sys_listen(s, 1) != 0)
		die("listen");
	if (write(ready_fd, "r", 1) != 1)
		die("ready");
	if ((c = rump_sys_accept(s, NULL, NULL)) < 0)
		die("accept");
	while (got < total) {
		ssize_t n = rump_sys_read(c, buf, rt ? 64 : sizeof(buf));

		if (n <= 0)
			die("server read");
		if (rt && rump_sys_write(c, buf, (size_t)n) != n)
			die("server write");
		got += n;
	}
	if (!rt && rump_sys_write(c, "k", 1) != 1)
		die("server ack");
	_exit(0);
}

int
main(int argc, char **argv)
{
	struct nb_sin a = server_addr();
	int p[2], s, st, rt;
	long n, total;
	uint64_t t0;
	pid_t child;
	char x;

	if (argc != 4 || (strcmp(argv[2], "rt") && strcmp(argv[2], "stream")) ||
	    (n = atol(argv[3])) <= 0) {
		fprintf(stderr, "usage: kernel_tcp BUSFILE rt|stream N\n");
		return 2;
	}
	rt = strcmp(argv[2], "rt") == 0;
	total = rt ? n * 64 : n;
	unlink(argv[1]);
	if (pipe(p) != 0)
		die("pipe");
	if ((child = fork()) < 0)
		die("fork");
	if (child == 0)
		server(argv[1], rt, total, p[1]);
	if (read(p[0], &x, 1) != 1)
		die("wait for the server");
	up(argv[1], "192.0.2.2");
	if ((s = rump_sys_socket(NB_AF_INET, NB_SOCK_STREAM, 0)) < 0)
		die("socket");
	if (rump_sys_connect(s, (void *)&a, sizeof(a)) != 0)
		die("connect");
	t0 = now();
	if (rt) {
		for (long i = 0; i < n; i++) {
			long got = 0;

			if (rump_sys_write(s, buf, 64) != 64)
				die("client write");
			while (got < 64) {
				ssize_t r = rump_sys_read(s, buf, (size_t)(64 - got));

				if (r <= 0)
					die("client read");
				got += r;
			}
		}
		printf("kernel_tcp_rt_64b %.1f\n", (double)(now() - t0) / (double)n);
	} else {
		for (long sent = 0; sent < total;) {
			ssize_t w = rump_sys_write(s, buf, sizeof(buf));

			if (w <= 0)
				die("client write");
			sent += w;
		}
		if (rump_sys_read(s, buf, 1) != 1)
			die("ack");
		printf("kernel_tcp_stream %.1f\n",
		    (double)total / 1048576.0 / ((double)(now() - t0) / 1e9));
	}
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("server");
	unlink(argv[1]);
	return 0;
}
