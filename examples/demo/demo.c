/*
 * demo.c: drives a rumpuser library through its C ABI the way a rump
 * kernel does, with a tiny model kernel of our own instead of the NetBSD
 * one: one virtual CPU built from the hypervisor's own SPIN mutex and cv
 * (as scheduler.c builds it), four kernel threads contending for a mutex,
 * a condition-variable ping-pong, clocks, randomness and block I/O with an
 * asynchronous completion. It prints what it did and exits non-zero on any
 * failure, so it doubles as a smoke test.
 *
 * Build: cc -I<dist>/include demo.c <dist>/lib/librumpuser_posix.a -lpthread -ldl -lm
 */
#include <rump/rumpuser.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL: " __VA_ARGS__); printf("\n"); exit(1); } } while (0)

/* ---- a one-CPU model kernel ---------------------------------------------- */

struct lwp { int id; int nlocks; };
static struct rumpuser_mtx *cpu_mtx;
static struct rumpuser_cv *cpu_cv;
static int cpu_free = 1;
static atomic_int cpu_handoffs;

static void take_cpu(void) {
	rumpuser_mutex_enter_nowrap(cpu_mtx);
	while (!cpu_free)
		rumpuser_cv_wait_nowrap(cpu_cv, cpu_mtx);
	cpu_free = 0;
	rumpuser_mutex_exit(cpu_mtx);
}
static void drop_cpu(void) {
	rumpuser_mutex_enter_nowrap(cpu_mtx);
	cpu_free = 1;
	atomic_fetch_add(&cpu_handoffs, 1);
	rumpuser_cv_signal(cpu_cv);
	rumpuser_mutex_exit(cpu_mtx);
}
static void hyp_schedule(void) { take_cpu(); }
static void hyp_unschedule(void) { drop_cpu(); }
static void hyp_backend_unschedule(int nlocks, int *countp, void *interlock) {
	(void)nlocks; (void)interlock; *countp = 0; drop_cpu();
}
static void hyp_backend_schedule(int nlocks, void *interlock) {
	(void)nlocks; (void)interlock; take_cpu();
}
static int hyp_newlwp(int32_t pid) {
	(void)pid;
	struct lwp *l = calloc(1, sizeof(*l));
	struct lwp *old = rumpuser_curlwp();
	if (old) rumpuser_curlwpop(RUMPUSER_LWP_CLEAR, old);
	rumpuser_curlwpop(RUMPUSER_LWP_CREATE, l);
	rumpuser_curlwpop(RUMPUSER_LWP_SET, l);
	return 0;
}
static void hyp_release(void) {}
static struct rumpuser_hyperup hyp = {
	.hyp_schedule = hyp_schedule, .hyp_unschedule = hyp_unschedule,
	.hyp_backend_unschedule = hyp_backend_unschedule,
	.hyp_backend_schedule = hyp_backend_schedule,
	.hyp_lwproc_newlwp = hyp_newlwp, .hyp_lwproc_release = hyp_release,
};

static uint64_t now_ns(void) {
	int64_t s; long ns;
	rumpuser_clock_gettime(RUMPUSER_CLOCK_ABSMONO, &s, &ns);
	return (uint64_t)s * 1000000000u + (uint64_t)ns;
}

/* ---- kernel threads contending for a mutex --------------------------------- */

static struct rumpuser_mtx *counter_mtx;
static long counter;
struct targ { struct lwp l; int iters; };

static void *worker(void *arg) {
	struct targ *t = arg;
	rumpuser_curlwpop(RUMPUSER_LWP_SET, &t->l);
	take_cpu();
	for (int i = 0; i < t->iters; i++) {
		rumpuser_mutex_enter(counter_mtx);
		struct lwp *owner;
		rumpuser_mutex_owner(counter_mtx, &owner);
		CHECK(owner == &t->l, "mutex owner is not the holder");
		long v = counter; counter = v + 1;
		rumpuser_mutex_exit(counter_mtx);
	}
	drop_cpu();
	rumpuser_curlwpop(RUMPUSER_LWP_CLEAR, &t->l);
	rumpuser_thread_exit();
}

