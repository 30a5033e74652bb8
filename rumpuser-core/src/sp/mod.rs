//! The rump syscall proxy protocol, host-independent (`no_std` + `alloc`):
//! what `rumpuser_sp_*` servers in every flavour share (contract section 4).
//!
//! * [`wire`]: frame header, message classes/types, bodies, banner.
//! * [`frame`]: incremental frame assembly for non-blocking sockets.
//! * [`url`]: `unix://`, `tcp://` (IPv4 and `[IPv6]`) server addresses.
//! * [`conn`]: the per-connection state machine as pure logic: header-time
//!   body limits, frame classification, the table of outstanding server
//!   requests.
//! * [`kern`]: the bracketed kernel entries a server makes (rfork, newlwp,
//!   syscall, …) and the opaque [`kern::LwpPtr`].
//! * [`server`]: the server itself, generic over a flavour's runtime
//!   (threads, locks, sockets); [`server::blocking`] is a whole runtime
//!   for sockets whose calls block only the calling thread (a guest's own
//!   kernel sockets).
//!
//! # Limits
//!
//! A frame the client originates may carry at most
//! [`conn::MAX_REQUEST_BODY`] (4096) bytes of body; a response to a server
//! request at most what the server asked for (the copyin length, one
//! pointer for anonmmap). A longer frame, a frame shorter than its header,
//! or an unknown class or type closes the connection. The protocol has no
//! authentication: anyone who can connect can run system calls in the rump
//! kernel as a new process.

pub mod conn;
pub mod frame;
#[allow(unsafe_code)]
pub mod kern;
pub mod server;
pub mod url;
pub mod wire;

use core::ffi::c_int;

/// `hyp_lwproc_rfork` flag (rump.h): share the parent's descriptor table.
pub const RUMP_RFFD_SHARE: c_int = 0x00;
/// `hyp_lwproc_rfork` flag (rump.h `RUMP_RFFDG`): copy the descriptor table.
pub const RUMP_RFFD_COPY: c_int = 0x01;
/// `hyp_lwproc_rfork` flag (rump.h `RUMP_RFCFDG`): a fresh descriptor table.
pub const RUMP_RFFD_CLEAR: c_int = 0x02;
