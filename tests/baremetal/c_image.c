/*
 * A C application linked into a bare-metal image exactly as a rump kernel
 * layer is: compiled like ordinary user-space code (red zone, SSE, the
 * compiler's default PIE/PIC code, -fstack-protector-strong), no C
 * library, linked with link.ld against librumpuser_baremetal.a. It checks
 * what such code relies on and prints results with rumpuser_dprintf;
 * `cargo xtask baremetal-test` boots it and checks the lines and the exit
 * status (main returns 7).
 */
#include <stddef.h>
#include <stdint.h>
#include <rump/rumpuser.h>

/* .init_array constructors run before main (RUMP_COMPONENT uses them). */
static int ctor_ran;
__attribute__((constructor)) static void
ctor(void)
{
	ctor_ran = 42;
}

/* A NetBSD-style link set: the linker defines __start_/__stop_ symbols. */
static const int item_a __attribute__((section("link_set_rbm_test"), used)) = 11;
static const int item_b __attribute__((section("link_set_rbm_test"), used)) = 31;
extern const int __start_link_set_rbm_test[], __stop_link_set_rbm_test[];

/* Statics in .data and .bss. */
static int data_var = 5;
static char bss_buf[8192];

static struct rumpuser_hyperup hyp; /* all NULL: no kernel upcalls */

/* An array on the stack makes the stack protector read %fs:0x28. */
static __attribute__((noinline)) int
fill_and_sum(int n)
{
	volatile char buf[64];
	int i, s = 0;

	for (i = 0; i < 64; i++)
		buf[i] = (char)(i + n);
	for (i = 0; i < 64; i++)
		s += buf[i];
	return s;
}

int
main(int argc, char **argv)
{
	const int *p;
	int sum = 0, rv;
	void *mem = NULL;
	int64_t sec;
	long nsec;
	unsigned char rnd[16];
	size_t got = 0;
	volatile double x = 1.5;

	for (p = __start_link_set_rbm_test; p < __stop_link_set_rbm_test; p++)
		sum += *p;
	rumpuser_dprintf("c-image: ctor %d linkset %d data %d bss %d argc %d argv1 %s\n",
	    ctor_ran, sum, data_var, bss_buf[100], argc, argc > 1 ? argv[1] : "(none)");

	rv = rumpuser_init(RUMPUSER_VERSION, &hyp);
	rumpuser_dprintf("c-image: init %d\n", rv);

	/* More variadic arguments than registers, of mixed types. */
	rumpuser_dprintf("c-image: args %d %ld %s %u %x %c %zu %lld %p %s %05d|%-4s|\n",
	    1, -2L, "three", 4u, 0x5, '6', (size_t)7, 8LL, (void *)0x9, "ten", 11, "xy");

	/* SSE arithmetic and a double through the variadic path. */
	x = x * 3.0;
	rumpuser_dprintf("c-image: double %.2f %e\n", x, x * 1000.0);

	rv = rumpuser_malloc(100000, 4096, &mem);
	rumpuser_dprintf("c-image: malloc %d aligned %d\n", rv,
	    (int)(((uintptr_t)mem & 4095) == 0));
	if (rv == 0)
		rumpuser_free(mem, 100000);

	rv = rumpuser_clock_gettime(RUMPUSER_CLOCK_RELWALL, &sec, &nsec);
	rumpuser_dprintf("c-image: wall %d %d\n", rv, (int)(sec > 1700000000));

	rv = rumpuser_getrandom(rnd, sizeof(rnd), RUMPUSER_RANDOM_NOWAIT, &got);
	rumpuser_dprintf("c-image: random %d %d\n", rv, (int)got);

	rv = rumpuser_clock_sleep(RUMPUSER_CLOCK_RELWALL, 0, 2000000);
	rumpuser_dprintf("c-image: sleep %d stack %d\n", rv, fill_and_sum(3));
	return 7;
}
