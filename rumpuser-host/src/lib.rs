//! `rumpuser-host`: the POSIX host services that the `rumpuser-posix` and
//! `rumpuser-green` flavours share, one module per concern (named after
//! NetBSD's `lib/librumpuser` files). Nothing here knows about threads or
//! the scheduling contract; it is plain host I/O returning NetBSD errnos.
//!
//! It is a crate of its own so that each flavour's static library exports
//! only its own `rumpuser_*` symbols.

pub mod blockio;
pub mod clock;
pub mod console;
pub mod daemonize;
pub mod dl;
pub mod file;
pub mod mem;
pub mod param;
pub mod random;
pub mod signal;
pub mod sock;
pub mod sys;
