//! A bounded, deterministic fuzz loop over the sysproxy frame assembler
//! and the server's connection state machine (`rumpuser_core::sp`), seeded
//! from the committed corpus in `tests/sp_corpus/`.
//!
//! Each input is fed to a model server session in random chunk sizes; the
//! session stops at the first frame error or protocol violation, as the
//! real server closes the connection. Checked: no panic, every frame's body
//! matches its header and respects the limit in force when its header
//! arrived, the assembler buffers no more than one frame's worth, phases
//! only move forward. `RUMPUSER_SP_FUZZ_ITERS` (default 100000) and
//! `RUMPUSER_SP_FUZZ_SEED` change the run.

use rumpuser_core::sp::conn::{
    body_limit, classify, Delivery, Event, Expect, Pending, Phase, Request, MAX_REQUEST_BODY,
};
use rumpuser_core::sp::frame::{Assembler, FrameError};
use rumpuser_core::sp::url;
use rumpuser_core::sp::wire::{self, Header, HDRSZ};
use std::path::Path;
use std::time::Instant;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Debug, Default)]
struct Stats {
    frames: usize,
    requests: usize,
    responses: usize,
    frame_errors: usize,
    violations: usize,
    clean_ends: usize,
}

/// Why a session ended early.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Clean,
    FrameError,
    Violation,
}

/// Runs one client byte stream through a model server session.
fn session(input: &[u8], rng: &mut Rng, stats: &mut Stats) -> End {
    let mut asm = Assembler::new();
    let mut phase = Phase::New;
    let mut in_exec = false;
    let mut pending = Pending::new();
    // Server requests 0..3 are outstanding, as if a syscall had issued them.
    pending.register(Expect::Copyin { len: 16 });
    pending.register(Expect::Copyinstr { max: 32 });
    pending.register(Expect::Anonmmap);
    let mut rest = input;
    while !rest.is_empty() {
        let chunk = 1 + rng.below(rest.len().min(64));
        let mut piece = &rest[..chunk];
        rest = &rest[chunk..];
        while !piece.is_empty() {
            let mut limit_seen = None;
            let r = asm.push(piece, |h| {
                let l = body_limit(&pending, h);
                limit_seen = Some((*h, l));
                l
            });
            let (used, frame) = match r {
                Ok(x) => x,
                Err(e) => {
                    if let FrameError::TooShort { len } = e {
                        assert!(len < HDRSZ as u64);
                    }
                    stats.frame_errors += 1;
                    return End::FrameError;
                }
            };
            assert!(used > 0 && used <= piece.len());
            piece = &piece[used..];
            assert!(asm.buffered() <= HDRSZ + (1 << 20));
            let Some(f) = frame else {
                continue;
            };
            stats.frames += 1;
            assert_eq!(f.hdr.body_len(), Some(f.body.len()));
            if let Some((h, Ok(max))) = limit_seen {
                assert_eq!(h, f.hdr);
                assert!(f.body.len() <= max);
            }
            if f.hdr.class() != Some(wire::Class::Resp) {
                assert!(f.body.len() <= MAX_REQUEST_BODY);
            }
            match classify(phase, in_exec, f) {
                Err(v) => {
                    assert!(!v.why.is_empty());
                    stats.violations += 1;
                    return End::Violation;
                }
                Ok(Event::Request { req, .. }) => {
                    stats.requests += 1;
                    match req {
                        Request::Guest { comm } | Request::Exec { comm } => {
                            assert!(!comm.as_bytes().contains(&0));
                            if phase == Phase::Running {
                                // Exec: done at once in this model.
                                in_exec = rng.below(2) == 0;
                            }
                            phase = Phase::Running;
                        }
                        Request::Fork { .. } => {
                            assert_eq!(phase, Phase::New);
                            phase = Phase::Running;
                        }
                        Request::Prefork => assert!(!in_exec),
                        Request::Syscall { mut args, .. } => {
                            assert_eq!(phase, Phase::Running);
                            assert!(!args.as_mut_ptr().is_null());
                            pending.register(Expect::Copyin { len: 8 });
                        }
                    }
                }
                Ok(Event::Response { reqno, typ, body }) => {
                    assert_eq!(phase, Phase::Running);
                    stats.responses += 1;
                    if let Delivery::Violation(_) = pending.deliver(reqno, typ, body) {
                        stats.violations += 1;
                        return End::Violation;
                    }
                    let _ = pending.take(reqno);
                }
            }
        }
    }
    stats.clean_ends += 1;
    End::Clean
}

