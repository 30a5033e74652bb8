//! `rumpuser-green`: every rump-kernel thread is a green thread on one host
//! thread, scheduled cooperatively — the scheduling model of a unikernel.
//!
//! * [`sched_core`] is the `no_std` scheduler (context switch, run/sleep/wait
//!   queues, cooperative mutex/rwlock/cv) that the bare-metal and Xen
//!   platforms reuse; it talks to its host only through
//!   [`sched_core::Platform`].
//! * `host` (feature `posix`) is the POSIX host: monotonic clock, `ppoll`
//!   on an eventfd when idle, guard-paged `mmap` stacks, a host worker pool
//!   for block I/O whose completions wake a green thread, and the optional
//!   deterministic mode.
//! * [`sched`] is the scheduling half ([`rumpuser_core::Sched`]: locks,
//!   cvs, threads, curlwp, sleeps) of every green platform,
//!   [`sched::GreenSched`], with what a platform says in [`sched::Hooks`].
//! * `hyp` (feature `posix`) joins it with the POSIX host
//!   (`rumpuser_host::host::PosixHost`) and exports the C ABI
//!   (`librumpuser_green`).
//! * `sp` (feature `posix`) is the syscall proxy server on green threads
//!   and non-blocking sockets (the shared server of `rumpuser_core::sp::server`, with
//!   the host sockets of `rumpuser_host::sp`).
//!
//! The kernel layer must be built with `RUMP_CURLWP=hypercall`: with
//! `__thread` the kernel caches curlwp in host TLS, which all green threads
//! share. Any host thread may make hypercalls: one at a time runs green
//! code, holding the token (`host::token`). With `RUMPUSER_GREEN_HOSTS=0`,
//! in deterministic mode, or on a kernel without membarrier(2) only the
//! thread that called `rumpuser_init` may; others are reported and abort.
#![cfg_attr(not(feature = "posix"), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

/// The scheduler core (its own crate, `rumpuser-green-core`).
pub use rumpuser_green_core as sched_core;

#[allow(unsafe_code)]
pub mod sched;

#[cfg(feature = "posix")]
pub mod host;
#[cfg(feature = "posix")]
pub mod hyp;
#[cfg(feature = "posix")]
pub mod sp;

#[cfg(feature = "posix")]
rumpuser_core::export_rumpuser!(&crate::hyp::GREEN);

/// The C allocator, with small cache-line-aligned blocks (the lock objects)
/// from a slab instead of `posix_memalign` (see `rumpuser_host::alloc`).
#[cfg(feature = "posix")]
#[global_allocator]
static ALLOCATOR: rumpuser_host::alloc::Allocator = rumpuser_host::alloc::Allocator;
