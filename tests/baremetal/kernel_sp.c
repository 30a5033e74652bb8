/*
 * The syscall proxy on bare metal: the real kernel layer mounts ext2 from
 * its virtio disk, brings a network interface up and serves itself to
 * remote librumpclient programs on its own TCP/IP stack.
 * Freestanding (no C library): output with rumpuser_dprintf.
 *
 *   kernel_sp IFNAME ADDR MASK PORT
 *
 * rump_init; ext2 on virtio0 (TEST_DISK=NAME on the command line names
 * another; through rumpuser_bio, etfs /dev/xd0) at
 * /mnt with /mnt/hello.txt and /mnt/dir1/nested.txt written; IFNAME
 * configured (created first when it is virtN); rump_init_server on
 * tcp://ADDR:PORT; then main sleeps: a remote client ends the kernel with
 * reboot(2), which unmounts /mnt and powers off with status 0.
 * `cargo xtask baremetal-test` boots it and runs tests/baremetal/sp_client.c
 * on the host against it (xtask/src/baremetal_sp.rs).
 */
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include <rump/netconfig.h>
#include <rump/rump.h>
#include <rump/rump_syscalls.h>
#include <rump/rumpdefs.h>

void rumpuser_dprintf(const char *, ...);
int rumpuser_getparam(const char *, void *, size_t);
int rumpuser_pvh_errno(void);

#define CHECK(cond, what) do {						\
	if (!(cond)) {							\
		rumpuser_dprintf("kernel-sp: FAIL %s (errno %d)\n",	\
		    what, rumpuser_pvh_errno());			\
		return 1;						\
	}								\
} while (0)

struct ufs_args_compat { char *fspec; };

static const char hello[] = "hello from the guest's ext2\n";
static const char nested[] = "a file in a directory\n";

static size_t
slen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

static int
put(const char *path, const char *text)
{
	int fd = rump_sys_open(path, RUMP_O_RDWR | RUMP_O_CREAT | RUMP_O_TRUNC, 0644);
	size_t n = slen(text);

	if (fd < 0)
		return -1;
	if (rump_sys_write(fd, text, n) != (ssize_t)n) {
		rump_sys_close(fd);
		return -1;
	}
	return rump_sys_close(fd);
}


/* The disk rumpuser_bio serves: virtio0 on bare metal, or the command
 * line's TEST_DISK=NAME (xvda on Xen). */
static const char *
disk_name(void)
{
	static char name[32];

	if (rumpuser_getparam("TEST_DISK", name, sizeof(name)) != 0)
		return "virtio0";
	return name;
}

int
main(int argc, char **argv)
{
	struct ufs_args_compat args = { .fspec = "/dev/xd0" };
	char url[64];
	const char *p;
	size_t i = 0;

	if (argc < 5) {
		rumpuser_dprintf("usage: kernel_sp IFNAME ADDR MASK PORT\n");
		return 2;
	}
	CHECK(rump_init() == 0, "rump_init");
	CHECK(rump_pub_etfs_register("/dev/xd0", disk_name(), RUMP_ETFS_BLK) == 0,
	    "etfs_register");
	rump_sys_mkdir("/mnt", 0777);
	CHECK(rump_sys_mount("ext2fs", "/mnt", 0, &args, sizeof(args)) == 0,
	    "mount ext2fs");
	CHECK(put("/mnt/hello.txt", hello) == 0, "write /mnt/hello.txt");
	CHECK(rump_sys_mkdir("/mnt/dir1", 0755) == 0, "mkdir /mnt/dir1");
	CHECK(put("/mnt/dir1/nested.txt", nested) == 0, "write /mnt/dir1/nested.txt");
	rumpuser_dprintf("kernel-sp: ext2 mounted on /mnt with hello.txt and dir1/\n");

	if (argv[1][0] == 'v' && argv[1][1] == 'i' && argv[1][2] == 'r' && argv[1][3] == 't')
		CHECK(rump_pub_netconfig_ifcreate(argv[1]) == 0, "ifcreate");
	CHECK(rump_pub_netconfig_ipv4_ifaddr(argv[1], argv[2], argv[3]) == 0, "ifaddr");
	CHECK(rump_pub_netconfig_ifup(argv[1]) == 0, "ifup");

	for (p = "tcp://"; *p; p++)
		url[i++] = *p;
	for (p = argv[2]; *p && i < sizeof(url) - 8; p++)
		url[i++] = *p;
	url[i++] = ':';
	for (p = argv[4]; *p && i < sizeof(url) - 1; p++)
		url[i++] = *p;
	url[i] = '\0';
	CHECK(rump_init_server(url) == 0, "rump_init_server");
	rumpuser_dprintf("kernel-sp: %s up as %s, serving %s\n", argv[1], argv[2], url);

	for (;;) {
		struct { int64_t sec; long nsec; } ts = { 1, 0 };

		rump_sys_nanosleep((void *)&ts, NULL);
	}
}
