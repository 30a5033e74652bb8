/*
 * The uncontended lock paths in instructions: a loop of N KMUTEX
 * enter+exit pairs, N rwlock read enter+exit pairs and N curlwp calls,
 * each in a function of its own, against any librumpuser. Run under
 * callgrind and divide each function's inclusive count by N:
 *
 *   cc -O2 -I target/dist/include benches/c/lock_loop.c -o lock_loop \
 *      -L target/dist/lib -Wl,-rpath,$PWD/target/dist/lib -lrumpuser_green -lpthread -ldl
 *   valgrind --tool=callgrind --callgrind-out-file=cg.out ./lock_loop 100000
 *   callgrind_annotate --inclusive=yes --auto=no cg.out | grep run_
 *
 * The kernel side is a stand-in: schedule/unschedule do nothing and one
 * lwp is made and set through rumpuser_curlwpop, so lock owners are
 * recorded as under a kernel. Not a benchmark of anything else.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rump/rumpuser.h>

struct lwp {
	char pad[256];
};

static struct lwp the_lwp;
static struct lwp *cur;
static struct rumpuser_hyperup up;

static void nothing(void) {}
static void backend_schedule(int n, void *l) { (void)n; (void)l; }
static void backend_unschedule(int n, int *c, void *l) { (void)n; (void)l; *c = 0; }
static struct lwp *lwproc_curlwp(void) { return cur; }

__attribute__((noinline)) void
run_mutex(struct rumpuser_mtx *m, long n)
{
	for (long i = 0; i < n; i++) {
		rumpuser_mutex_enter(m);
		rumpuser_mutex_exit(m);
	}
}

__attribute__((noinline)) void
run_rw(struct rumpuser_rw *rw, long n)
{
	for (long i = 0; i < n; i++) {
		rumpuser_rw_enter(RUMPUSER_RW_READER, rw);
		rumpuser_rw_exit(rw);
	}
}

__attribute__((noinline)) void
run_curlwp(long n)
{
	for (long i = 0; i < n; i++)
		if (rumpuser_curlwp() != cur)
			abort();
}

int
main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	struct rumpuser_mtx *m;
	struct rumpuser_rw *rw;

	memset(&up, 0, sizeof up);
	up.hyp_schedule = nothing;
	up.hyp_unschedule = nothing;
	up.hyp_backend_schedule = backend_schedule;
	up.hyp_backend_unschedule = backend_unschedule;
	up.hyp_lwproc_curlwp = lwproc_curlwp;
	if (rumpuser_init(RUMPUSER_VERSION, &up) != 0)
		return 1;
	cur = &the_lwp;
	rumpuser_curlwpop(RUMPUSER_LWP_CREATE, cur);
	rumpuser_curlwpop(RUMPUSER_LWP_SET, cur);
	rumpuser_mutex_init(&m, RUMPUSER_MTX_KMUTEX);
	rumpuser_rw_init(&rw);
	run_mutex(m, n);
	run_rw(rw, n);
	run_curlwp(n);
	return 0;
}
