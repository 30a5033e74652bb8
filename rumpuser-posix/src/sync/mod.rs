//! Host lock primitives for the pthread/Linux rumpuser hypervisor.
//!
//! The rumpuser hypercall interface (`rumpuser_mutex_*`, `rumpuser_rw_*`,
//! `rumpuser_cv_*`) needs locks with semantics that `std::sync` does not
//! offer: raw lock/unlock without guards, read-to-write upgrade and
//! write-to-read downgrade, and condition variables that return *without*
//! reacquiring the mutex (the caller picks the reacquire order, as required by
//! the rumpuser contract's rules for `rumpuser_cv_wait`).  This module builds
//! those primitives directly on Linux futexes:
//!
//! * [`futex`]: thin, EINTR/rounding-proof wrappers around `futex(2)` plus the
//!   monotonic clock used for all deadlines;
//! * [`mutex::RawMutex`]: a Drepper futex mutex with a starvation bound;
//! * [`rwlock::RawRwLock`]: a writer-preferring reader/writer lock with
//!   atomic downgrade and `try_upgrade`;
//! * [`condvar::Condvar`]: a sequence-counter condition variable whose wait
//!   returns with the mutex released.
//!
//! # Loom facade
//!
//! The primitives never name `core::sync::atomic` or the futex syscalls
//! directly: every atomic type, spin hint and futex wait/wake comes from
//! [`primitive`] (the pattern tokio uses).  Normally that is the real thing;
//! when compiled with `RUSTFLAGS="--cfg loom"` it is `loom`'s model-checked
//! atomics plus an emulated futex (a global wait table guarded by a loom
//! `Mutex` and `Condvar`), so that loom explores every interleaving of the
//! lock algorithms and reports a missing futex wake as a deadlock.  The loom
//! model tests live in `loom_tests.rs`; see there for how to run them.

pub mod condvar;
pub mod futex;
pub mod mutex;
pub mod primitive;
pub mod rwlock;

pub use condvar::Condvar;
pub use mutex::RawMutex;
pub use rwlock::RawRwLock;

#[cfg(all(test, not(loom)))]
#[allow(unsafe_code)]
mod stress_tests;

#[cfg(all(test, loom))]
#[allow(unsafe_code)]
mod loom_tests;