/* ---- cv ping-pong ------------------------------------------------------------ */

static struct rumpuser_mtx *pp_mtx;
static struct rumpuser_cv *pp_cv;
static int pp_turn, pp_rounds = 1000;

static void *ponger(void *arg) {
	struct lwp *l = arg;
	rumpuser_curlwpop(RUMPUSER_LWP_SET, l);
	take_cpu();
	rumpuser_mutex_enter(pp_mtx);
	for (int i = 0; i < pp_rounds; i++) {
		while (pp_turn != 1) rumpuser_cv_wait(pp_cv, pp_mtx);
		pp_turn = 0;
		rumpuser_cv_broadcast(pp_cv);
	}
	rumpuser_mutex_exit(pp_mtx);
	drop_cpu();
	rumpuser_curlwpop(RUMPUSER_LWP_CLEAR, l);
	rumpuser_thread_exit();
}

/* ---- block I/O ----------------------------------------------------------------- */

static atomic_int bio_done_calls;
static atomic_size_t bio_bytes;
static atomic_int bio_error;
static void biodone(void *arg, size_t bytes, int error) {
	(void)arg;
	atomic_store(&bio_bytes, bytes);
	atomic_store(&bio_error, error);
	atomic_fetch_add(&bio_done_calls, 1);
}
static void wait_bio(int want) {
	uint64_t end = now_ns() + 10ull * 1000000000u;
	while (atomic_load(&bio_done_calls) < want && now_ns() < end)
		rumpuser_clock_sleep(RUMPUSER_CLOCK_RELWALL, 0, 100000);
	CHECK(atomic_load(&bio_done_calls) == want, "bio completion %d missing", want);
}

