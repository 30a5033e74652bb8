//! The console: where `dprintf`, `putchar`, boot messages, panics and the
//! shared crash reports of `rumpuser-baremetal` go.
//!
//! * dom0: `console_io(CONSOLEIO_write)`; Xen prints the text raw on its
//!   own console (the serial line of the machine), interleaved with its
//!   `(XEN)` messages.
//! * domU (and before the hypercall page exists): I/O port `0xE9`, Xen's
//!   HVM debug console, printed as `(d<N>) …` when Xen runs with
//!   `guest_loglvl=all`; and, once [`init_ring`] found it, the PV console
//!   ring the toolstack provides (`HVM_PARAM_CONSOLE_PFN`/`_EVTCHN`,
//!   `io/console.h`), which `xenconsoled` reads (`xl console`, or its
//!   guest log). Both, so that early output and crash reports stay
//!   visible in Xen's log while the ring carries the normal console. A
//!   full ring is waited for with `SCHEDOP_yield` (bounded), never lost
//!   silently while `xenconsoled` runs.
//!
//! Output is line-buffered (up to 256 bytes) so that a line arrives in
//! one piece and is not cut by a Xen message; a writer that finds the
//! buffer busy (an exception report inside a print) writes directly.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

const MODE_E9: u8 = 0;
const MODE_CONSOLE_IO: u8 = 1;
static MODE: AtomicU8 = AtomicU8::new(MODE_E9);

struct Line {
    buf: [u8; 256],
    len: usize,
}

static LINE: spin::Mutex<Line> = spin::Mutex::new(Line {
    buf: [0; 256],
    len: 0,
});

/// Uses `console_io` from now on (dom0, once it worked).
pub fn use_console_io() {
    MODE.store(MODE_CONSOLE_IO, Ordering::Relaxed);
}

/// Whether output goes through `console_io` (else port 0xE9).
pub fn uses_console_io() -> bool {
    MODE.load(Ordering::Relaxed) == MODE_CONSOLE_IO
}

/// `xencons_interface` (`io/console.h`).
#[repr(C)]
struct ConsRing {
    input: [u8; 1024],
    output: [u8; 2048],
    in_cons: AtomicU32,
    in_prod: AtomicU32,
    out_cons: AtomicU32,
    out_prod: AtomicU32,
}

static RING: AtomicUsize = AtomicUsize::new(0);
static RING_PORT: AtomicU32 = AtomicU32::new(0);
static RING_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Finds the PV console ring (domU); returns `(pfn, port)`.
pub fn init_ring() -> Option<(u64, u32)> {
    let pfn = crate::hypercall::hvm_get_param(crate::abi::HVM_PARAM_CONSOLE_PFN).ok()?;
    let port = crate::hypercall::hvm_get_param(crate::abi::HVM_PARAM_CONSOLE_EVTCHN).ok()?;
    if pfn == 0 || port == 0 || pfn >= 1 << 20 {
        return None;
    }
    RING_PORT.store(port as u32, Ordering::Relaxed);
    RING.store((pfn << 12) as usize, Ordering::Release);
    Some((pfn, port as u32))
}

/// Bytes dropped because the ring stayed full.
pub fn ring_dropped() -> u64 {
    RING_DROPPED.load(Ordering::Relaxed)
}

fn ring_write(mut bytes: &[u8]) {
    let addr = RING.load(Ordering::Acquire);
    if addr == 0 {
        return;
    }
    // SAFETY: the console page Xen named (HVM_PARAM_CONSOLE_PFN), inside
    // the boot identity map, holds a xencons_interface for the life of
    // the domain; indexes are atomics, data is written only in the free
    // part of `output` before `out_prod` publishes it.
    let r = unsafe { &*(addr as *const ConsRing) };
    let port = RING_PORT.load(Ordering::Relaxed);
    let mut spins = 0;
    while !bytes.is_empty() {
        let cons = r.out_cons.load(Ordering::Acquire);
        let prod = r.out_prod.load(Ordering::Relaxed);
        let used = prod.wrapping_sub(cons) as usize;
        if used >= r.output.len() {
            crate::events::send(port);
            spins += 1;
            if spins > 10_000 {
                RING_DROPPED.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                return;
            }
            // Let xenconsoled (dom0) run.
            // SAFETY: SCHEDOP_yield takes no argument.
            unsafe { crate::hypercall::sched_op(crate::abi::SCHEDOP_YIELD, 0) };
            continue;
        }
        let at = prod as usize % r.output.len();
        let n = bytes
            .len()
            .min(r.output.len() - used)
            .min(r.output.len() - at);
        let dst = r.output.as_ptr() as *mut u8;
        // SAFETY: `at + n` is inside `output` and those bytes are free.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.add(at), n) };
        core::sync::atomic::fence(Ordering::Release);
        r.out_prod
            .store(prod.wrapping_add(n as u32), Ordering::Release);
        bytes = &bytes[n..];
    }
    crate::events::send(port);
}

fn emit(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    ring_write(bytes);
    if MODE.load(Ordering::Relaxed) == MODE_CONSOLE_IO
        && crate::hypercall::console_write(bytes) >= 0
    {
        return;
    }
    for &b in bytes {
        // SAFETY: port 0xE9 is Xen's debug console for HVM guests (or
        // absent: the write is dropped).
        unsafe { rumpuser_pvh::arch::port::outb(0xe9, b) };
    }
}

/// Writes bytes (line-buffered).
pub fn write(bytes: &[u8]) {
    let Some(mut l) = LINE.try_lock() else {
        emit(bytes);
        return;
    };
    for &b in bytes {
        if l.len == l.buf.len() {
            let n = l.len;
            emit(&l.buf[..n]);
            l.len = 0;
        }
        let i = l.len;
        l.buf[i] = b;
        l.len += 1;
        if b == b'\n' {
            let n = l.len;
            emit(&l.buf[..n]);
            l.len = 0;
        }
    }
}

/// Writes out a partial line.
pub fn flush() {
    if let Some(mut l) = LINE.try_lock() {
        let n = l.len;
        emit(&l.buf[..n]);
        l.len = 0;
    }
}

/// A `fmt::Write` for the console.
pub struct Console;

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write(s.as_bytes());
        Ok(())
    }
}

/// `println!` to the Xen console.
#[macro_export]
macro_rules! xprintln {
    () => { $crate::console::write(b"\n") };
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::console::Console, format_args!($($arg)*));
        $crate::console::write(b"\n");
    }};
}
