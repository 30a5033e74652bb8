//! The green platform: [`GreenSched`] with this flavour's [`GreenHooks`]
//! (the token, the scheduler's start, component excursions) joined with
//! the shared POSIX host and this flavour's [`GreenFlavour`]
//! (asynchronous block I/O through [`crate::host::bio`], the virtual
//! clock of deterministic mode, the syscall proxy on green threads).
//! `_RUMPUSER_NCPU` is always 1: green threads take turns on one host
//! thread at a time.
//!
//! Deterministic mode: `RUMPUSER_GREEN_SEED=<u64>` picks the next runnable
//! thread with a seeded PRNG and switches to a virtual clock that only
//! advances when every thread is idle; block I/O becomes synchronous. Two
//! runs with one seed then schedule identically (`RUMPUSER_GREEN_TRACE=1`
//! prints the switch trace at exit so runs can be compared).

use crate::host::HOST;
use crate::sched::{GreenSched, Hooks};
use crate::sched_core::{self, Config};
use rumpuser_core::bio::BioRequest;
use rumpuser_core::types::*;
use rumpuser_core::{Errno, HyperResult, Platform};
use rumpuser_host as px;
use rumpuser_host::host::{Flavour, PosixHost};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The green flavour's scheduling hooks.
#[derive(Debug)]
pub struct GreenHooks;

/// What the green flavour adds to the shared POSIX host.
#[derive(Debug)]
pub struct GreenFlavour;

/// The green platform.
pub type Green = Platform<GreenSched<GreenHooks>, PosixHost<GreenFlavour>>;

/// The instance exported through the C ABI.
pub static GREEN: Green = Platform::new(GreenSched(GreenHooks), PosixHost(GreenFlavour));

/// Stack size of kernel threads (`RUMPUSER_GREEN_STACK`, default 256 KiB).
static STACK_SIZE: AtomicUsize = AtomicUsize::new(256 * 1024);

/// The guard of every hypercall that touches the green world: takes the
/// token for the calling host thread (see [`crate::host::token`]).
#[inline(always)]
pub(crate) fn on_green_host() -> crate::host::token::Entered {
    crate::host::token::enter()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// `RUMPUSER_GREEN_SEED`: deterministic mode's seed, if set.
fn seed() -> Option<u64> {
    env_u64("RUMPUSER_GREEN_SEED")
}

/// Stack size of kernel threads (and of the syscall proxy's green threads).
pub(crate) fn stack_size() -> usize {
    STACK_SIZE.load(Ordering::Relaxed)
}

impl Hooks for GreenHooks {
    type Entered = crate::host::token::Entered;

    #[inline(always)]
    fn enter(&self) -> Self::Entered {
        on_green_host()
    }

    #[inline(always)]
    fn stretch<A, R>(&self, a: A, f: impl FnOnce(A) -> R) -> R {
        crate::host::token::stretch(a, f)
    }

    fn stack_size(&self) -> usize {
        stack_size()
    }

    /// Makes the calling host thread the primary host and starts the
    /// scheduler on it (after [`GreenFlavour::init`] started the host).
    fn init(&self) -> HyperResult<()> {
        if sched_core::is_initialized() {
            return Ok(());
        }
        if let Some(s) = env_u64("RUMPUSER_GREEN_STACK") {
            STACK_SIZE.store((s as usize).max(16 * 1024), Ordering::Relaxed);
        }
        let seed = seed();
        let mut cfg = match seed {
            Some(s) => Config::seeded(s),
            None => Config::default(),
        };
        let trace = std::env::var_os("RUMPUSER_GREEN_TRACE").is_some();
        cfg.trace = trace;
        // Other host threads take part (and the runner keeps the kernel
        // going while the application is outside it), except in
        // deterministic mode, whose schedule must depend on the seed only.
        // Taking part needs membarrier(2) (Linux 4.14).
        let hosts = seed.is_none()
            && !px::param::switched_off("RUMPUSER_GREEN_HOSTS")
            && crate::host::token::supported();
        cfg.hosts = hosts;
        crate::host::platform::start_scheduler(cfg).map_err(|_| Errno::EBUSY)?;
        if hosts {
            crate::host::token::start().map_err(|_| Errno::EAGAIN)?;
        } else {
            crate::host::token::start_single();
        }
        if trace {
            extern "C" fn dump() {
                let t = sched_core::take_trace();
                let mut s = String::new();
                for e in &t {
                    s.push_str(&format!("{}>{} ", e.from.as_raw(), e.to.as_raw()));
                }
                px::console::write_stderr(
                    format!("rumpuser-green trace ({} switches): {s}\n", t.len()).as_bytes(),
                );
            }
            px::sys::proc::at_exit(dump);
        }
        Ok(())
    }

    fn component_block_begin(&self) {
        let entered = on_green_host();
        crate::host::excursion::component_block_begin(entered.outermost())
    }

    fn component_block_end(&self) {
        // On the excursion's helper: not the green host thread.
        crate::host::excursion::component_block_end()
    }
}

impl Flavour for GreenFlavour {
    /// Starts the host the scheduler runs on (its eventfd, the virtual
    /// clock in deterministic mode); once.
    fn init(&self) -> HyperResult<()> {
        if sched_core::is_initialized() {
            return Ok(());
        }
        HOST.start(seed().is_some()).map_err(Errno::from_linux)
    }

    fn bio(&self, req: BioRequest) {
        let _entered = on_green_host();
        crate::host::bio::submit(req)
    }

    fn bio_try_now(&self, req: BioRequest) -> Result<(), BioRequest> {
        let _entered = on_green_host();
        // Deterministic mode keeps every request on the path it always took
        // (the virtual clock's synchronous transfer).
        if HOST.is_virtual() {
            return Err(req);
        }
        px::blockio::try_now(req).or_else(|req| {
            if !crate::host::bio::inline_writes() {
                return Err(req);
            }
            // A flush inline only when no other green thread would run
            // while a worker did it, and no host thread waits to enter.
            px::blockio::try_write_inline(
                req,
                !sched_core::others_runnable() && !crate::host::token::hosts_waiting(),
            )
        })
    }

    fn sysproxy(&self) -> Option<&dyn rumpuser_core::sysproxy::SysProxy> {
        Some(&crate::sp::SYSPROXY)
    }

    fn clock_monotonic(&self) -> MonoNanos {
        HOST.now()
    }

    fn clock_monotonic_parts(&self) -> (i64, i64) {
        if HOST.is_virtual() {
            let t = HOST.now();
            ((t / NANOS_PER_SEC) as i64, (t % NANOS_PER_SEC) as i64)
        } else {
            // Already split by the host: no 64-bit division.
            px::clock::monotonic_parts()
        }
    }
}