int main(void) {
	char buf[256];
	struct lwp main_lwp = { .id = 0 };

	CHECK(rumpuser_init(RUMPUSER_VERSION, &hyp) == 0, "rumpuser_init");
	printf("init: rumpuser v%d up\n", RUMPUSER_VERSION);
	rumpuser_getparam(RUMPUSER_PARAM_NCPU, buf, sizeof(buf));
	printf("params: _RUMPUSER_NCPU=%s", buf);
	rumpuser_getparam(RUMPUSER_PARAM_HOSTNAME, buf, sizeof(buf));
	printf(" _RUMPUSER_HOSTNAME=%s\n", buf);

	rumpuser_mutex_init(&cpu_mtx, RUMPUSER_MTX_SPIN);
	rumpuser_cv_init(&cpu_cv);
	rumpuser_curlwpop(RUMPUSER_LWP_CREATE, &main_lwp);
	rumpuser_curlwpop(RUMPUSER_LWP_SET, &main_lwp);
	take_cpu();

	/* threads and a contended mutex */
	rumpuser_mutex_init(&counter_mtx, RUMPUSER_MTX_KMUTEX);
	struct targ t[4]; void *cookies[4];
	uint64_t t0 = now_ns();
	for (int i = 0; i < 4; i++) {
		t[i].l.id = i + 1; t[i].iters = 20000;
		CHECK(rumpuser_thread_create(worker, &t[i], "demo-worker", 1, 0, -1, &cookies[i]) == 0, "thread_create");
	}
	for (int i = 0; i < 4; i++)
		CHECK(rumpuser_thread_join(cookies[i]) == 0, "thread_join");
	CHECK(counter == 80000, "counter %ld", counter);
	printf("threads: 4 kernel threads did 80000 locked increments in %.2f ms (counter=%ld, %d CPU handoffs)\n",
	    (now_ns() - t0) / 1e6, counter, atomic_load(&cpu_handoffs));

	/* cv ping-pong */
	struct lwp pl = { .id = 9 }; void *pc;
	rumpuser_mutex_init(&pp_mtx, RUMPUSER_MTX_KMUTEX);
	rumpuser_cv_init(&pp_cv);
	rumpuser_curlwpop(RUMPUSER_LWP_CREATE, &pl);
	CHECK(rumpuser_thread_create(ponger, &pl, "demo-ponger", 1, 0, -1, &pc) == 0, "thread_create");
	t0 = now_ns();
	rumpuser_mutex_enter(pp_mtx);
	for (int i = 0; i < pp_rounds; i++) {
		pp_turn = 1;
		rumpuser_cv_broadcast(pp_cv);
		while (pp_turn != 0) rumpuser_cv_wait(pp_cv, pp_mtx);
	}
	rumpuser_mutex_exit(pp_mtx);
	CHECK(rumpuser_thread_join(pc) == 0, "join ponger");
	printf("cv: %d ping-pong round trips, %.2f us each\n", pp_rounds, (now_ns() - t0) / 1e3 / pp_rounds);

	/* timed wait and sleep: never early */
	rumpuser_mutex_enter(pp_mtx);
	t0 = now_ns();
	int r = rumpuser_cv_timedwait(pp_cv, pp_mtx, 0, 3000000);
	uint64_t dt = now_ns() - t0;
	rumpuser_mutex_exit(pp_mtx);
	CHECK(r == 60 && dt >= 3000000, "timedwait r=%d dt=%" PRIu64, r, dt);
	t0 = now_ns();
	rumpuser_clock_sleep(RUMPUSER_CLOCK_RELWALL, 0, 2000000);
	uint64_t slept = now_ns() - t0;
	CHECK(slept >= 2000000, "slept only %" PRIu64 " ns", slept);
	printf("clocks: 3 ms cv_timedwait -> ETIMEDOUT after %.3f ms; 2 ms sleep took %.3f ms\n", dt / 1e6, slept / 1e6);

	/* randomness */
	unsigned char rnd[16]; size_t got;
	CHECK(rumpuser_getrandom(rnd, sizeof(rnd), RUMPUSER_RANDOM_HARD | RUMPUSER_RANDOM_NOWAIT, &got) == 0 && got > 0, "getrandom");
	printf("random: %zu bytes:", got);
	for (size_t i = 0; i < got; i++) printf(" %02x", rnd[i]);
	printf("\n");

	/* block I/O */
	char path[] = "/tmp/rumpuser-demo-XXXXXX";
	int tmp = mkstemp(path);
	CHECK(tmp >= 0, "mkstemp"); close(tmp);
	int fd;
	CHECK(rumpuser_open(path, RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_BIO, &fd) == 0, "open %s", path);
	static char wbuf[65536], rbuf[65536];
	for (size_t i = 0; i < sizeof(wbuf); i++) wbuf[i] = (char)(i * 13);
	t0 = now_ns();
	rumpuser_bio(fd, RUMPUSER_BIO_WRITE | RUMPUSER_BIO_SYNC, wbuf, sizeof(wbuf), 8192, biodone, NULL);
	wait_bio(1);
	CHECK(atomic_load(&bio_error) == 0 && atomic_load(&bio_bytes) == sizeof(wbuf), "bio write");
	rumpuser_bio(fd, RUMPUSER_BIO_READ, rbuf, sizeof(rbuf), 8192, biodone, NULL);
	wait_bio(2);
	CHECK(atomic_load(&bio_error) == 0 && memcmp(wbuf, rbuf, sizeof(rbuf)) == 0, "bio read back");
	uint64_t size; int type;
	CHECK(rumpuser_getfileinfo(path, &size, &type) == 0 && type == RUMPUSER_FT_REG, "getfileinfo");
	printf("bio: 64 KiB synchronous write + read back at offset 8192 in %.3f ms; file is %" PRIu64 " bytes\n",
	    (now_ns() - t0) / 1e6, size);
	rumpuser_bio(999999, RUMPUSER_BIO_READ, rbuf, 512, 0, biodone, NULL);
	wait_bio(3);
	CHECK(atomic_load(&bio_error) == 9, "bad fd error %d", atomic_load(&bio_error));
	printf("bio: read from a bad fd completed with NetBSD errno %d (EBADF)\n", atomic_load(&bio_error));
	rumpuser_close(fd);
	unlink(path);

	drop_cpu();
	rumpuser_dprintf("demo: all checks passed (dprintf via %s)\n", "the C shim");
	rumpuser_exit(0);
}
