/*
 * Shared by the real-kernel benchmark programs (kernel_*.c): a monotonic
 * clock in nanoseconds and a fatal-error exit naming the program.
 */
#ifndef KERNEL_BENCH_H
#define KERNEL_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* glibc's name of the running program (declared by <errno.h> only under
 * _GNU_SOURCE). */
extern char *program_invocation_short_name;

/* Prints "<program>: <what> failed" and exits with status 1. */
static inline void
die(const char *what)
{
	fprintf(stderr, "%s: %s failed\n", program_invocation_short_name, what);
	exit(1);
}

#endif
