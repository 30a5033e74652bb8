//! Block reads through a descriptor's file mapping (`rumpuser_host::mapped`):
//! same bytes as `pread`, coherent with writes, only for descriptors that
//! can be mapped, a truncated file absorbed instead of a crash, other
//! `SIGBUS`es left to the program, a copy that waited for the disk resting
//! the mapping, and closing while copies run.

use rumpuser_core::types::{AccessMode, BioOp, OpenFlags};
use rumpuser_host::{blockio, file, mapped};
use std::ffi::CString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Descriptor numbers are process-wide: one test at a time (including the
/// ones that spawn a child, which opens pipes), so that a number one test
/// closes is not taken by another under its readers.
static SERIAL: Mutex<()> = Mutex::new(());

const CHILD: &str = "MAPPED_TEST_CHILD";

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    dir.join(format!("mapped-{}-{name}", std::process::id()))
}

fn byte(seed: u8, i: usize) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8
}

fn make(name: &str, len: usize, seed: u8) -> PathBuf {
    let p = path(name);
    let data: Vec<u8> = (0..len).map(|i| byte(seed, i)).collect();
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
    p
}

fn open(p: &Path, access: AccessMode, bio: bool) -> i32 {
    let c = CString::new(p.to_str().unwrap()).unwrap();
    file::open(
        &c,
        OpenFlags {
            access,
            create: false,
            exclusive: false,
            bio,
        },
    )
    .unwrap()
}

fn read(fd: i32, off: usize, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    mapped::try_read(fd, &mut buf, off as u64).then_some(buf)
}

fn expect(seed: u8, off: usize, len: usize) -> Vec<u8> {
    (off..off + len).map(|i| byte(seed, i)).collect()
}

fn truncate(p: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn bio_descriptors_are_read_through_the_mapping() {
    let _s = serial();
    let size = 1 << 20;
    let p = make("basic", size, 7);
    let fd = open(&p, AccessMode::ReadWrite, true);
    assert!(
        mapped::is_mapped(fd),
        "a BIO descriptor of a regular file is mapped"
    );
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let off = (x as usize % (size / 512)) * 512;
        let len = 512 * (1 + (x >> 40) as usize % 128).min((size - off) / 512);
        assert_eq!(
            read(fd, off, len).expect("served"),
            expect(7, off, len),
            "at {off}+{len}"
        );
    }
    assert_eq!(mapped::served(fd), 200);
    // Past the mapped size: left to the system call.
    assert!(read(fd, size - 512, 1024).is_none());
    assert!(read(fd, size, 512).is_none());
    assert!(read(fd, usize::MAX - 10, 512).is_none());
    assert_eq!(mapped::served(fd), 200);
    // A write through the descriptor is seen at once (one page cache).
    let new = [0xa5u8; 4096];
    // SAFETY: a plain pwrite from our buffer.
    let n = unsafe { libc::pwrite(fd, new.as_ptr().cast(), 4096, 8192) };
    assert_eq!(n, 4096);
    assert_eq!(read(fd, 8192 - 512, 1024).unwrap()[512..], new[..512]);
    assert_eq!(read(fd, 8192, 4096).unwrap(), new);
    file::close(fd).unwrap();
    assert!(!mapped::is_mapped(fd));
    assert!(
        read(fd, 0, 512).is_none(),
        "a closed descriptor's mapping was used"
    );
    std::fs::remove_file(p).unwrap();
}

#[test]
fn descriptors_that_cannot_be_mapped_keep_the_system_call() {
    let _s = serial();
    let p = make("plain", 1 << 16, 1);
    for (access, bio, why) in [
        (AccessMode::ReadWrite, false, "opened without BIO"),
        (AccessMode::WriteOnly, true, "write-only"),
    ] {
        let fd = open(&p, access, bio);
        assert!(!mapped::is_mapped(fd), "{why}: mapped");
        assert!(read(fd, 0, 512).is_none(), "{why}: served");
        file::close(fd).unwrap();
    }
    let empty = make("empty", 0, 0);
    let fd = open(&empty, AccessMode::ReadWrite, true);
    assert!(!mapped::is_mapped(fd), "an empty file is mapped");
    file::close(fd).unwrap();
    let dir = path("dir");
    std::fs::create_dir_all(&dir).unwrap();
    let fd = open(&dir, AccessMode::ReadOnly, true);
    assert!(!mapped::is_mapped(fd), "a directory is mapped");
    file::close(fd).unwrap();
    for q in [p, empty] {
        std::fs::remove_file(q).unwrap();
    }
    std::fs::remove_dir(dir).unwrap();
}

