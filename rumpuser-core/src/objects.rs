//! The hypervisor-owned objects behind `struct rumpuser_mtx`,
//! `struct rumpuser_rw` and `struct rumpuser_cv`.
//!
//! The platform supplies the raw lock; the core adds what the contract
//! asks on top: mutex flags and owner lwp, the rwlock's writer lwp, and
//! the cv waiter count. The owner and writer are also what the lock
//! misuse checks go by ([`crate::lockcheck`]). Objects are cache-line aligned so that two
//! hot locks never share a line (the reference does the same).

use crate::abi::Lwp;
use crate::types::MutexFlags;
use crate::Hypervisor;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32};

/// `struct rumpuser_mtx`.
#[repr(C, align(64))]
pub struct MutexObj<H: Hypervisor> {
    /// Host lock.
    pub raw: H::Mutex,
    /// Flags given at init.
    pub flags: MutexFlags,
    /// Owner lwp, NULL when free or held by a thread without an lwp.
    /// Recorded for every mutex; `rumpuser_mutex_owner` reports it for
    /// KMUTEX ones only. Written only by the holder.
    pub owner: AtomicPtr<Lwp>,
}

/// `struct rumpuser_rw`.
#[repr(C, align(64))]
pub struct RwObj<H: Hypervisor> {
    /// Host lock.
    pub raw: H::RwLock,
    /// Writer lwp while write-held (written only by the writer).
    pub writer: AtomicPtr<Lwp>,
}

/// `struct rumpuser_cv`.
#[repr(C, align(64))]
pub struct CvObj<H: Hypervisor> {
    /// Host condition variable.
    pub raw: H::Cond,
    /// Threads inside a wait on this cv (for `cv_has_waiters`).
    pub waiters: AtomicU32,
}

impl<H: Hypervisor> MutexObj<H> {
    /// New unlocked mutex.
    pub fn new(h: &H, flags: MutexFlags) -> Self {
        MutexObj {
            raw: h.mutex_new(flags),
            flags,
            owner: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

impl<H: Hypervisor> RwObj<H> {
    /// New unlocked rwlock.
    pub fn new(h: &H) -> Self {
        RwObj {
            raw: h.rw_new(),
            writer: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

impl<H: Hypervisor> CvObj<H> {
    /// New cv without waiters.
    pub fn new(h: &H) -> Self {
        CvObj {
            raw: h.cond_new(),
            waiters: AtomicU32::new(0),
        }
    }
}
