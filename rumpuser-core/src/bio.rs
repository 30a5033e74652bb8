//! Block I/O requests and their exactly-once completion.
//!
//! A [`BioRequest`] carries the kernel's buffer and a [`BioDone`]; the
//! platform performs the transfer anywhere it likes and calls
//! [`BioDone::complete`], which takes a virtual CPU for the kernel's
//! `biodone` callback as contract 3.5 requires and releases it afterwards.
//! The completing thread must have a kernel lwp: the thread that called
//! `rumpuser_bio` has one, and helper threads get one with
//! [`crate::sched::adopt_helper_thread`].
//!
//! `BioDone` is consumed by `complete`; dropping one uncompleted delivers
//! `EIO`, so a request can never be lost.

use crate::abi::BiodoneFn;
use crate::errno::Errno;
use crate::types::BioOp;
use core::ffi::{c_int, c_void};

/// The kernel's completion callback for one request.
pub struct BioDone {
    func: Option<BiodoneFn>,
    arg: *mut c_void,
}

// SAFETY: the kernel hands `donearg` to the hypervisor for completion from
// any thread (the reference completes on its worker thread).
unsafe impl Send for BioDone {}

impl BioDone {
    /// Wraps the kernel's callback.
    pub fn new(func: BiodoneFn, arg: *mut c_void) -> BioDone {
        BioDone {
            func: Some(func),
            arg,
        }
    }

    /// Delivers the result: bytes transferred, or a NetBSD errno (then 0 bytes).
    /// Takes a virtual CPU around the callback.
    pub fn complete(mut self, result: Result<usize, Errno>) {
        self.fire(result, true);
    }

    /// Delivers the result from a thread that already holds a virtual CPU
    /// (synchronous completion inside `rumpuser_bio` before releasing it).
    pub fn complete_scheduled(mut self, result: Result<usize, Errno>) {
        self.fire(result, false);
    }

    fn fire(&mut self, result: Result<usize, Errno>, take_cpu: bool) {
        let Some(f) = self.func.take() else { return };
        let (bytes, error): (usize, c_int) = match result {
            Ok(n) => (n, 0),
            Err(e) => (0, e.raw()),
        };
        let call = || {
            // SAFETY: the kernel's biodone, called exactly once (the `Option`
            // was taken) with its own argument, holding a CPU.
            unsafe { f(self.arg, bytes, error) }
        };
        if take_cpu {
            crate::sched::with_cpu(call);
        } else {
            call();
        }
    }
}

impl Drop for BioDone {
    fn drop(&mut self) {
        if self.func.is_some() {
            crate::diag::report(format_args!(
                "bio request dropped uncompleted; reporting EIO"
            ));
            self.fire(Err(Errno::EIO), true);
        }
    }
}

/// One `rumpuser_bio` call.
pub struct BioRequest {
    /// Descriptor (the platform's namespace).
    pub fd: c_int,
    /// Validated operation.
    pub op: BioOp,
    /// The kernel's buffer; valid until completion.
    pub data: *mut u8,
    /// Bytes to transfer.
    pub len: usize,
    /// Byte offset.
    pub off: u64,
    /// Completion.
    pub done: BioDone,
}

// SAFETY: the buffer belongs to the request until completion (contract 3.5:
// "after the call, data must not be touched"), so moving the request to a
// worker thread moves that exclusive access with it.
unsafe impl Send for BioRequest {}

impl BioRequest {
    /// The kernel's buffer, `len` bytes at `data`, for the transfer (a read
    /// fills it, a write sends it).
    ///
    /// A request is made by `ffi::bio` from the kernel's `rumpuser_bio`
    /// arguments: code that builds one otherwise must give it a buffer
    /// that stays valid, and is touched by nobody else, until completion.
    pub fn buffer(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: the kernel's buffer is valid for `len` bytes and belongs
        // to the request alone until it completes (contract 3.5: "after
        // the call, data must not be touched"); the borrow of the request
        // keeps it from completing meanwhile.
        unsafe { core::slice::from_raw_parts_mut(self.data, self.len) }
    }
}