#[test]
fn a_truncated_file_falls_back_instead_of_crashing() {
    let _s = serial();
    let p = make("trunc", 1 << 16, 3);
    let fd = open(&p, AccessMode::ReadWrite, true);
    assert_eq!(read(fd, 4096, 4096).unwrap(), expect(3, 4096, 4096));
    // Someone else cuts the file to 8 KiB under the mapping: the pages
    // past the end now fault with SIGBUS.
    truncate(&p, 8192);
    assert!(
        read(fd, 32768, 4096).is_none(),
        "a read past the new end was served"
    );
    assert!(
        !mapped::is_mapped(fd),
        "the faulted mapping is still in use"
    );
    assert!(
        read(fd, 0, 4096).is_none(),
        "a faulted mapping served again"
    );
    // The system call the caller falls back to tells the truth.
    let mut buf = vec![0u8; 4096];
    let r = blockio::transfer(fd, BioOp::Read, &mut buf, 32768);
    assert_eq!(r, Ok(0));
    let r = blockio::transfer(fd, BioOp::Read, &mut buf, 0);
    assert_eq!(r, Ok(4096));
    assert_eq!(buf, expect(3, 0, 4096));
    file::close(fd).unwrap();
    std::fs::remove_file(p).unwrap();
}

/// Touches a page of the program's own mapping past the end of its file:
/// a `SIGBUS` the guard must not take for its own.
fn foreign_sigbus() {
    let p = make("foreign", 4096, 5);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    // SAFETY: a fresh mapping of 2 pages of a 1-page file.
    let m = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            8192,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(m, libc::MAP_FAILED);
    println!("child: touching");
    // SAFETY: mapped; the second page lies past the end of the file, which
    // is the point: this faults.
    let v = unsafe { core::ptr::read_volatile((m as *const u8).add(4096)) };
    println!("child: survived a foreign SIGBUS ({v})");
}

extern "C" fn programs_handler(_: i32, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(42) }
}

/// The child process of the `SIGBUS` and switch-off tests.
#[test]
fn child() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    // A guard that swallowed a fault it does not own would spin on it.
    // SAFETY: plain alarm(2).
    unsafe { libc::alarm(10) };
    let p = make("child", 1 << 16, 9);
    if mode == "default" {
        // As in a C program: Rust's runtime put a handler of its own here.
        // SAFETY: resetting a disposition before the guard is installed.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
    }
    if mode == "handler" {
        // SAFETY: installing the program's own handler, before the guard.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = programs_handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            assert_eq!(libc::sigaction(libc::SIGBUS, &sa, core::ptr::null_mut()), 0);
        }
    }
    let fd = open(&p, AccessMode::ReadWrite, true);
    println!("child: mapped {}", mapped::is_mapped(fd));
    if mode == "off" {
        return;
    }
    // The guard still absorbs faults in its own copies.
    truncate(&p, 4096);
    println!(
        "child: guarded read served {}",
        read(fd, 32768, 4096).is_some()
    );
    foreign_sigbus();
}

fn run_child(mode: &str, env: Option<(&str, &str)>) -> (std::process::ExitStatus, String) {
    let mut cmd = rumpuser_host::testing::current_exe_command();
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status, text)
}

#[test]
fn other_sigbus_faults_still_reach_the_program() {
    // Spawning opens pipes: descriptor numbers another test may be reusing.
    let _s = serial();
    let (st, out) = run_child("default", None);
    assert!(out.contains("child: mapped true"), "{out}");
    assert!(out.contains("child: guarded read served false"), "{out}");
    assert!(out.contains("child: touching"), "{out}");
    assert!(!out.contains("survived"), "{out}");
    assert_eq!(
        st.signal(),
        Some(libc::SIGBUS),
        "the default action expected: {st:?}\n{out}"
    );

    let (st, out) = run_child("handler", None);
    assert!(out.contains("child: guarded read served false"), "{out}");
    assert!(out.contains("child: touching"), "{out}");
    assert_eq!(
        st.code(),
        Some(42),
        "the program's own handler expected: {st:?}\n{out}"
    );
}

