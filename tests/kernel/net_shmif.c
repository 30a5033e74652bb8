/* LIBS: -lrumpnet_shmif -lrumpnet_config -lrumpnet_netinet -lrumpnet_net -lrumpnet -lrump */
/*
 * TCP between two rump kernels (two processes) over the shared-memory
 * interface: the packets only ever exist in a bus file, never on a host
 * network. Uses the documentation prefix 192.0.2.0/24.
 */
#include "kt.h"
#include <sys/wait.h>
#include <arpa/inet.h>
#include <rump/netconfig.h>
#include <rump/rumpnet_if_pub.h>

struct kt_sin { uint8_t len, family; uint16_t port; uint32_t addr; uint8_t zero[8]; };
#define KT_AF_INET 2
#define KT_SOCK_STREAM 1

static void up(const char *addr) {
	int ifn;
	CHECK(rump_init() == 0, "rump_init");
	CHECK(rump_pub_shmif_create("shmif.bus", &ifn) == 0, "shmif_create");
	CHECK(rump_pub_netconfig_ipv4_ifaddr("shmif0", addr, "255.255.255.0") == 0, "ifaddr %s", addr);
	CHECK(rump_pub_netconfig_ifup("shmif0") == 0, "ifup");
}

static struct kt_sin sin_of(uint32_t host_order_addr, uint16_t port) {
	struct kt_sin s;
	memset(&s, 0, sizeof(s));
	s.len = sizeof(s); s.family = KT_AF_INET;
	s.port = htons(port); s.addr = htonl(host_order_addr);
	return s;
}

int main(void) {
	unlink("shmif.bus");
	pid_t child = fork();
	CHECK(child >= 0, "fork");
	if (child == 0) {
		up("192.0.2.2");
		int s = rump_sys_socket(KT_AF_INET, KT_SOCK_STREAM, 0);
		struct kt_sin a = sin_of(0, 4321);
		CHECK(s >= 0 && rump_sys_bind(s, (void *)&a, sizeof(a)) == 0, "bind");
		CHECK(rump_sys_listen(s, 1) == 0, "listen");
		int c = rump_sys_accept(s, NULL, NULL);
		CHECK(c >= 0, "accept");
		char buf[64]; ssize_t n = rump_sys_read(c, buf, sizeof(buf));
		CHECK(n > 0, "server read");
		CHECK(rump_sys_write(c, buf, (size_t)n) == n, "server echo");
		rump_sys_close(c);
		_exit(0);
	}
	up("192.0.2.1");
	struct kt_sin a = sin_of(0xc0000202u, 4321);
	int s = -1, ok = 0;
	uint64_t t0 = kt_now_ns();
	for (int i = 0; i < 200 && !ok; i++) {
		s = rump_sys_socket(KT_AF_INET, KT_SOCK_STREAM, 0);
		if (rump_sys_connect(s, (void *)&a, sizeof(a)) == 0) ok = 1;
		else { rump_sys_close(s); usleep(50 * 1000); }
	}
	CHECK(ok, "connect to 192.0.2.2:4321");
	const char msg[] = "hello over shmif";
	CHECK(rump_sys_write(s, msg, sizeof(msg)) == (ssize_t)sizeof(msg), "client write");
	char buf[64]; size_t got = 0;
	while (got < sizeof(msg)) {
		ssize_t n = rump_sys_read(s, buf + got, sizeof(buf) - got);
		CHECK(n > 0, "client read");
		got += (size_t)n;
	}
	CHECK(memcmp(buf, msg, sizeof(msg)) == 0, "echo matches");
	int st;
	waitpid(child, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "server process status %d", st);
	printf("net: TCP echo between two rump kernels over shmif in %.1f ms\n", (kt_now_ns() - t0) / 1e6);
	unlink("shmif.bus");
	return 0;
}
