/*
 * microbench.c: a C-ABI micro-benchmark that any librumpuser (interface
 * version 17) can be linked with -- ours, NetBSD's pthread or fiber one.
 *
 * It uses only <rump/rumpuser.h>, libc and pthreads, brings its own tiny
 * upcall table (schedule/unschedule no-ops that count, lwproc_newlwp that
 * binds a fresh lwp with rumpuser_curlwpop), and prints one line per
 * operation:
 *
 *	op ns_per_op
 *
 * ("op -" when the operation does not apply; lines starting with '#' are
 * information). Each figure is the median of REPS timed batches whose
 * size is calibrated to ~BATCH_MS milliseconds.
 *
 * Whether kernel threads run in parallel (posix, pthread) or cooperatively
 * on the calling host thread (green, fiber) is detected at start: if a
 * thread made with rumpuser_thread_create runs on our own host thread, the
 * library is cooperative. Override with -p (parallel) or -c (cooperative).
 *
 * Build: cc -O2 -I<dist>/include microbench.c -L<dir> -l<rumpuser> -lpthread
 * Usage: microbench [-l] [-p|-c] [-P] [-f bio-file] [-o op-prefix]
 *	-l lists the operations; -o runs those whose name starts with op-prefix.
 *	-P pins the two threads of mutex_contended_2thr to CPUs 0 and 1 (where
 *	the host scheduler puts them decides between time slices on one CPU
 *	and real contention on two; -P forces the latter).
 * `cargo xtask bench-c` builds and runs it against every library.
 */

#define _GNU_SOURCE
#include <sys/stat.h>
#include <sys/types.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rump/rumpuser.h>
#include <rump/rumpuser_component.h>

#define REPS 5
#define BATCH_MS 100
#define BIO_FILE_SIZE (64ULL << 20)
#define BIO_BLOCK 4096
#define MAX_DEPTH 64
#define NOFFS (1 << 16)

static int cooperative;
static int pin_contended;
static const char *only;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
die(const char *what, int e)
{
	fprintf(stderr, "microbench: %s: %d\n", what, e);
	exit(1);
}

/* ---- the upcall table -------------------------------------------------- */

/*
 * Upcall counts: a relaxed load and store, not a locked increment, so that
 * counting adds no atomic read-modify-write to the measured paths (a
 * concurrent upcall may lose an increment; the counts are informational).
 */
static atomic_ulong n_sched, n_unsched, n_bunsched, n_bsched;

static void
bump(atomic_ulong *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
	    memory_order_relaxed);
}

static struct lwp *
new_lwp(void)
{
	struct lwp *l = malloc(16);

	if (l == NULL)
		die("malloc lwp", ENOMEM);
	return l;
}

static void
bind_lwp(struct lwp *l)
{
	rumpuser_curlwpop(RUMPUSER_LWP_CREATE, l);
	rumpuser_curlwpop(RUMPUSER_LWP_SET, l);
}

static void
unbind_lwp(struct lwp *l)
{
	rumpuser_curlwpop(RUMPUSER_LWP_CLEAR, l);
	rumpuser_curlwpop(RUMPUSER_LWP_DESTROY, l);
	free(l);
}

static void up_schedule(void) { bump(&n_sched); }
static void up_unschedule(void) { bump(&n_unsched); }

static void
up_backend_unschedule(int nlocks, int *countp, void *interlock)
{
	(void)nlocks;
	(void)interlock;
	bump(&n_bunsched);
	if (countp)
		*countp = 0;
}

static void
up_backend_schedule(int nlocks, void *interlock)
{
	(void)nlocks;
	(void)interlock;
	bump(&n_bsched);
}

static void
up_lwproc_switch(struct lwp *l)
{
	struct lwp *cur = rumpuser_curlwp();

	if (cur)
		rumpuser_curlwpop(RUMPUSER_LWP_CLEAR, cur);
	if (l)
		rumpuser_curlwpop(RUMPUSER_LWP_SET, l);
}

static void
up_lwproc_release(void)
{
	struct lwp *cur = rumpuser_curlwp();

	if (cur)
		unbind_lwp(cur);
}

static int
up_lwproc_rfork(void *priv, int flags, const char *comm)
{
	(void)priv;
	(void)flags;
	(void)comm;
	return 6; /* ENXIO */
}

