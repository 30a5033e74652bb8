/*
 * A real-kernel block read benchmark: NetBSD's kernel layer (linked
 * dynamically, so any librumpuser.so.0 can sit under it) reads 4 KiB at
 * random offsets from a 64 MiB host file registered as a raw character
 * device (etfs), so every read goes through physio, the kernel's block
 * strategy and rumpuser_bio; the host file is in the page cache.
 *
 * usage: kernel_rawread FILE N [THREADS]
 *
 * With one thread (the default) it prints "kernel_raw_read_4k NS_PER_READ".
 * With THREADS > 1, each host thread forks its own kernel process, opens
 * the device and reads N / THREADS blocks, so up to THREADS requests are
 * in flight at once (one per thread, as with that many processes reading
 * in a real system); it prints "kernel_raw_read_4k_tTHREADS NS" where NS
 * is wall time per read over all threads.
 * Run by `cargo xtask bench-kernel`.
 */
#include <sys/types.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <rump/rump.h>
#include <rump/rump_syscalls.h>
#include <rump/rumpdefs.h>

#include "kernel_bench.h"

#define FILE_BYTES (64u * 1024 * 1024)
#define BLOCK 4096
#define MAX_THREADS 256

static int per_thread;
static volatile int failed;


/* `n` reads at xorshift offsets from `*x`; 0 on success. */
static int
read_blocks(int fd, char *buf, int n, uint64_t *x)
{
	for (int i = 0; i < n; i++) {
		*x ^= *x << 13;
		*x ^= *x >> 7;
		*x ^= *x << 17;
		off_t off = (off_t)(*x % (FILE_BYTES / BLOCK)) * BLOCK;
		if (rump_sys_pread(fd, buf, BLOCK, off) != BLOCK) {
			fprintf(stderr, "pread at %lld failed\n", (long long)off);
			return -1;
		}
	}
	return 0;
}

static void *
reader(void *arg)
{
	char *buf = aligned_alloc(BLOCK, BLOCK);
	uint64_t x = 88172645463325252ull + 0x9e3779b97f4a7c15ull * (uintptr_t)arg;
	int fd = -1, ok;

	ok = buf != NULL && rump_pub_lwproc_rfork(RUMP_RFCFDG) == 0 &&
	    (fd = rump_sys_open("/dev/bench", RUMP_O_RDONLY)) >= 0;
	/* Warm-up (every thread's first use), then the measured pass. */
	if (!ok || read_blocks(fd, buf, per_thread / 4 + 1, &x) != 0)
		failed = 1;
	start_line();
	if (!failed && read_blocks(fd, buf, per_thread, &x) != 0)
		failed = 1;
	if (fd >= 0)
		rump_sys_close(fd);
	if (ok)
		rump_pub_lwproc_releaselwp();
	free(buf);
	return NULL;
}

int
main(int argc, char **argv)
{
	static char buf[BLOCK] __attribute__((aligned(BLOCK)));
	uint64_t x = 88172645463325252ull, t0 = 0;
	int fd, n, threads = 1;

	if (argc < 3 || argc > 4 || (n = atoi(argv[2])) <= 0 ||
	    (argc == 4 && ((threads = atoi(argv[3])) < 1 || threads > MAX_THREADS))) {
		fprintf(stderr, "usage: kernel_rawread FILE N [THREADS (1-%d)]\n", MAX_THREADS);
		return 2;
	}
	if (rump_init() != 0)
		die("rump_init");
	if (rump_pub_etfs_register("/dev/bench", argv[1], RUMP_ETFS_CHR) != 0)
		die("etfs_register");
	if (threads > 1) {
		per_thread = n / threads;
		if (per_thread == 0)
			per_thread = 1;
		t0 = run_together(threads, reader);
		if (failed)
			return 1;
		printf("kernel_raw_read_4k_t%d %.1f\n", threads,
		    (double)t0 / ((double)per_thread * threads));
		return 0;
	}
	if ((fd = rump_sys_open("/dev/bench", RUMP_O_RDONLY)) < 0)
		die("open /dev/bench");
	/* One warm-up pass, then the measured one. */
	for (int pass = 0; pass < 2; pass++) {
		t0 = now();
		if (read_blocks(fd, buf, n, &x) != 0)
			return 1;
		t0 = now() - t0;
	}
	printf("kernel_raw_read_4k %.1f\n", (double)t0 / n);
	rump_sys_close(fd);
	return 0;
}
