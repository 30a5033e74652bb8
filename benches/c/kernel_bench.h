/*
 * Shared by the real-kernel benchmark programs (kernel_*.c): a monotonic
 * clock in nanoseconds, a fatal-error exit naming the program, and a timed
 * start of several worker threads at once.
 */
#ifndef KERNEL_BENCH_H
#define KERNEL_BENCH_H

#include <pthread.h>
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

/* The two barriers of run_together(): every worker ready, then go. */
static inline pthread_barrier_t *
start_barrier(int which)
{
	static pthread_barrier_t b[2];

	return &b[which];
}

/* Called by each worker of run_together() once its setup is done; returns
 * when every worker has called it and the clock has started. */
static inline void
start_line(void)
{
	pthread_barrier_wait(start_barrier(0));
	pthread_barrier_wait(start_barrier(1));
}

/* Runs `threads` (at most 256) workers fn((void *)i), each doing its setup
 * and then calling start_line(); returns the nanoseconds from their common
 * start to the last one's exit. */
static inline uint64_t
run_together(int threads, void *(*fn)(void *))
{
	pthread_t t[256];
	uint64_t t0;

	if (threads < 1 || threads > 256)
		die("run_together (1-256 threads)");
	pthread_barrier_init(start_barrier(0), NULL, (unsigned)threads + 1);
	pthread_barrier_init(start_barrier(1), NULL, (unsigned)threads + 1);
	for (int i = 0; i < threads; i++)
		if (pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)i) != 0)
			die("pthread_create");
	pthread_barrier_wait(start_barrier(0));
	t0 = now();
	pthread_barrier_wait(start_barrier(1));
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	t0 = now() - t0;
	pthread_barrier_destroy(start_barrier(0));
	pthread_barrier_destroy(start_barrier(1));
	return t0;
}

#endif