static int
up_lwproc_newlwp(int32_t pid)
{
	struct lwp *l = new_lwp(), *cur;

	(void)pid;
	rumpuser_curlwpop(RUMPUSER_LWP_CREATE, l);
	if ((cur = rumpuser_curlwp()) != NULL)
		rumpuser_curlwpop(RUMPUSER_LWP_CLEAR, cur);
	rumpuser_curlwpop(RUMPUSER_LWP_SET, l);
	return 0;
}

static struct lwp *up_lwproc_curlwp(void) { return rumpuser_curlwp(); }

static int
up_syscall(int num, void *args, long *retval)
{
	(void)num;
	(void)args;
	(void)retval;
	return 78; /* ENOSYS */
}

static void up_lwpexit(void) {}
static void up_execnotify(const char *comm) { (void)comm; }
static int32_t up_getpid(void) { return 0; }

static const struct rumpuser_hyperup hyp = {
	.hyp_schedule = up_schedule,
	.hyp_unschedule = up_unschedule,
	.hyp_backend_unschedule = up_backend_unschedule,
	.hyp_backend_schedule = up_backend_schedule,
	.hyp_lwproc_switch = up_lwproc_switch,
	.hyp_lwproc_release = up_lwproc_release,
	.hyp_lwproc_rfork = up_lwproc_rfork,
	.hyp_lwproc_newlwp = up_lwproc_newlwp,
	.hyp_lwproc_curlwp = up_lwproc_curlwp,
	.hyp_syscall = up_syscall,
	.hyp_lwpexit = up_lwpexit,
	.hyp_execnotify = up_execnotify,
	.hyp_getpid = up_getpid,
};

/* ---- helpers ------------------------------------------------------------ */

static void *
spawn(void *(*f)(void *), void *arg)
{
	void *cookie = NULL;
	int e = rumpuser_thread_create(f, arg, "microbench", 1, -1, -1, &cookie);

	if (e)
		die("rumpuser_thread_create", e);
	return cookie;
}

static void
join(void *cookie)
{
	int e = rumpuser_thread_join(cookie);

	if (e)
		die("rumpuser_thread_join", e);
}

static struct rumpuser_mtx *
mtx_new(void)
{
	struct rumpuser_mtx *m;

	rumpuser_mutex_init(&m, RUMPUSER_MTX_KMUTEX);
	return m;
}

static struct rumpuser_cv *
cv_new(void)
{
	struct rumpuser_cv *cv;

	rumpuser_cv_init(&cv);
	return cv;
}

/* Keeps the compiler from dropping a computation. */
static volatile uint64_t sink;

/* ---- operations: each runs `n` iterations, returns elapsed ns ---------- */

static uint64_t
op_mutex(uint64_t n)
{
	struct rumpuser_mtx *m = mtx_new();
	uint64_t t0 = now_ns();

	for (uint64_t i = 0; i < n; i++) {
		rumpuser_mutex_enter(m);
		rumpuser_mutex_exit(m);
	}
	t0 = now_ns() - t0;
	rumpuser_mutex_destroy(m);
	return t0;
}

static uint64_t
op_rw(uint64_t n)
{
	struct rumpuser_rw *rw;
	uint64_t t0;

	rumpuser_rw_init(&rw);
	t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		rumpuser_rw_enter(RUMPUSER_RW_READER, rw);
		rumpuser_rw_exit(rw);
	}
	t0 = now_ns() - t0;
	rumpuser_rw_destroy(rw);
	return t0;
}

struct shared {
	struct rumpuser_mtx *m;
	struct rumpuser_cv *cv;
	atomic_int started, stop, turn;
};

/* -P: the calling thread onto one CPU (errors ignored: a hint). */
static void
pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* -P: undoes pin_self. */
static void
unpin_self(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	for (int i = 0; i < CPU_SETSIZE; i++)
		CPU_SET(i, &set);
	(void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *
contend_partner(void *arg)
{
	struct shared *s = arg;
	struct lwp *l = new_lwp();

	bind_lwp(l);
	if (pin_contended)
		pin_self(1);
	atomic_store(&s->started, 1);
	while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
		rumpuser_mutex_enter(s->m);
		sink++;
		rumpuser_mutex_exit(s->m);
	}
	unbind_lwp(l);
	rumpuser_thread_exit();
}

static uint64_t
op_contended(uint64_t n)
{
	struct shared s = { .m = mtx_new() };
	void *t;
	uint64_t t0;

	if (pin_contended)
		pin_self(0);
	t = spawn(contend_partner, &s);

	while (!atomic_load(&s.started))
		;
	t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		rumpuser_mutex_enter(s.m);
		rumpuser_mutex_exit(s.m);
	}
	t0 = now_ns() - t0;
	atomic_store(&s.stop, 1);
	join(t);
	if (pin_contended)
		unpin_self();
	rumpuser_mutex_destroy(s.m);
	return t0;
}

