/*
 * A host program on NetBSD's librumpclient that calls into a bare-metal
 * guest's kernel over TCP (RUMP_SERVER=tcp://127.0.0.1:PORT, forwarded by
 * QEMU's user-mode network to the guest of tests/baremetal/kernel_sp.c).
 * `cargo xtask baremetal-test` runs it in these modes:
 *
 *   list       lists /mnt (the guest's ext2) and /mnt/dir1, reads
 *              /mnt/hello.txt, writes /mnt/fromhost.txt (256 KiB of text)
 *              and reads it back
 *   block P    listens on guest port P and blocks in accept(2) until
 *              killed (prints "blocking" first)
 *   probe P    prints "busy" if guest port P cannot be bound, "free" if
 *              it can (and releases it)
 *   refused    expects the server to refuse the connection (full)
 *   reboot     reboots the guest kernel (the guest powers off)
 *
 * Exit status 0 when the mode's checks hold; messages on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rump/rumpclient.h>
#include <rump/rump_syscalls.h>
#include <rump/rumpdefs.h>

#define FAIL(...) do {							\
	fprintf(stderr, "sp-client: FAIL ");				\
	fprintf(stderr, __VA_ARGS__);					\
	fprintf(stderr, " (errno %d)\n", errno);			\
	exit(1);							\
} while (0)
#define CHECK(c, ...) do { if (!(c)) FAIL(__VA_ARGS__); } while (0)

#define FROMHOST (256 * 1024)
#define NB_EADDRINUSE 48

/* NetBSD's struct sockaddr_in. */
struct nb_sin {
	uint8_t len, family;
	uint16_t port;
	uint32_t addr;
	uint8_t zero[8];
};

/* The text of /mnt/fromhost.txt (xtask checks the disk with the same). */
static void
fromhost_text(char *buf, size_t n)
{
	size_t off = 0;
	unsigned line = 0;

	while (off < n) {
		char l[32];
		int k = snprintf(l, sizeof(l), "rumpclient line %06u\n", line++);

		for (int i = 0; i < k && off < n; i++)
			buf[off++] = l[i];
	}
}

/* Connects, retrying for up to `secs` while the guest boots. */
static void
connect_server(int secs)
{
	for (int i = 0; i < secs * 5; i++) {
		if (rumpclient_init() == 0)
			return;
		usleep(200000);
	}
	FAIL("rumpclient_init to %s", getenv("RUMP_SERVER"));
}

