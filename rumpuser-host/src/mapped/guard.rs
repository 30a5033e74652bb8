//! The `SIGBUS` guard around copies out of a file mapping.
//!
//! A page of a shared file mapping faults with `SIGBUS` when it lies past
//! the end of the file (someone truncated it) or the host could not read it
//! in. During a [`copy`] the thread records the mapped range; the handler,
//! for a fault inside it, maps a private zero page over the faulting page
//! (the range is ours and cannot be unmapped while we copy), notes the hit
//! and returns, so the copy finishes and reports that it is not to be
//! trusted. Any other `SIGBUS` goes to the handler that was installed
//! before ours, or gets the default action.

use core::ffi::{c_int, c_void};
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

thread_local! {
    /// Start and end of the mapping this thread is copying from (0, 0: none).
    static WINDOW_START: AtomicUsize = const { AtomicUsize::new(0) };
    static WINDOW_END: AtomicUsize = const { AtomicUsize::new(0) };
    /// Set by the handler when it absorbed a fault in the window.
    static HIT: AtomicBool = const { AtomicBool::new(false) };
}

/// The disposition found when ours was installed.
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(core::ptr::null_mut());
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// Installs the handler, once per process; whether it is in place (the
/// mapping is not used without it).
pub fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: zeroed `sigaction`s are valid empty dispositions; we fill
        // ours completely and let the host fill the previous one, which is
        // then leaked so the handler can read it for the process's life.
        unsafe {
            let old: *mut libc::sigaction = Box::into_raw(Box::new(core::mem::zeroed()));
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_sigbus as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            PREVIOUS.store(old, Ordering::Release);
            if libc::sigaction(libc::SIGBUS, &sa, old) != 0 {
                rumpuser_core::diag::log(format_args!(
                    "cannot install the SIGBUS guard; block reads keep to system calls"
                ));
                return false;
            }
        }
        true
    })
}

/// Copies `len` bytes from `src` to `dst` with a `SIGBUS` inside
/// `map..map + map_len` absorbed; `false` if one was (`dst` then holds
/// zeros where the faulting pages were).
///
/// # Safety
/// `src..+len` lies inside the mapping `map..+map_len`, which stays mapped
/// during the call; `dst` is valid for writes of `len` bytes and does not
/// overlap it.
pub unsafe fn copy(
    dst: *mut u8,
    src: *const u8,
    len: usize,
    map: *const u8,
    map_len: usize,
) -> bool {
    WINDOW_START.with(|w| w.store(map as usize, Ordering::Relaxed));
    WINDOW_END.with(|w| w.store(map as usize + map_len, Ordering::Relaxed));
    HIT.with(|h| h.store(false, Ordering::Relaxed));
    // The handler runs on this thread: order the window before the copy
    // and the copy before reading the hit, as the compiler sees it.
    compiler_fence(Ordering::SeqCst);
    // SAFETY: see `# Safety`.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
    compiler_fence(Ordering::SeqCst);
    WINDOW_END.with(|w| w.store(0, Ordering::Relaxed));
    WINDOW_START.with(|w| w.store(0, Ordering::Relaxed));
    !HIT.with(|h| h.load(Ordering::Relaxed))
}

extern "C" fn on_sigbus(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the host passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let start = WINDOW_START.with(|w| w.load(Ordering::Relaxed));
    let end = WINDOW_END.with(|w| w.load(Ordering::Relaxed));
    if start <= addr && addr < end {
        let page = addr & !(PAGE.load(Ordering::Relaxed) - 1);
        // SAFETY: `page` is inside the mapping this thread is copying from,
        // which cannot be unmapped meanwhile; replacing one page of it with
        // a private zero page touches nothing else. mmap is a plain system
        // call, safe in a handler.
        let p = unsafe {
            libc::mmap(
                page as *mut c_void,
                PAGE.load(Ordering::Relaxed),
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            die(b"rumpuser: SIGBUS in a block-read mapping and cannot patch it\n");
        }
        HIT.with(|h| h.store(true, Ordering::Relaxed));
        return;
    }
    forward(sig, info, ctx);
}

/// Hands a `SIGBUS` that is not ours to the previous disposition.
fn forward(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let prev = PREVIOUS.load(Ordering::Acquire);
    // SAFETY: `prev` was filled by sigaction before ours was installed and
    // is never freed.
    let prev = unsafe { &*prev };
    let h = prev.sa_sigaction;
    if h != libc::SIG_DFL && h != libc::SIG_IGN {
        if prev.sa_flags & libc::SA_SIGINFO != 0 {
            // SAFETY: the previous handler declared itself SA_SIGINFO.
            let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                unsafe { core::mem::transmute(h) };
            f(sig, info, ctx);
        } else {
            // SAFETY: a plain handler, as installed by its owner.
            let f: extern "C" fn(c_int) = unsafe { core::mem::transmute(h) };
            f(sig);
        }
        return;
    }
    // Default action: restore it; a fault then recurs when the faulting
    // instruction runs again, and a sent signal is raised again.
    // SAFETY: resetting our own signal disposition; `raise` re-sends.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        if (*info).si_code <= 0 {
            libc::raise(sig);
        }
    }
}

fn die(msg: &[u8]) -> ! {
    // SAFETY: write(2) and abort(3) are async-signal-safe.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::abort()
    }
}
