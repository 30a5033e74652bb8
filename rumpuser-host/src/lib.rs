//! `rumpuser-host`: the POSIX host services that the `rumpuser-posix` and
//! `rumpuser-green` flavours share, one module per concern (named after
//! NetBSD's `lib/librumpuser` files). Apart from [`sp`], nothing here knows
//! about threads or the scheduling contract; it is plain host I/O
//! returning NetBSD errnos. [`sp`] is the host half of the syscall proxy
//! server both flavours run (`rumpuser_core::sp::server`, generic over how
//! a flavour runs threads, [`sp::Runtime`]): host sockets, a `std` mutex,
//! configuration from the environment.
//!
//! It is a crate of its own so that each flavour's static library exports
//! only its own `rumpuser_*` symbols.
//!
//! Host calls that need `unsafe` are [`sys`]'s; the crate denies unsafe
//! code elsewhere, except in [`host`] (the unsafe methods of `Host`),
//! [`alloc`] (the global allocator) and `mapped` (copies out of a file
//! mapping).

#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod alloc;
pub mod blockio;
pub mod clock;
pub mod console;
pub mod daemonize;
pub mod dl;
pub mod file;
pub mod handshake;
#[allow(unsafe_code)]
pub mod host;
#[cfg(not(loom))]
#[allow(unsafe_code)]
pub mod mapped;
/// Under `--cfg loom` only the lease is built, for its model checks (loom's
/// atomics cannot sit in the mapping table's `static`); nothing is mapped.
#[cfg(loom)]
pub mod mapped {
    #[path = "lease.rs"]
    pub mod lease;
    /// Maps nothing under loom.
    pub fn adopt(_fd: core::ffi::c_int) {}
    /// Nothing to unmap under loom.
    pub fn release(_fd: core::ffi::c_int) {}
    /// Never serves a read under loom.
    pub fn try_read(_fd: core::ffi::c_int, _data: &mut [u8], _off: u64) -> bool {
        false
    }
}
pub mod pages;
pub mod param;
pub mod random;
pub mod signal;
pub mod sock;
pub mod sp;
#[allow(unsafe_code)]
pub mod sys;
#[doc(hidden)]
pub mod testing;