/* The names in directory `path`, space-separated, into `out`. */
static void
list(const char *path, char *out, size_t outlen)
{
	char buf[8192];
	int fd = rump_sys_open(path, RUMP_O_RDONLY | RUMP_O_DIRECTORY);
	ssize_t n;

	CHECK(fd >= 0, "open %s", path);
	out[0] = '\0';
	while ((n = rump_sys_getdents(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n; ) {
			/* NetBSD struct dirent: ino_t, reclen, namlen, type, name */
			uint16_t reclen, namlen;

			memcpy(&reclen, buf + off + 8, 2);
			memcpy(&namlen, buf + off + 10, 2);
			CHECK(reclen > 0 && off + reclen <= n, "dirent record");
			strncat(out, " ", outlen - strlen(out) - 1);
			strncat(out, buf + off + 13,
			    namlen < outlen - strlen(out) - 1 ? namlen : outlen - strlen(out) - 1);
			off += reclen;
		}
	}
	CHECK(n == 0, "getdents %s", path);
	CHECK(rump_sys_close(fd) == 0, "close %s", path);
}

static int
has(const char *names, const char *name)
{
	char w[300];

	snprintf(w, sizeof(w), " %s", name);
	for (const char *p = strstr(names, w); p; p = strstr(p + 1, w))
		if (p[strlen(w)] == ' ' || p[strlen(w)] == '\0')
			return 1;
	return 0;
}

static char *
slurp(const char *path, size_t max, ssize_t *len)
{
	char *buf = malloc(max);
	int fd = rump_sys_open(path, RUMP_O_RDONLY);
	ssize_t got = 0, n;

	CHECK(buf && fd >= 0, "open %s", path);
	while (got < (ssize_t)max && (n = rump_sys_read(fd, buf + got, max - got)) > 0)
		got += n;
	CHECK(rump_sys_close(fd) == 0, "close %s", path);
	*len = got;
	return buf;
}

static int
do_list(void)
{
	static char text[FROMHOST];
	char names[1024];
	ssize_t n;
	char *b;
	int fd;

	connect_server(180);
	CHECK(rump_sys_getpid() > 1, "a remote process of its own");
	list("/mnt", names, sizeof(names));
	printf("/mnt:%s\n", names);
	CHECK(has(names, "hello.txt") && has(names, "dir1") && has(names, "lost+found"),
	    "/mnt lists hello.txt, dir1 and lost+found (got%s)", names);
	list("/mnt/dir1", names, sizeof(names));
	printf("/mnt/dir1:%s\n", names);
	CHECK(has(names, "nested.txt"), "/mnt/dir1 lists nested.txt (got%s)", names);

	b = slurp("/mnt/hello.txt", 4096, &n);
	CHECK(n == 28 && memcmp(b, "hello from the guest's ext2\n", 28) == 0,
	    "/mnt/hello.txt reads as the guest wrote it (%zd bytes)", n);
	printf("/mnt/hello.txt: %.*s", (int)n, b);
	free(b);

	fromhost_text(text, sizeof(text));
	fd = rump_sys_open("/mnt/fromhost.txt", RUMP_O_RDWR | RUMP_O_CREAT | RUMP_O_TRUNC, 0644);
	CHECK(fd >= 0, "create /mnt/fromhost.txt");
	CHECK(rump_sys_write(fd, text, sizeof(text)) == (ssize_t)sizeof(text),
	    "write 256 KiB");
	CHECK(rump_sys_fsync(fd) == 0, "fsync");
	CHECK(rump_sys_close(fd) == 0, "close");
	b = slurp("/mnt/fromhost.txt", 2 * FROMHOST, &n);
	CHECK(n == FROMHOST && memcmp(b, text, FROMHOST) == 0,
	    "/mnt/fromhost.txt reads back (%zd bytes)", n);
	free(b);
	errno = 0;
	CHECK(rump_sys_open("/mnt/no-such-file", RUMP_O_RDONLY) == -1 && errno == ENOENT,
	    "ENOENT from the guest");
	printf("wrote and read back /mnt/fromhost.txt (%d bytes)\n", FROMHOST);
	return 0;
}

static int
bind_port(int port, int listen_too)
{
	struct nb_sin a;
	int s = rump_sys_socket(RUMP_AF_INET, RUMP_SOCK_STREAM, 0);

	CHECK(s >= 0, "socket in the guest");
	memset(&a, 0, sizeof(a));
	a.len = sizeof(a);
	a.family = RUMP_AF_INET;
	a.port = htons((uint16_t)port);
	if (rump_sys_bind(s, (void *)&a, sizeof(a)) != 0) {
		int e = errno;

		rump_sys_close(s);
		errno = e;
		return -1;
	}
	if (listen_too)
		CHECK(rump_sys_listen(s, 1) == 0, "listen on %d", port);
	return s;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return do_list();
	if (argc >= 3 && strcmp(argv[1], "block") == 0) {
		int s;

		connect_server(30);
		s = bind_port(atoi(argv[2]), 1);
		CHECK(s >= 0, "bind %s", argv[2]);
		printf("blocking\n");
		fflush(stdout);
		rump_sys_accept(s, NULL, NULL);
		FAIL("accept returned");
	}
	if (argc >= 3 && strcmp(argv[1], "probe") == 0) {
		int s;

		connect_server(30);
		s = bind_port(atoi(argv[2]), 0);
		if (s >= 0) {
			rump_sys_close(s);
			printf("free\n");
			return 0;
		}
		CHECK(errno == NB_EADDRINUSE || errno == EADDRINUSE, "bind error");
		printf("busy\n");
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "refused") == 0) {
		rumpclient_setconnretry(RUMPCLIENT_RETRYCONN_ONCE);
		if (rumpclient_init() == 0) {
			printf("accepted\n");
			return 1;
		}
		printf("refused\n");
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "reboot") == 0) {
		connect_server(30);
		errno = 0;
		int r = rump_sys_reboot(0, NULL);
		printf("reboot: %d (errno %d)\n", r, errno);
		return 0;
	}
	fprintf(stderr, "usage: sp_client list | block PORT | probe PORT | refused | reboot\n");
	return 2;
}
