//! Threads (rumpuser_pth.c): raw pthreads with an `extern "C"` trampoline,
//! so `rumpuser_thread_exit` can `pthread_exit` from deep inside kernel C
//! frames without unwinding any Rust frame that has destructors.
//! Creation retries `EAGAIN` like the reference; the host thread is named
//! (truncated to Linux's 15 bytes); priority and CPU index are recorded in
//! thread-local storage for debugging.

use core::cell::Cell;
use core::ffi::c_void;
use rumpuser_core::abi::ThreadFn;
use rumpuser_core::types::ThreadSpec;
use rumpuser_core::{Errno, HyperResult, SendPtr};

/// Join handle: the host thread id.
pub struct JoinHandle(libc::pthread_t);

struct Start {
    entry: ThreadFn,
    arg: SendPtr,
    name: [u8; 16],
    priority: i32,
    cpuidx: i32,
}

std::thread_local! {
    static HINTS: Cell<(i32, i32)> = const { Cell::new((0, -1)) };
}

/// `(priority, cpuidx)` given when the calling thread was created.
pub fn hints() -> (i32, i32) {
    HINTS.with(|h| h.get())
}

extern "C" fn trampoline(p: *mut c_void) -> *mut c_void {
    // SAFETY: `p` is the `Box<Start>` leaked by `create` for this thread.
    let start = unsafe { Box::from_raw(p as *mut Start) };
    let Start {
        entry,
        arg,
        name,
        priority,
        cpuidx,
    } = *start;
    HINTS.with(|h| h.set((priority, cpuidx)));
    if name[0] != 0 {
        // SAFETY: `name` is NUL-terminated and at most 16 bytes.
        unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr().cast()) };
    }
    crate::curlwp::set(core::ptr::null_mut());
    rumpuser_host::clock::tight_timer_slack();
    // No Rust value with a destructor is live across this call, so a
    // `pthread_exit` inside it unwinds no Rust state.
    // SAFETY: the kernel's thread function with its own argument.
    unsafe { entry(arg.0) }
}

/// Names the calling host thread for a diagnostic: `host thread <tid>
/// "<name>"` (the kernel's thread name given at creation, or the
/// program's for the application's threads).
pub fn describe_current(out: &mut dyn core::fmt::Write) -> core::fmt::Result {
    // SAFETY: `gettid` has no preconditions.
    let tid = unsafe { libc::gettid() };
    let mut name = [0u8; 16];
    // SAFETY: the buffer is 16 bytes, Linux's limit including the NUL,
    // and `pthread_self()` is the calling thread.
    let r = unsafe {
        libc::pthread_getname_np(libc::pthread_self(), name.as_mut_ptr().cast(), name.len())
    };
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let name = if r == 0 {
        core::str::from_utf8(&name[..len]).unwrap_or("?")
    } else {
        "?"
    };
    write!(out, "host thread {tid} \"{name}\"")
}

/// Creates a host thread running `entry(arg)`.
pub fn create(
    entry: ThreadFn,
    arg: SendPtr,
    spec: ThreadSpec<'_>,
) -> HyperResult<Option<JoinHandle>> {
    let mut name = [0u8; 16];
    if let Some(n) = spec.name {
        let b = n.to_bytes();
        let l = b.len().min(15);
        name[..l].copy_from_slice(&b[..l]);
    }
    let start = Box::into_raw(Box::new(Start {
        entry,
        arg,
        name,
        priority: spec.priority,
        cpuidx: spec.cpuidx,
    }));
    // SAFETY: zeroed attr is initialised by pthread_attr_init before use.
    let mut attr: libc::pthread_attr_t = unsafe { core::mem::zeroed() };
    // SAFETY: initialising and configuring a local attribute object.
    unsafe {
        libc::pthread_attr_init(&mut attr);
        let state = if spec.joinable {
            libc::PTHREAD_CREATE_JOINABLE
        } else {
            libc::PTHREAD_CREATE_DETACHED
        };
        libc::pthread_attr_setdetachstate(&mut attr, state);
    }
    let mut tid: libc::pthread_t = 0;
    let mut r = 0;
    for _ in 0..10 {
        // SAFETY: valid attr, trampoline and argument; on success the new
        // thread owns `start`.
        r = unsafe { libc::pthread_create(&mut tid, &attr, trampoline, start.cast()) };
        if r != libc::EAGAIN {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // SAFETY: destroying the attribute object initialised above.
    unsafe { libc::pthread_attr_destroy(&mut attr) };
    if r != 0 {
        // SAFETY: creation failed, so `start` is still ours.
        drop(unsafe { Box::from_raw(start) });
        return Err(Errno::from_linux(r));
    }
    Ok(spec.joinable.then_some(JoinHandle(tid)))
}

/// Ends the calling thread.
pub fn exit() -> ! {
    // SAFETY: ends the calling pthread; every thread that reaches here was
    // created by `create` (or is an application thread the kernel chose to end).
    unsafe { libc::pthread_exit(core::ptr::null_mut()) }
}

/// Waits for a joinable thread.
pub fn join(t: JoinHandle) -> HyperResult<()> {
    // SAFETY: joining a joinable thread exactly once (the handle is consumed).
    let r = unsafe { libc::pthread_join(t.0, core::ptr::null_mut()) };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::from_linux(r))
    }
}
