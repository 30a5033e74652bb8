//! The syscall proxy test kit both flavours' servers are tested with
//! (`rumpuser-posix/tests/sp_server.rs`, `rumpuser-green/tests/sp_server.rs`)
//! and the sysproxy bench uses: a model kernel ([`kernel`], booted on the
//! library under test with [`kernel::boot`]), a protocol client
//! ([`client`]) and the shared scenario ([`scenario`]).

pub mod client;
#[allow(unsafe_code)]
pub mod kernel;
pub mod scenario;