static void *
pingpong_partner(void *arg)
{
	struct shared *s = arg;
	struct lwp *l = new_lwp();

	bind_lwp(l);
	rumpuser_mutex_enter(s->m);
	for (;;) {
		while (atomic_load_explicit(&s->turn, memory_order_relaxed) == 0 &&
		    !atomic_load_explicit(&s->stop, memory_order_relaxed))
			rumpuser_cv_wait(s->cv, s->m);
		if (atomic_load_explicit(&s->stop, memory_order_relaxed))
			break;
		atomic_store_explicit(&s->turn, 0, memory_order_relaxed);
		rumpuser_cv_signal(s->cv);
	}
	rumpuser_mutex_exit(s->m);
	unbind_lwp(l);
	rumpuser_thread_exit();
}

static void
pingpong_round(struct shared *s)
{
	atomic_store_explicit(&s->turn, 1, memory_order_relaxed);
	rumpuser_cv_signal(s->cv);
	while (atomic_load_explicit(&s->turn, memory_order_relaxed) == 1)
		rumpuser_cv_wait(s->cv, s->m);
}

static uint64_t
op_pingpong(uint64_t n)
{
	struct shared s = { .m = mtx_new(), .cv = cv_new() };
	void *t = spawn(pingpong_partner, &s);
	uint64_t t0;

	rumpuser_mutex_enter(s.m);
	pingpong_round(&s);
	t0 = now_ns();
	for (uint64_t i = 0; i < n; i++)
		pingpong_round(&s);
	t0 = now_ns() - t0;
	atomic_store(&s.stop, 1);
	rumpuser_cv_signal(s.cv);
	rumpuser_mutex_exit(s.m);
	join(t);
	rumpuser_cv_destroy(s.cv);
	rumpuser_mutex_destroy(s.m);
	return t0;
}

static void *
empty_thread(void *arg)
{
	(void)arg;
	rumpuser_thread_exit();
}

static uint64_t
op_thread(uint64_t n)
{
	uint64_t t0 = now_ns();

	for (uint64_t i = 0; i < n; i++)
		join(spawn(empty_thread, NULL));
	return now_ns() - t0;
}

static uint64_t
op_clock(uint64_t n)
{
	int64_t sec;
	long nsec;
	uint64_t t0 = now_ns();

	for (uint64_t i = 0; i < n; i++) {
		rumpuser_clock_gettime(RUMPUSER_CLOCK_ABSMONO, &sec, &nsec);
		sink += (uint64_t)nsec;
	}
	return now_ns() - t0;
}

static uint64_t
malloc_loop(uint64_t n, size_t len, int align)
{
	void *p;
	uint64_t t0 = now_ns();

	for (uint64_t i = 0; i < n; i++) {
		if (rumpuser_malloc(len, align, &p) != 0)
			die("rumpuser_malloc", -1);
		sink += (uintptr_t)p;
		rumpuser_free(p, len);
	}
	return now_ns() - t0;
}

static uint64_t op_malloc64(uint64_t n) { return malloc_loop(n, 64, 0); }
static uint64_t op_malloc4k(uint64_t n) { return malloc_loop(n, 4096, 4096); }

static uint64_t
op_random(uint64_t n)
{
	unsigned char buf[32];
	size_t got;
	uint64_t t0 = now_ns();

	for (uint64_t i = 0; i < n; i++) {
		if (rumpuser_getrandom(buf, sizeof(buf), 0, &got) != 0 || got != 32)
			die("rumpuser_getrandom", -1);
		sink += buf[0];
	}
	return now_ns() - t0;
}

/*
 * What a driver's host half pays around a host call: the
 * rumpuser_component_unschedule/_schedule pair with nothing in between.
 * Green moves the caller to a helper host thread and back (an excursion),
 * so that a call that blocks does not stop the kernel; the others release
 * and retake the CPU.
 */
static uint64_t
op_component(uint64_t n)
{
	uint64_t t0 = now_ns();

	for (uint64_t i = 0; i < n; i++)
		rumpuser_component_schedule(rumpuser_component_unschedule());
	return now_ns() - t0;
}

