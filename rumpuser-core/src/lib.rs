//! `rumpuser-core`: what every rumpuser platform stands on.
//!
//! * [`abi`]: the v17 constants and C structs, layout-checked.
//! * [`errno`] and [`signal`]: NetBSD numbering and host translation.
//! * [`types`]: hypercall arguments validated into Rust types.
//! * [`Hypervisor`]: the one trait a platform implements.
//! * [`sched`]: the kernel's upcalls and the unschedule/reschedule discipline.
//! * [`printf`]: `rumpuser_dprintf` for targets without a C library.
//! * [`ffi`] and [`export_rumpuser!`]: the C ABI, generated for a platform.
//! * [`lockcheck`]: lock misuse (self-deadlock, release by a non-holder,
//!   destroying a held lock) turned into an abort with a message.
//! * [`sp`]: the syscall proxy wire protocol and connection logic.
//! * `conformance` (feature `conformance`): the kit that checks any
//!   implementation through its C symbols with a model kernel.
//!
//! See `ARCHITECTURE.md` at the repository root for how a hypercall flows.
#![no_std]
#![warn(missing_docs)]
#![deny(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

#[allow(unsafe_code)]
pub mod abi;
#[allow(unsafe_code)]
pub mod api;
#[cfg(feature = "alloc")]
#[allow(unsafe_code)]
pub mod bio;
pub mod diag;
pub mod errno;
#[cfg(feature = "alloc")]
pub mod export;
#[cfg(feature = "alloc")]
#[allow(unsafe_code)]
pub mod ffi;
#[cfg(feature = "alloc")]
#[allow(unsafe_code)]
pub mod hypervisor;
#[cfg(feature = "alloc")]
pub mod lockcheck;
#[cfg(feature = "alloc")]
pub mod objects;
pub mod param;
#[allow(unsafe_code)]
pub mod printf;
#[allow(unsafe_code)]
pub mod sched;
pub mod signal;
#[cfg(feature = "alloc")]
pub mod sp;
#[cfg(feature = "alloc")]
pub mod sysproxy;
pub mod types;

#[cfg(feature = "conformance")]
#[allow(unsafe_code)]
pub mod conformance;

pub use errno::Errno;
#[cfg(feature = "alloc")]
pub use hypervisor::{Host, HyperResult, Hypervisor, Platform, Sched, SendPtr};
