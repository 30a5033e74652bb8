//! `LwpKernel` on the POSIX flavour: the library calls back into the
//! instance it was initialised with, which counts the CPU releases and
//! reacquisitions of a blocking call, and `newlwp`/`release` bind and
//! unbind fresh lwps with the library's own curlwp.

use rumpuser_posix::rumpuser_exports::API;
use rumpuser_testkit::kernels::{self, LwpKernel};
use rumpuser_testkit::{Hyp, Kernel};

#[test]
fn counts_and_lwps() {
    let hyp = Hyp::new(&API);
    let slot = kernels::init_lwp_kernel(hyp).expect("rumpuser_init");
    let _lwp = kernels::bind_lwp(hyp);
    let before = kernels::counts(slot);
    assert_eq!(hyp.sleep_ns(1_000_000), 0);
    let after = kernels::counts(slot);
    assert_eq!(after[0], before[0], "a sleep made a full kernel entry");
    assert_eq!(after[2], before[2] + 1, "the sleep released the CPU once");
    assert_eq!(after[3], before[3] + 1, "the sleep retook the CPU once");

    // newlwp binds a fresh lwp to this thread, release unbinds it.
    assert_eq!(slot, 0, "the first library gets slot 0");
    let mine = hyp.curlwp();
    assert_eq!(LwpKernel::<0>::lwproc_newlwp(1), 0);
    let l = hyp.curlwp();
    assert!(!l.is_null() && l != mine, "newlwp bound a new lwp");
    assert_eq!(LwpKernel::<0>::lwproc_curlwp(), l);
    LwpKernel::<0>::lwproc_release();
    assert!(hyp.curlwp().is_null(), "release unbound it");
    // SAFETY: `mine` is this thread's own lwp (from `bind_lwp`), bound
    // back for the guard to unbind.
    unsafe { hyp.curlwpop(rumpuser_core::abi::RUMPUSER_LWP_SET, mine) };
}
