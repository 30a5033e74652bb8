//! Support for the syscall proxy tests: a model kernel and a protocol client.

pub mod client;
pub mod kernel;
