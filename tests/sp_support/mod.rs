//! Support for the syscall proxy tests of both flavours (included by
//! `rumpuser-posix/tests/sp_server.rs` and `rumpuser-green/tests/sp_server.rs`
//! with `#[path]`; the including crate root defines `API`, the flavour's C
//! ABI): a model kernel, a protocol client and the shared scenario.

pub mod client;
pub mod kernel;
pub mod scenario;