/* -- block I/O: completions go on a ring under the library's mutex/cv -- */

static const char *bio_path;
static int bio_fd = -1;
static int64_t offs[NOFFS];

/*
 * One submitter's queue: its buffers, the ring its completions land on
 * (under the library's mutex and cv, as a kernel's biowait would be
 * woken), and its own cursor into the offsets.
 */
struct bioq {
	struct rumpuser_mtx *m;
	struct rumpuser_cv *cv;
	unsigned short ring[MAX_DEPTH];
	atomic_ulong head;
	atomic_ulong errors;
	unsigned next_off;
	char *bufs;
	struct bioslot {
		struct bioq *q;
		unsigned short idx;
	} slots[MAX_DEPTH];
};

static void
bio_done(void *arg, size_t done, int error)
{
	struct bioslot *s = arg;
	struct bioq *q = s->q;
	unsigned long h;

	if (error || done != BIO_BLOCK)
		atomic_fetch_add(&q->errors, 1);
	rumpuser_mutex_enter(q->m);
	h = atomic_load_explicit(&q->head, memory_order_relaxed);
	q->ring[h % MAX_DEPTH] = s->idx;
	atomic_store_explicit(&q->head, h + 1, memory_order_relaxed);
	rumpuser_cv_signal(q->cv);
	rumpuser_mutex_exit(q->m);
}

