//! Shared host-test support for the scheduler core: a std `Platform`
//! (real or virtual clock, heap stacks, an event queue other host threads
//! can post to), a serialising guard and a tiny PRNG.
#![allow(dead_code)]

use std::alloc::{alloc, dealloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use rumpuser_green_core as sc;
use sc::{Config, Platform, Stack};

/// How long `idle(None)` waits for an external event before declaring a
/// deadlock (real clock).
const DEADLOCK_WAIT: Duration = Duration::from_secs(10);

/// Events posted by other host threads (the I/O-completion side).
#[derive(Default)]
pub struct EventSource {
    pending: AtomicBool,
    tokens: Mutex<Vec<u64>>,
    cv: Condvar,
}

impl EventSource {
    /// Post a wake-up token (a `ThreadId::as_raw`) from any host thread.
    pub fn post(&self, token: u64) {
        self.tokens.lock().unwrap().push(token);
        self.pending.store(true, Ordering::Release);
        self.cv.notify_all();
    }
}

/// A std test platform.
pub struct TestPlatform {
    start: Instant,
    /// `Some`: virtual clock (ns) that advances by `virt_step` per read and
    /// jumps to the deadline on idle.
    virt: Option<AtomicU64>,
    virt_step: u64,
    pub events: Arc<EventSource>,
    pub stacks_live: AtomicUsize,
    pub stacks_allocated: AtomicUsize,
    pub idle_calls: AtomicUsize,
    pub now_calls: AtomicUsize,
}

impl TestPlatform {
    pub fn real() -> &'static TestPlatform {
        Box::leak(Box::new(Self::new(None)))
    }

    pub fn virtual_clock(step: u64) -> &'static TestPlatform {
        let mut p = Self::new(Some(AtomicU64::new(1_000_000)));
        p.virt_step = step;
        Box::leak(Box::new(p))
    }

    fn new(virt: Option<AtomicU64>) -> Self {
        Self {
            start: Instant::now(),
            virt,
            virt_step: 0,
            events: Arc::new(EventSource::default()),
            stacks_live: AtomicUsize::new(0),
            stacks_allocated: AtomicUsize::new(0),
            idle_calls: AtomicUsize::new(0),
            now_calls: AtomicUsize::new(0),
        }
    }
}

impl Platform for TestPlatform {
    fn now_ns(&self) -> u64 {
        self.now_calls.fetch_add(1, Ordering::Relaxed);
        match &self.virt {
            Some(v) => v.fetch_add(self.virt_step, Ordering::Relaxed) + self.virt_step,
            None => self.start.elapsed().as_nanos() as u64,
        }
    }

    fn idle(&self, deadline: Option<u64>) {
        self.idle_calls.fetch_add(1, Ordering::Relaxed);
        if let Some(v) = &self.virt {
            if self.events.pending.load(Ordering::Acquire) {
                return;
            }
            match deadline {
                Some(d) => {
                    v.fetch_max(d, Ordering::Relaxed);
                }
                None => panic!("deadlock: idle(None) on the virtual platform"),
            }
            return;
        }
        let mut tokens = self.events.tokens.lock().unwrap();
        let limit = Instant::now() + DEADLOCK_WAIT;
        loop {
            if !tokens.is_empty() {
                return;
            }
            let now = self.start.elapsed().as_nanos() as u64;
            let wait = match deadline {
                Some(d) if d <= now => return,
                Some(d) => Duration::from_nanos(d - now),
                None => {
                    let left = limit.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        panic!("deadlock: idle(None) and no event for {DEADLOCK_WAIT:?}");
                    }
                    left
                }
            };
            tokens = self.events.cv.wait_timeout(tokens, wait).unwrap().0;
        }
    }

    fn poll_events(&self, wake: &mut dyn FnMut(u64)) {
        if !self.events.pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let drained: Vec<u64> = std::mem::take(&mut *self.events.tokens.lock().unwrap());
        for t in drained {
            wake(t);
        }
    }

    fn alloc_stack(&self, size: usize) -> Option<Stack> {
        let layout = Layout::from_size_align(size, 16).ok()?;
        // SAFETY: non-zero size (the core asks for >= 4096 bytes).
        let base = unsafe { alloc(layout) };
        if base.is_null() {
            return None;
        }
        self.stacks_live.fetch_add(1, Ordering::Relaxed);
        self.stacks_allocated.fetch_add(1, Ordering::Relaxed);
        Some(Stack {
            base,
            size,
            cookie: 0,
        })
    }

    unsafe fn free_stack(&self, s: Stack) {
        self.stacks_live.fetch_sub(1, Ordering::Relaxed);
        let layout = Layout::from_size_align(s.size, 16).expect("layout of an allocated stack");
        // SAFETY: allocated by `alloc_stack` with this layout, freed once
        // (the trait contract).
        unsafe { dealloc(s.base, layout) }
    }

    fn console(&self, s: &str) {
        eprint!("{s}");
    }

    fn halt(&self) -> ! {
        panic!("platform halt");
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// Serialises tests of one binary (the scheduler is a process global).
pub struct Session {
    _guard: MutexGuard<'static, ()>,
    pub platform: &'static TestPlatform,
}

impl Session {
    fn start(platform: &'static TestPlatform, cfg: Config) -> Session {
        let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: tests are serialised by SERIAL, and each test uses the
        // scheduler only from its own host thread until `shutdown`.
        unsafe { sc::init(platform, cfg) }.expect("init");
        Session {
            _guard: guard,
            platform,
        }
    }

    pub fn real() -> Session {
        Self::start(TestPlatform::real(), Config::default())
    }

    pub fn real_with(cfg: Config) -> Session {
        Self::start(TestPlatform::real(), cfg)
    }

    pub fn virtual_with(step: u64, cfg: Config) -> Session {
        Self::start(TestPlatform::virtual_clock(step), cfg)
    }

    /// Shut the scheduler down and check nothing leaked.
    pub fn finish(self) {
        self.finish_then(|| {});
    }

    /// [`finish`](Self::finish), then run `after` while still holding the
    /// serialising lock (for checks of the uninitialised state).
    pub fn finish_then(self, after: impl FnOnce()) {
        sc::shutdown().expect("shutdown");
        assert_eq!(
            self.platform.stacks_live.load(Ordering::Relaxed),
            0,
            "stacks leaked"
        );
        after();
    }
}

/// xorshift64* for test randomness.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