const INTERESTING_LENS: [u64; 10] = [
    0,
    1,
    23,
    24,
    25,
    24 + 16,
    24 + 4096,
    24 + 4097,
    u64::MAX,
    1 << 40,
];

fn mutate(input: &[u8], corpus: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(9) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(v.len() + 1);
                let n = 1 + rng.below(8);
                for _ in 0..n {
                    v.insert(i, rng.next() as u8);
                }
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below(8.min(v.len() - i));
                v.drain(i..i + n);
            }
            4 => v.truncate(rng.below(v.len() + 1)),
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(v.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[rng.below(other.len() + 1)..]);
            }
            // Header fields of the frame at a frame-aligned-ish offset.
            6 if v.len() >= HDRSZ => {
                let off = rng.below(v.len() - HDRSZ + 1);
                let len = INTERESTING_LENS[rng.below(INTERESTING_LENS.len())];
                v[off..off + 8].copy_from_slice(&len.to_ne_bytes());
            }
            7 if v.len() >= HDRSZ => {
                let off = rng.below(v.len() - HDRSZ + 1);
                let h = Header::decode(v[off..off + HDRSZ].try_into().unwrap());
                let h = Header {
                    class: rng.below(5) as u16,
                    typ: rng.below(11) as u16,
                    arg: rng.below(6) as u32,
                    reqno: rng.below(5) as u64,
                    ..h
                };
                v[off..off + HDRSZ].copy_from_slice(&h.encode());
            }
            _ => {
                let n = rng.below(64);
                v.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    v
}

fn load_corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sp_corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/sp_corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "corpus has {} files", files.len());
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn corpus_is_valid() {
    if cfg!(not(all(
        target_endian = "little",
        target_pointer_width = "64"
    ))) {
        return; // the corpus is in x86_64 layout
    }
    let mut rng = Rng(1);
    for (i, input) in load_corpus().iter().enumerate() {
        let mut st = Stats::default();
        assert_eq!(
            session(input, &mut rng, &mut st),
            End::Clean,
            "corpus file #{i}"
        );
        assert!(st.frames >= 1);
    }
}

#[test]
fn fuzz_frames_and_state_machine() {
    let iters: usize = std::env::var("RUMPUSER_SP_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = std::env::var("RUMPUSER_SP_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_5eed_1234_5678);
    let corpus = load_corpus();
    let mut rng = Rng(seed | 1);
    let mut stats = Stats::default();
    let start = Instant::now();
    for i in 0..iters {
        let input = if i % 50 == 0 {
            // Pure noise now and then.
            let n = rng.below(200);
            (0..n).map(|_| rng.next() as u8).collect()
        } else {
            let base = &corpus[rng.below(corpus.len())];
            mutate(base, &corpus, &mut rng)
        };
        session(&input, &mut rng, &mut stats);
    }
    println!("{iters} inputs in {:?}: {stats:?}", start.elapsed());
    // The mutations must reach every outcome.
    assert!(stats.frame_errors > 0 && stats.violations > 0 && stats.clean_ends > 0);
    assert!(stats.requests > iters / 4 && stats.responses > 0);
}

#[test]
fn fuzz_urls() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let seeds = [
        "unix:///tmp/sock",
        "unix://rel",
        "tcp://127.0.0.1:1234",
        "tcp://*:80/x",
        "tcp://[::1]:9/",
        "tcp6://[fe80::1]:65535",
    ];
    let alphabet = b"unixtcp6:/[]*.0123456789abcdef%/ \0";
    for _ in 0..20_000 {
        let mut s = seeds[rng.below(seeds.len())].as_bytes().to_vec();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(s.len() + 1);
            match rng.below(3) {
                0 => s.insert(i, alphabet[rng.below(alphabet.len())]),
                1 if i < s.len() => {
                    s.remove(i);
                }
                _ if i < s.len() => s[i] = alphabet[rng.below(alphabet.len())],
                _ => {}
            }
        }
        if let Ok(s) = std::str::from_utf8(&s) {
            for server in [false, true] {
                if let Ok(url::SpUrl::Tcp(a)) = url::parse(s, server) {
                    assert!(server || !a.ip().is_unspecified(), "{s}");
                }
            }
        }
    }
}