static void
bio_setup(void)
{
	char *blk;
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	struct stat st;
	int fd, e;

	if (stat(bio_path, &st) != 0 || (uint64_t)st.st_size != BIO_FILE_SIZE) {
		fd = open(bio_path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
		if (fd < 0)
			die("create bio file", errno);
		blk = malloc(1 << 20);
		for (int i = 0; i < (1 << 20); i++)
			blk[i] = (char)(i * 31 + 7);
		for (unsigned i = 0; i < BIO_FILE_SIZE >> 20; i++)
			if (write(fd, blk, 1 << 20) != 1 << 20)
				die("write bio file", errno);
		free(blk);
		fsync(fd);
		close(fd);
	}
	/* pull it into the page cache */
	fd = open(bio_path, O_RDONLY);
	if (fd < 0)
		die("open bio file", errno);
	blk = malloc(1 << 20);
	while (read(fd, blk, 1 << 20) > 0)
		;
	free(blk);
	close(fd);
	for (int i = 0; i < NOFFS; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		offs[i] = (int64_t)((x % (BIO_FILE_SIZE / BIO_BLOCK)) * BIO_BLOCK);
	}
	if ((e = rumpuser_open(bio_path, RUMPUSER_OPEN_RDONLY | RUMPUSER_OPEN_BIO,
	    &bio_fd)) != 0)
		die("rumpuser_open", e);
}

static void
bioq_init(struct bioq *q, unsigned first_off)
{
	q->m = mtx_new();
	q->cv = cv_new();
	q->next_off = first_off;
	if (posix_memalign((void **)&q->bufs, 4096, MAX_DEPTH * BIO_BLOCK))
		die("posix_memalign", ENOMEM);
	for (unsigned short i = 0; i < MAX_DEPTH; i++) {
		q->slots[i].q = q;
		q->slots[i].idx = i;
	}
}

static void
bio_submit(struct bioq *q, unsigned short slot)
{
	q->next_off = (q->next_off + 1) % NOFFS;
	rumpuser_bio(bio_fd, RUMPUSER_BIO_READ, q->bufs + (size_t)slot * BIO_BLOCK,
	    BIO_BLOCK, offs[q->next_off], bio_done, &q->slots[slot]);
}

/* Keeps `depth` reads in flight on `q` until `n` have completed. */
static void
bio_stream(struct bioq *q, uint64_t n, unsigned depth)
{
	unsigned short ready[MAX_DEPTH];
	uint64_t submitted = 0, completed = 0;
	unsigned long tail;

	if (depth > n)
		depth = (unsigned)n;
	tail = atomic_load(&q->head);
	for (unsigned short i = 0; i < depth; i++) {
		bio_submit(q, i);
		submitted++;
	}
	while (completed < n) {
		unsigned long head;
		unsigned k;

		rumpuser_mutex_enter(q->m);
		while ((head = atomic_load_explicit(&q->head, memory_order_relaxed)) == tail)
			rumpuser_cv_wait(q->cv, q->m);
		k = (unsigned)(head - tail);
		for (unsigned i = 0; i < k; i++)
			ready[i] = q->ring[(tail + i) % MAX_DEPTH];
		tail = head;
		rumpuser_mutex_exit(q->m);
		for (unsigned i = 0; i < k; i++) {
			completed++;
			if (submitted < n) {
				bio_submit(q, ready[i]);
				submitted++;
			}
		}
	}
	if (atomic_load(&q->errors))
		die("bio errors", (int)atomic_load(&q->errors));
}

static uint64_t
bio_run(uint64_t n, unsigned depth)
{
	static struct bioq q;
	uint64_t t0;

	if (bio_fd < 0)
		bio_setup();
	if (q.m == NULL)
		bioq_init(&q, 0);
	t0 = now_ns();
	bio_stream(&q, n, depth);
	return now_ns() - t0;
}

static uint64_t op_bio1(uint64_t n) { return bio_run(n, 1); }
static uint64_t op_bio64(uint64_t n) { return bio_run(n, MAX_DEPTH); }

/*
 * Queue depth 64 from two submitters (32 each, as two kernel threads on
 * two virtual CPUs would issue them); time per read over both.
 */
struct bio_job {
	struct bioq q;
	uint64_t n;
};

static void *
bio_job_main(void *arg)
{
	struct bio_job *j = arg;
	struct lwp *l = new_lwp();

	bind_lwp(l);
	bio_stream(&j->q, j->n, MAX_DEPTH / 2);
	unbind_lwp(l);
	rumpuser_thread_exit();
}

static uint64_t
op_bio64_2thr(uint64_t n)
{
	static struct bio_job jobs[2];
	void *t[2];
	uint64_t t0;

	if (bio_fd < 0)
		bio_setup();
	for (int i = 0; i < 2; i++) {
		if (jobs[i].q.m == NULL)
			bioq_init(&jobs[i].q, (unsigned)i * (NOFFS / 2));
		jobs[i].n = (n + 1 - (uint64_t)i) / 2;
	}
	t0 = now_ns();
	for (int i = 0; i < 2; i++)
		t[i] = spawn(bio_job_main, &jobs[i]);
	for (int i = 0; i < 2; i++)
		join(t[i]);
	return now_ns() - t0;
}

/* -- green scheduling -- */

static void *
yield_partner(void *arg)
{
	struct shared *s = arg;

	while (!atomic_load_explicit(&s->stop, memory_order_relaxed))
		rumpuser_clock_sleep(RUMPUSER_CLOCK_RELWALL, 0, 0);
	rumpuser_thread_exit();
}

/* One switch = half a clock_sleep(0) ping-pong round trip. */
static uint64_t
op_switch(uint64_t n)
{
	struct shared s = { .m = NULL };
	void *t = spawn(yield_partner, &s);
	uint64_t t0;

	rumpuser_clock_sleep(RUMPUSER_CLOCK_RELWALL, 0, 0);
	t0 = now_ns();
	for (uint64_t i = 0; i < n; i++)
		rumpuser_clock_sleep(RUMPUSER_CLOCK_RELWALL, 0, 0);
	t0 = now_ns() - t0;
	atomic_store(&s.stop, 1);
	join(t);
	return t0 / 2;
}

/* ---- harness ------------------------------------------------------------ */

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
selected(const char *name)
{
	return only == NULL || strncmp(name, only, strlen(only)) == 0;
}

/* Calibrates a batch to ~BATCH_MS, then prints the median of REPS batches. */
static void
run(const char *name, uint64_t (*op)(uint64_t), int applies)
{
	uint64_t n = 1, t, per[REPS];

	if (!selected(name))
		return;
	if (!applies) {
		printf("%s -\n", name);
		fflush(stdout);
		return;
	}
	op(1);	/* warm up: first-use costs (lazy binding, libgcc_s for pthread_exit...) */
	for (;;) {
		t = op(n);
		if (t >= BATCH_MS * 1000000ULL / 10 || n >= (1ULL << 40))
			break;
		n *= t < 1000000 ? 8 : 2;
	}
	n = n * (BATCH_MS * 1000000ULL) / (t ? t : 1);
	if (n == 0)
		n = 1;
	for (int r = 0; r < REPS; r++)
		per[r] = op(n) * 1000 / n; /* picoseconds per op */
	qsort(per, REPS, sizeof(per[0]), cmp_u64);
	printf("%s %.2f\n", name, (double)per[REPS / 2] / 1000.0);
	fflush(stdout);
}

/* How late a 1 ms sleep returns: mean, min (negative = early), max. */
static void
sleep_lateness(void)
{
	const int n = 300;
	int64_t sum = 0, min = INT64_MAX, max = INT64_MIN;

	if (!selected("sleep_1ms_late"))
		return;
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		int64_t late;

		rumpuser_clock_sleep(RUMPUSER_CLOCK_RELWALL, 0, 1000000);
		late = (int64_t)(now_ns() - t0) - 1000000;
		sum += late;
		if (late < min)
			min = late;
		if (late > max)
			max = late;
	}
	printf("sleep_1ms_late_avg %.2f\n", (double)sum / n);
	printf("sleep_1ms_late_min %lld\n", (long long)min);
	printf("sleep_1ms_late_max %lld\n", (long long)max);
	fflush(stdout);
}

