//! `rumpuser_getrandom` from the CPU: RDSEED and RDRAND.
//!
//! * `HARD` (true entropy preferred): RDSEED (the conditioned entropy
//!   source), falling back to RDRAND (a DRBG the CPU reseeds from that
//!   source) when the CPU has no RDSEED.
//! * otherwise: RDRAND.
//! * Both instructions may transiently fail (CF=0, the source is
//!   drained). Each word is retried 128 times; if that is not enough,
//!   whatever was filled is returned, or with `NOWAIT` `EAGAIN`; without
//!   `NOWAIT` the whole attempt is repeated up to 100 times (without
//!   giving up the CPU: the kernel calls this with spin mutexes held)
//!   before reporting `EIO` — the hardware is then broken.
//! * A CPU with neither instruction gets `ENOTSUP` and one console
//!   line explaining it (run QEMU with `-cpu max`, or on a host CPU that
//!   has RDRAND): never bytes derived from a clock.

use crate::arch::cpu::Features;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use rumpuser_core::types::RandomFlags;
use rumpuser_core::{Errno, HyperResult};

const HAS_RDRAND: u8 = 1;
const HAS_RDSEED: u8 = 2;
static CAPS: AtomicU8 = AtomicU8::new(0);
static WARNED: AtomicBool = AtomicBool::new(false);

/// Records which instructions the CPU has.
pub fn init(f: &Features) {
    let mut c = 0;
    if f.rdrand {
        c |= HAS_RDRAND;
    }
    if f.rdseed {
        c |= HAS_RDSEED;
    }
    CAPS.store(c, Ordering::Relaxed);
}

/// Whether the CPU has RDRAND or RDSEED.
pub fn available() -> bool {
    CAPS.load(Ordering::Relaxed) != 0
}

/// A short description for the boot summary.
pub fn describe() -> &'static str {
    match CAPS.load(Ordering::Relaxed) {
        3 => "RDSEED+RDRAND",
        1 => "RDRAND",
        2 => "RDSEED",
        _ => "none (getrandom fails with ENOTSUP)",
    }
}

fn rdrand() -> Option<u64> {
    let v: u64;
    let ok: u8;
    // SAFETY: RDRAND exists (CPUID checked before use) and only writes the
    // output register and flags.
    unsafe {
        asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack))
    };
    (ok != 0).then_some(v)
}

fn rdseed() -> Option<u64> {
    let v: u64;
    let ok: u8;
    // SAFETY: RDSEED exists (CPUID checked before use) and only writes the
    // output register and flags.
    unsafe {
        asm!("rdseed {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack))
    };
    (ok != 0).then_some(v)
}

/// One attempt to fill a prefix of `buf`; returns the bytes written.
fn fill_once(buf: &mut [u8], hard: bool) -> usize {
    let caps = CAPS.load(Ordering::Relaxed);
    let use_seed = hard && caps & HAS_RDSEED != 0 || caps & HAS_RDRAND == 0;
    let mut done = 0;
    while done < buf.len() {
        let mut word = None;
        for _ in 0..128 {
            word = if use_seed { rdseed() } else { rdrand() };
            if word.is_some() {
                break;
            }
            core::hint::spin_loop();
        }
        let Some(w) = word else { break };
        let n = (buf.len() - done).min(8);
        buf[done..done + n].copy_from_slice(&w.to_ne_bytes()[..n]);
        done += n;
    }
    done
}

/// Fills a prefix of `buf` (see the module docs for the flag semantics).
pub fn fill(buf: &mut [u8], flags: RandomFlags) -> HyperResult<usize> {
    if CAPS.load(Ordering::Relaxed) == 0 {
        if !WARNED.swap(true, Ordering::Relaxed) {
            crate::kprintln!(
                "{}: rumpuser_getrandom: this CPU has neither RDRAND nor RDSEED; \
                 refusing to make up random bytes (run QEMU with -cpu max or a host CPU with RDRAND)",
                crate::exit::who()
            );
        }
        return Err(Errno::ENOTSUP);
    }
    for _ in 0..100 {
        let n = fill_once(buf, flags.hard);
        if n > 0 {
            return Ok(n);
        }
        if flags.nowait {
            return Err(Errno::EAGAIN);
        }
        // getrandom must not give up the CPU (it is called with spin
        // mutexes held): retry; the source recovers within microseconds.
    }
    Err(Errno::EIO)
}
