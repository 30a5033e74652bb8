//! `rumpuser-posix`: the rumpuser v17 hypercall layer for Linux userspace,
//! on host threads.
//!
//! The scheduling half ([`PosixSched`]: threads, curlwp, locks) lives
//! here ([`thread`], [`curlwp`], [`sync`]), with the block I/O pool
//! ([`bio`]) and the syscall proxy's runtime ([`sp`]); the host half is
//! `rumpuser_host::PosixHost` (files, memory, clocks, randomness,
//! console, signals, parameters, dl, daemonize), which the green flavour
//! shares, with this flavour's [`PosixFlavour`]. This file joins them
//! into the exported [`POSIX`] platform.

#![deny(unsafe_code)]

pub mod bio;
#[allow(unsafe_code)]
pub mod curlwp;
pub mod sp;
pub mod sync;
#[allow(unsafe_code)]
pub mod thread;

use rumpuser_core::abi::{Lwp, ThreadFn};
use rumpuser_core::bio::BioRequest;
use rumpuser_core::types::*;
use rumpuser_core::{HyperResult, Platform, Sched, SendPtr};
use rumpuser_host::host::{Flavour, PosixHost};
use rumpuser_host::{clock, param};

/// The scheduling half on host threads. Stateless: the state lives in the
/// modules.
#[derive(Debug)]
pub struct PosixSched;

/// What this flavour adds to the shared POSIX host: the worker pool for
/// block I/O and the syscall proxy on host threads.
#[derive(Debug)]
pub struct PosixFlavour;

/// The POSIX platform: host threads and the POSIX host.
pub type Posix = Platform<PosixSched, PosixHost<PosixFlavour>>;

/// The instance exported through the C ABI.
pub static POSIX: Posix = Platform::new(PosixSched, PosixHost(PosixFlavour));

rumpuser_core::export_rumpuser!(&crate::POSIX);

/// The C allocator, with small cache-line-aligned blocks (the lock objects)
/// from a slab instead of `posix_memalign` (see `rumpuser_host::alloc`).
#[global_allocator]
static ALLOCATOR: rumpuser_host::alloc::Allocator = rumpuser_host::alloc::Allocator;

impl Flavour for PosixFlavour {
    fn bio(&self, req: BioRequest) {
        bio::submit(req)
    }

    fn sysproxy(&self) -> Option<&dyn rumpuser_core::sysproxy::SysProxy> {
        Some(&sp::SYSPROXY)
    }
}

impl Sched for PosixSched {
    type Mutex = sync::RawMutex;
    type RwLock = sync::RawRwLock;
    type Cond = sync::Condvar;
    type Thread = thread::JoinHandle;

    fn ncpu(&self) -> u32 {
        param::ncpu()
    }

    fn sleep_until(&self, deadline: MonoNanos) {
        clock::sleep_until(deadline)
    }

    fn thread_create(
        &self,
        entry: ThreadFn,
        arg: SendPtr,
        spec: ThreadSpec<'_>,
    ) -> HyperResult<Option<Self::Thread>> {
        thread::create(entry, arg, spec)
    }

    fn thread_exit(&self) -> ! {
        thread::exit()
    }

    fn thread_join(&self, t: Self::Thread) -> HyperResult<()> {
        thread::join(t)
    }

    #[inline]
    fn curlwp(&self) -> *mut Lwp {
        curlwp::get()
    }

    #[inline]
    fn set_curlwp(&self, l: *mut Lwp) {
        curlwp::set(l)
    }

    fn describe_thread(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        thread::describe_current(out)
    }

    fn mutex_new(&self, _flags: MutexFlags) -> sync::RawMutex {
        sync::RawMutex::new()
    }
    #[inline]
    fn mutex_try_lock(&self, m: &sync::RawMutex) -> bool {
        m.try_lock()
    }
    #[inline]
    fn mutex_lock(&self, m: &sync::RawMutex) {
        m.lock()
    }
    #[inline]
    fn mutex_unlock(&self, m: &sync::RawMutex) {
        m.unlock()
    }
    fn mutex_is_locked(&self, m: &sync::RawMutex) -> bool {
        m.is_locked()
    }

    fn rw_new(&self) -> sync::RawRwLock {
        sync::RawRwLock::new()
    }
    #[inline]
    fn rw_try_read(&self, rw: &sync::RawRwLock) -> bool {
        rw.try_read()
    }
    #[inline]
    fn rw_read(&self, rw: &sync::RawRwLock) {
        rw.read()
    }
    #[inline]
    fn rw_try_write(&self, rw: &sync::RawRwLock) -> bool {
        rw.try_write()
    }
    #[inline]
    fn rw_write(&self, rw: &sync::RawRwLock) {
        rw.write()
    }
    #[inline]
    fn rw_unlock_read(&self, rw: &sync::RawRwLock) {
        rw.unlock_read()
    }
    #[inline]
    fn rw_try_unlock_read(&self, rw: &sync::RawRwLock) -> bool {
        rw.try_unlock_read()
    }
    #[inline]
    fn rw_unlock_write(&self, rw: &sync::RawRwLock) {
        rw.unlock_write()
    }
    fn rw_downgrade(&self, rw: &sync::RawRwLock) {
        rw.downgrade()
    }
    fn rw_try_upgrade(&self, rw: &sync::RawRwLock) -> bool {
        rw.try_upgrade()
    }
    #[inline]
    fn rw_is_write_locked(&self, rw: &sync::RawRwLock) -> bool {
        rw.is_write_locked()
    }
    #[inline]
    fn rw_has_readers(&self, rw: &sync::RawRwLock) -> bool {
        rw.has_readers()
    }

    fn cond_new(&self) -> sync::Condvar {
        sync::Condvar::new()
    }
    fn cond_wait(
        &self,
        c: &sync::Condvar,
        m: &sync::RawMutex,
        deadline: Option<MonoNanos>,
    ) -> WaitOutcome {
        if c.wait_unlocked(m, deadline) {
            WaitOutcome::TimedOut
        } else {
            WaitOutcome::Woken
        }
    }
    #[inline]
    fn cond_signal(&self, c: &sync::Condvar) {
        c.notify_one()
    }
    #[inline]
    fn cond_broadcast(&self, c: &sync::Condvar) {
        c.notify_all()
    }
}