static pthread_t probe_thread;

static void *
probe(void *arg)
{
	(void)arg;
	probe_thread = pthread_self();
	rumpuser_thread_exit();
}

/* Kernel threads on the calling host thread => cooperative scheduling. */
static int
detect_cooperative(void)
{
	join(spawn(probe, NULL));
	return pthread_equal(probe_thread, pthread_self());
}

enum when { ALWAYS, PARALLEL, COOPERATIVE };

static const struct op {
	const char *name;
	uint64_t (*fn)(uint64_t);
	enum when when;
} ops[] = {
	{ "mutex_enter_exit", op_mutex, ALWAYS },
	{ "rw_read_enter_exit", op_rw, ALWAYS },
	{ "mutex_contended_2thr", op_contended, PARALLEL },
	{ "cv_pingpong_roundtrip", op_pingpong, ALWAYS },
	{ "thread_create_join", op_thread, ALWAYS },
	{ "clock_gettime_absmono", op_clock, ALWAYS },
	{ "malloc_free_64", op_malloc64, ALWAYS },
	{ "malloc_free_4k_aligned", op_malloc4k, ALWAYS },
	{ "getrandom_32", op_random, ALWAYS },
	{ "component_bracket", op_component, ALWAYS },
	{ "bio_4k_read_qd1", op_bio1, ALWAYS },
	{ "bio_4k_read_qd64", op_bio64, ALWAYS },
	{ "bio_2thr_4k_read_qd64", op_bio64_2thr, PARALLEL },
	{ "green_switch", op_switch, COOPERATIVE },
	{ NULL, NULL, ALWAYS },
};

int
main(int argc, char **argv)
{
	struct lwp *l;
	int e, opt, force = -1;
	char buf[64];

	bio_path = "microbench-bio.img";
	while ((opt = getopt(argc, argv, "lpcPf:o:")) != -1) {
		switch (opt) {
		case 'l':
			for (const struct op *o = ops; o->name; o++)
				printf("%s\n", o->name);
			printf("sleep_1ms_late\n");
			return 0;
		case 'p': force = 0; break;
		case 'P': pin_contended = 1; break;
		case 'c': force = 1; break;
		case 'f': bio_path = optarg; break;
		case 'o': only = optarg; break;
		default:
			fprintf(stderr, "usage: microbench [-l] [-p|-c] [-P] [-f bio-file] [-o op-prefix]\n");
			return 2;
		}
	}
	if ((e = rumpuser_init(RUMPUSER_VERSION, &hyp)) != 0)
		die("rumpuser_init", e);
	l = new_lwp();
	bind_lwp(l);
	cooperative = force >= 0 ? force : detect_cooperative();
	if (rumpuser_getparam(RUMPUSER_PARAM_NCPU, buf, sizeof(buf)) != 0)
		strcpy(buf, "?");
	printf("# cooperative %d ncpu %s\n", cooperative, buf);
	{
		Dl_info info;

		if (dladdr((void *)(uintptr_t)rumpuser_init, &info) && info.dli_fname)
			printf("# library %s\n", info.dli_fname);
	}
	fflush(stdout);

	for (const struct op *o = ops; o->name; o++)
		run(o->name, o->fn, o->when == ALWAYS ||
		    (o->when == PARALLEL) == !cooperative);
	sleep_lateness();
	printf("# upcalls schedule %lu unschedule %lu backend_unschedule %lu backend_schedule %lu\n",
	    atomic_load(&n_sched), atomic_load(&n_unsched),
	    atomic_load(&n_bunsched), atomic_load(&n_bsched));
	return 0;
}
