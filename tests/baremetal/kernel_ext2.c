/*
 * The real kernel layer on bare metal: rump_init, an ext2 file system on
 * the virtio disk, a file written, synced, read back after a remount,
 * then rump_sys_reboot. Freestanding (no C library): output with
 * rumpuser_dprintf, errno with rumpuser_pvh_errno.
 *
 *   kernel_ext2            the disk through rumpuser_bio ("virtio0", or
 *                          TEST_DISK=NAME on the command line; registered
 *                          as /dev/xd0 with etfs)
 *   kernel_ext2 /dev/ld0d  the disk through NetBSD's own ld driver
 *                          (librumpdev_virtio_ld on librumpdev_pci)
 *
 * `cargo xtask baremetal-test` links it against $RUMP_KERNEL_DIR (built
 * with RUMP_CURLWP=hypercall) when that is set, boots it with an image
 * made by mke2fs, and checks the image with debugfs afterwards.
 */
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include <rump/rump.h>
#include <rump/rump_syscalls.h>
#include <rump/rumpdefs.h>

void rumpuser_dprintf(const char *, ...);
int rumpuser_getparam(const char *, void *, size_t);
int rumpuser_pvh_errno(void);

#define CHECK(cond, what) do {						\
	if (!(cond)) {							\
		rumpuser_dprintf("kernel-ext2: FAIL %s (errno %d)\n",	\
		    what, rumpuser_pvh_errno());			\
		return 1;						\
	}								\
} while (0)

struct ufs_args_compat { char *fspec; };

static char buf[1 << 20], rbuf[1 << 20];


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
	size_t i, got;
	ssize_t n;
	int fd;

	CHECK(rump_init() == 0, "rump_init");
	rumpuser_dprintf("kernel-ext2: rump_init done\n");
	if (argc > 1) {
		args.fspec = argv[1];
		rumpuser_dprintf("kernel-ext2: mounting %s\n", argv[1]);
	} else {
		CHECK(rump_pub_etfs_register("/dev/xd0", disk_name(), RUMP_ETFS_BLK) == 0,
		    "etfs_register");
	}
	rump_sys_mkdir("/mnt", 0777);
	CHECK(rump_sys_mount("ext2fs", "/mnt", 0, &args, sizeof(args)) == 0,
	    "mount ext2fs");
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 31 + 7);
	fd = rump_sys_open("/mnt/data", RUMP_O_RDWR | RUMP_O_CREAT, 0644);
	CHECK(fd >= 0, "create /mnt/data");
	CHECK(rump_sys_write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf), "write 1 MiB");
	CHECK(rump_sys_fsync(fd) == 0, "fsync");
	rump_sys_close(fd);
	fd = rump_sys_open("/mnt/hello", RUMP_O_RDWR | RUMP_O_CREAT, 0644);
	CHECK(fd >= 0 && rump_sys_write(fd, "hello bare metal\n", 17) == 17, "write hello");
	rump_sys_close(fd);
	CHECK(rump_sys_unmount("/mnt", 0) == 0, "unmount");
	CHECK(rump_sys_mount("ext2fs", "/mnt", 0, &args, sizeof(args)) == 0, "remount");
	fd = rump_sys_open("/mnt/data", RUMP_O_RDONLY);
	CHECK(fd >= 0, "reopen /mnt/data");
	for (got = 0; got < sizeof(rbuf); got += (size_t)n) {
		n = rump_sys_read(fd, rbuf + got, sizeof(rbuf) - got);
		CHECK(n > 0, "read");
	}
	for (i = 0; i < sizeof(buf); i++)
		CHECK(buf[i] == rbuf[i], "1 MiB read back after remount");
	rump_sys_close(fd);
	CHECK(rump_sys_unmount("/mnt", 0) == 0, "final unmount");
	rumpuser_dprintf("kernel-ext2: 1 MiB written, synced, remounted and verified\n");
	rump_sys_reboot(0, NULL);
	rumpuser_dprintf("kernel-ext2: reboot returned\n");
	return 2;
}
