/*
 * A real-kernel block read benchmark: NetBSD's kernel layer (linked
 * dynamically, so any librumpuser.so.0 can sit under it) reads 4 KiB at
 * random offsets from a 64 MiB host file registered as a raw character
 * device (etfs), so every read goes through physio, the kernel's block
 * strategy and rumpuser_bio; the host file is in the page cache.
 *
 * usage: kernel_rawread FILE N   (prints "kernel_raw_read_4k NS_PER_READ")
 * Run by `cargo xtask bench-kernel`.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <rump/rump.h>
#include <rump/rump_syscalls.h>
#include <rump/rumpdefs.h>

#define FILE_BYTES (64u * 1024 * 1024)
#define BLOCK 4096

static uint64_t
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	static char buf[BLOCK] __attribute__((aligned(BLOCK)));
	uint64_t x = 88172645463325252ull, t0 = 0;
	int fd, e, n;

	if (argc != 3 || (n = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: kernel_rawread FILE N\n");
		return 2;
	}
	if ((e = rump_init()) != 0) {
		fprintf(stderr, "rump_init: %d\n", e);
		return 1;
	}
	if ((e = rump_pub_etfs_register("/dev/bench", argv[1], RUMP_ETFS_CHR)) != 0) {
		fprintf(stderr, "etfs_register: %d\n", e);
		return 1;
	}
	if ((fd = rump_sys_open("/dev/bench", RUMP_O_RDONLY)) < 0) {
		fprintf(stderr, "open /dev/bench failed\n");
		return 1;
	}
	/* One warm-up pass, then the measured one. */
	for (int pass = 0; pass < 2; pass++) {
		t0 = now();
		for (int i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			off_t off = (off_t)(x % (FILE_BYTES / BLOCK)) * BLOCK;
			if (rump_sys_pread(fd, buf, BLOCK, off) != BLOCK) {
				fprintf(stderr, "pread at %lld failed\n", (long long)off);
				return 1;
			}
		}
	}
	printf("kernel_raw_read_4k %.1f\n", (double)(now() - t0) / n);
	rump_sys_close(fd);
	return 0;
}
