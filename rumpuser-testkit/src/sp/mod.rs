//! The syscall proxy test kit both flavours' servers are tested with
//! (`rumpuser-posix/tests/sp_server.rs`, `rumpuser-green/tests/sp_server.rs`)
//! and the sysproxy bench uses: a model kernel ([`kernel`], booted on the
//! library under test with [`kernel::boot`]), a protocol client
//! ([`client`]) and the shared scenario ([`scenario`]); and, for the
//! blocking runtime tested with no library underneath
//! (`tests/sp_blocking.rs`), a one-CPU model kernel with an in-memory
//! transport ([`onecpu`]). The two kernels share their CPUs, violations
//! and process/lwp registry ([`model`]).

pub mod client;
#[allow(unsafe_code)]
pub mod kernel;
#[allow(unsafe_code)]
pub mod model;
#[allow(unsafe_code)]
pub mod onecpu;
pub mod scenario;
