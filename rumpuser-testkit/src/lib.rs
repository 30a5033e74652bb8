//! `rumpuser-testkit`: what the workspace's tests and benches use to drive
//! a rumpuser library through its C ABI on a Linux host (a dev-only crate,
//! never part of a distributed library).
//!
//! It builds on the conformance kit of `rumpuser-core`, which is `no_std`
//! and also runs inside the bare-metal and Xen guests, and re-exports its
//! shared pieces so host tests import one crate:
//!
//! * [`hyp`]: [`Hyp`], the safe typed client of an
//!   [`Api`](rumpuser_core::api::Api) (mutex, rwlock and cv handles,
//!   threads, clocks, curlwp);
//! * [`upcalls`]: the one configurable upcall table; a model kernel is a
//!   type implementing [`Kernel`];
//! * [`ensure!`] and [`ensure_eq!`];
//! * [`conformance`], the kit itself.
//!
//! What only a host has:
//!
//! * [`kernels`]: named model kernels with upcall counters (the
//!   [`kernels::LwpKernel`] the benches initialise every library with);
//! * [`dl`]: a library loaded with `dlopen`, as an `Api`;
//! * [`misuse`]: the harness that runs each of the kit's lock misuse
//!   cases in a child process and checks its abort and report;
//! * [`sp`]: the syscall proxy test kit: a model kernel with processes and
//!   system calls, a protocol client that can misbehave on purpose, and
//!   the scenario both flavours' servers pass.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod dl;
#[allow(unsafe_code)]
pub mod kernels;
pub mod misuse;
pub mod sp;

pub use rumpuser_core::conformance;
pub use rumpuser_core::conformance::hyp::{self, Cv, Hyp, Mtx, Rw, Thread};
pub use rumpuser_core::conformance::upcalls::{self, Kernel};
pub use rumpuser_core::{ensure, ensure_eq};
