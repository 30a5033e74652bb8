//! The host seam of the scheduler core: the [`Platform`](crate::Platform) trait and [`Stack`].
//!
//! The core never calls the host directly. Everything host-specific (the
//! monotonic clock, blocking the host while nothing is runnable, stack
//! memory, the console, halting, and delivering external events) goes
//! through one `&'static dyn Platform` handed to [`init`](crate::init).
//! This mirrors rumprun's `bmk-core/platform.h` contract, which let the hw
//! and Xen platforms share one scheduler.
//!
//! # Rules for implementors
//!
//! * No method may call back into the scheduler (spawn, wake, yield, sync
//!   objects, …). The core calls the platform while it is updating its own
//!   state; a re-entrant call is detected and panics. External wake-ups are
//!   delivered only by returning tokens from [`Platform::poll_events`].
//! * Everything runs on the single host thread that called
//!   [`init`](crate::init). Other host threads (I/O completion workers,
//!   interrupt handlers) may only touch the platform's *own* state (e.g. push
//!   a token on a queue and signal an eventfd / set a pending bit).

/// A green thread's stack: `size` bytes of read-write memory at `base`
/// (the lowest usable address; a guard page, if any, lies below `base` and
/// is not part of `size`).
///
/// `cookie` is opaque to the core and handed back unchanged in
/// [`Platform::free_stack`] (e.g. the start of the whole mapping including
/// the guard page).
#[derive(Debug)]
pub struct Stack {
    /// Lowest usable address. Must be at least 16-byte aligned.
    pub base: *mut u8,
    /// Usable size in bytes (at least the size asked for).
    pub size: usize,
    /// Platform bookkeeping, returned unchanged on free.
    pub cookie: usize,
}

/// What the scheduler core needs from its host.
///
/// Implemented by the POSIX backend (clock_gettime, ppoll/epoll on an
/// eventfd, mmap'ed stacks with a guard page), and later by bare metal
/// (TSC/pvclock, `sti; hlt` with a one-shot timer) and Xen (shared-info
/// time, `SCHEDOP_block` with `set_timer_op`).
pub trait Platform: 'static {
    /// Monotonic time in nanoseconds. Must never go backwards. All
    /// deadlines in the core are absolute values on this clock.
    fn now_ns(&self) -> u64;

    /// Block the host until `deadline` (absolute [`now_ns`](Self::now_ns)
    /// value; `None` = no timer pending) or until an external event is
    /// pending, whichever is first. May return early (the core re-checks).
    ///
    /// Must not sleep if an event became pending after the last
    /// [`poll_events`](Self::poll_events) call returned (e.g. keep the
    /// eventfd readable until drained, or on bare metal check the pending
    /// bits with interrupts masked and then `sti; hlt` atomically).
    /// Called between [`irq_save`](Self::irq_save) and
    /// [`irq_restore`](Self::irq_restore).
    fn idle(&self, deadline: Option<u64>);

    /// Drain the external events that completed since the last call and
    /// hand each one's token to `wake` (a token is a
    /// [`ThreadId::as_raw`](crate::ThreadId::as_raw) value; unknown or stale
    /// tokens are ignored). Called before and after every
    /// [`idle`](Self::idle) and every `poll_interval` switches while busy,
    /// so it must be cheap when nothing is pending (check an atomic flag
    /// before making a system call).
    fn poll_events(&self, wake: &mut dyn FnMut(u64));

    /// Allocate a stack of at least `size` bytes (already rounded up to a
    /// multiple of 16 by the core). `None` = out of memory.
    fn alloc_stack(&self, size: usize) -> Option<Stack>;

    /// Release a stack returned by [`alloc_stack`](Self::alloc_stack).
    ///
    /// # Safety
    ///
    /// `stack` must come from `alloc_stack` of this platform, is released
    /// at most once, and no code is running on it any more (the core only
    /// frees a stack after switching away from the exited thread).
    unsafe fn free_stack(&self, stack: Stack);

    /// Write diagnostics (no newline is added).
    fn console(&self, s: &str);

    /// Stop everything (fatal error, or every green thread has exited).
    fn halt(&self) -> !;

    /// Mask interrupts, returning the previous state. Bare-metal only; the
    /// default does nothing. The core masks only around the "nothing is
    /// runnable, poll then idle" step, never on the switch fast path.
    fn irq_save(&self) -> usize {
        0
    }

    /// Restore the state returned by [`irq_save`](Self::irq_save).
    fn irq_restore(&self, _flags: usize) {}

    /// Whether [`excursion_start`](Self::excursion_start) can succeed: the
    /// core asks before it switches a thread out for an excursion.
    fn excursions(&self) -> bool {
        false
    }

    /// Hand an [`excursion`](crate::excursion) to a host thread that will
    /// call [`excursion::run`](crate::excursion::run) with it, then give it
    /// back through [`poll_excursions`](Self::poll_excursions). `false`: no
    /// such thread (the default; bare metal and Xen have one CPU and no
    /// host threads), and the green thread stays where it is. Called on the
    /// green host thread, inside the scheduler.
    fn excursion_start(&self, _ex: crate::ExcursionPtr) -> bool {
        false
    }

    /// Hand every excursion whose thread has come back (see
    /// [`excursion_start`](Self::excursion_start)) to `back`. Called with
    /// [`poll_events`](Self::poll_events), so it must be as cheap when
    /// nothing is pending; [`idle`](Self::idle) must return when an
    /// excursion comes back.
    fn poll_excursions(&self, _back: &mut dyn FnMut(crate::ExcursionPtr)) {}

    /// Hand every [`HostEvent`](crate::hosts::HostEvent) since the last
    /// call to `ev` (host threads asking for the token, host threads gone).
    /// Called with [`poll_events`](Self::poll_events), so it must be as
    /// cheap when nothing is pending; [`idle`](Self::idle) must return
    /// when a host asks for the token. The default has none.
    fn poll_hosts(&self, _ev: &mut dyn FnMut(crate::hosts::HostEvent)) {}
}
