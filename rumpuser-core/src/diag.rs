//! Diagnostics for contract violations the C ABI cannot report as errors
//! (void hypercalls called with impossible arguments).
//!
//! Messages go to the platform console through a hook installed by the
//! export macro; a counter lets tests see that nothing was reported.

use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

static VIOLATIONS: AtomicUsize = AtomicUsize::new(0);
static SINK: spin::Once<fn(&[u8])> = spin::Once::new();

/// Installs the console writer used for diagnostics (the first one wins;
/// a library only ever installs its own console).
pub fn set_sink(f: fn(&[u8])) {
    SINK.call_once(|| f);
}

fn sink() -> Option<fn(&[u8])> {
    SINK.get().copied()
}

/// Number of violations reported since start.
pub fn violations() -> usize {
    VIOLATIONS.load(Ordering::Relaxed)
}

/// Reports a contract violation (or lost request) on the console. Out of
/// line: hot hypercalls report on rare paths, and an inlined formatting
/// buffer would cost each of their calls a stack frame.
#[cold]
#[inline(never)]
pub fn report(args: fmt::Arguments<'_>) {
    VIOLATIONS.fetch_add(1, Ordering::Relaxed);
    log(args);
}

/// Writes one `rumpuser: ...` line to the console without counting it.
#[inline(never)]
pub fn log(args: fmt::Arguments<'_>) {
    if let Some(w) = sink() {
        let mut buf = LineBuf::new();
        let _ = fmt::write(&mut buf, format_args!("rumpuser: {}\n", args));
        w(buf.as_bytes());
    }
}

/// Ends the process after an impossible state, with a message first.
#[cold]
#[inline(never)]
pub fn fatal(args: fmt::Arguments<'_>) -> ! {
    log(args);
    if let Some(f) = FATAL.get() {
        f();
    }
    // Only reached before a platform installed its abort. Exported entry
    // points are `extern "C"`, so this panic cannot unwind into C: Rust
    // aborts the process at the boundary.
    panic!("rumpuser: fatal: {}", args);
}

static FATAL: spin::Once<fn() -> !> = spin::Once::new();

/// Installs the platform's "abort now" function used by [`fatal`].
pub fn set_fatal(f: fn() -> !) {
    FATAL.call_once(|| f);
}

/// A fixed 512-byte line buffer (diagnostics must not allocate).
pub struct LineBuf {
    buf: [u8; 512],
    len: usize,
}

impl LineBuf {
    /// Empty buffer.
    pub const fn new() -> LineBuf {
        LineBuf {
            buf: [0; 512],
            len: 0,
        }
    }
    /// Contents.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