#[test]
fn the_mapping_can_be_switched_off() {
    let _s = serial();
    let (st, out) = run_child("off", Some(("RUMPUSER_BIO_MMAP", "0")));
    assert!(st.success(), "{out}");
    assert!(out.contains("child: mapped false"), "{out}");
    let (st, out) = run_child("off", None);
    assert!(st.success(), "{out}");
    assert!(out.contains("child: mapped true"), "{out}");
}

/// Whether the page at `off` of `fd` is in the page cache.
fn resident(fd: i32, off: usize) -> bool {
    // SAFETY: a fresh one-page mapping, probed with mincore and dropped.
    unsafe {
        let m = libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            off as libc::off_t,
        );
        assert_ne!(m, libc::MAP_FAILED);
        let mut v = 0u8;
        assert_eq!(libc::mincore(m, 4096, &mut v), 0);
        libc::munmap(m, 4096);
        v & 1 != 0
    }
}

#[test]
fn a_copy_that_waited_for_the_disk_rests_the_mapping() {
    let _s = serial();
    let size = 8 << 20;
    let p = make("cold", size, 11);
    let fd = open(&p, AccessMode::ReadWrite, true);
    // Drop the file's pages (clean, synced, not mapped in) from the cache.
    // SAFETY: advice on our own descriptor.
    let r = unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0);
    let off = 5 << 20;
    assert!(
        !resident(fd, off),
        "the host kept the page cached; no major fault can be made"
    );
    let before_first = std::time::Instant::now();
    assert_eq!(
        read(fd, off, 4096).expect("the first cold read is served"),
        expect(11, off, 4096)
    );
    // It waited for the disk: the mapping rests, and reads within the rest
    // go the non-blocking way. (Only the count is certain: a slow emulator
    // may take the whole short first rest to get to the next read.)
    assert_eq!(
        mapped::rests(fd),
        1,
        "the mapping did not rest after a major fault"
    );
    // (The page just read: cached now, so a read served after the rest
    // does not wait again.)
    let next = read(fd, off, 4096);
    if before_first.elapsed() < std::time::Duration::from_nanos(mapped::rest::REST_MIN) {
        assert!(next.is_none(), "a read during the rest was served");
    }
    let served = mapped::served(fd);
    assert_eq!(served, 1 + next.is_some() as u64);
    // A one-off: the first rest is short, then the mapping serves again.
    std::thread::sleep(std::time::Duration::from_millis(
        1 + 2 * mapped::rest::REST_MIN / 1_000_000,
    ));
    assert_eq!(
        read(fd, off, 4096).expect("served after the rest"),
        expect(11, off, 4096)
    );
    assert_eq!(mapped::served(fd), served + 1);
    assert_eq!(mapped::rests(fd), 1, "a cached page rested the mapping");
    file::close(fd).unwrap();
    std::fs::remove_file(p).unwrap();
}

#[test]
fn closing_while_copies_run_is_safe() {
    let _s = serial();
    let size = 1 << 18;
    let a = make("race-a", size, 21);
    let b = make("race-b", size, 77);
    let fd = open(&a, AccessMode::ReadWrite, true);
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let (stop, served) = (stop.clone(), served.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    i = (i + 7) % (size / 4096);
                    if let Some(got) = read(fd, i * 4096, 4096) {
                        assert!(
                            got == expect(21, i * 4096, 4096) || got == expect(77, i * 4096, 4096),
                            "a torn or foreign read at page {i}"
                        );
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for round in 0..300 {
        std::thread::sleep(std::time::Duration::from_micros(200));
        file::close(fd).unwrap();
        let next = open(
            if round % 2 == 0 { &b } else { &a },
            AccessMode::ReadWrite,
            true,
        );
        assert_eq!(next, fd, "the descriptor number moved");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    file::close(fd).unwrap();
    assert!(
        served.load(Ordering::Relaxed) > 0,
        "no read was served during the race"
    );
    std::fs::remove_file(a).unwrap();
    std::fs::remove_file(b).unwrap();
}
