//! A block read the page cache can serve completes inside `rumpuser_bio`
//! with the caller's virtual CPU never released (`bio_try_now`): copied
//! out of the descriptor's mapping when it was opened with BIO, else with
//! `preadv2(RWF_NOWAIT)`; a `BIO_SYNC` write, which must wait for the disk,
//! releases it.

use rumpuser_core::abi::*;
use rumpuser_core::conformance::cases::bio::Done;
use rumpuser_core::conformance::hyp::Hyp;
use rumpuser_core::conformance::model;
use std::sync::atomic::Ordering;

#[test]
fn cached_read_completes_without_releasing_the_cpu() {
    let api = &rumpuser_posix::rumpuser_exports::API;
    // The first call of the library in this process.
    assert_eq!(Hyp::new(api).init::<model::ModelKernel>(), 0);
    // Two virtual CPUs: the completion thread needs one while this thread
    // keeps its own.
    let m = model::install(api, 2);
    m.enter();
    let path = std::env::temp_dir().join(format!("rumpuser-cachehit-{}", std::process::id()));
    std::fs::write(&path, vec![0x6bu8; 64 * 1024]).unwrap();
    // Into the page cache.
    assert_eq!(std::fs::read(&path).unwrap().len(), 64 * 1024);
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut fd = -1;
    // SAFETY: valid path and out-pointer.
    let r = unsafe {
        (api.open)(
            cpath.as_ptr(),
            RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_BIO,
            &mut fd,
        )
    };
    assert_eq!(r, 0);
    let lwp = m.current().expect("the test thread has an lwp");
    // Whether this host can serve a read from the page cache without
    // blocking at all (`RWF_NOWAIT`; not under every emulator or old kernel).
    let nowait = {
        let f = std::fs::File::open(&path).unwrap();
        let mut b = [0u8; 512];
        let iov = libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        };
        // SAFETY: one iovec over a local buffer, an open descriptor.
        let n = unsafe {
            libc::preadv2(
                std::os::fd::AsRawFd::as_raw_fd(&f),
                &iov,
                1,
                0,
                libc::RWF_NOWAIT,
            )
        };
        n == 512
    };

    // Read from the descriptor's mapping (opened with BIO: no system call).
    assert!(rumpuser_host::mapped::is_mapped(fd));
    let releases = lwp.releases.load(Ordering::Relaxed);
    let mut buf = vec![0u8; 4096];
    cached_read(api, fd, &mut buf, true);
    assert_eq!(rumpuser_host::mapped::served(fd), 1);
    assert_eq!(
        lwp.releases.load(Ordering::Relaxed),
        releases,
        "the CPU was released for a read out of the mapping"
    );
    // Without BIO nothing is mapped: `preadv2(RWF_NOWAIT)`.
    let mut plain = -1;
    // SAFETY: valid path and out-pointer.
    let r = unsafe { (api.open)(cpath.as_ptr(), RUMPUSER_OPEN_RDONLY, &mut plain) };
    assert_eq!(r, 0);
    assert!(!rumpuser_host::mapped::is_mapped(plain));
    // (`open` itself releases the CPU while it waits for the host.)
    let releases = lwp.releases.load(Ordering::Relaxed);
    cached_read(api, plain, &mut buf, nowait);
    if nowait {
        assert_eq!(
            lwp.releases.load(Ordering::Relaxed),
            releases,
            "the CPU was released for a page-cache hit"
        );
    }
    // SAFETY: plain hypercall on our descriptor.
    unsafe { (api.close)(plain) };

    // A BIO_SYNC write must wait for the disk: the CPU is released.
    let w = Done::default();
    // SAFETY: as above.
    unsafe {
        w.start(
            api,
            fd,
            RUMPUSER_BIO_WRITE | RUMPUSER_BIO_SYNC,
            buf.as_mut_ptr(),
            buf.len(),
            0,
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while w.calls() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(w.calls(), 1);
    assert_eq!(w.result(), (4096, 0));
    assert!(lwp.releases.load(Ordering::Relaxed) > releases);
    // SAFETY: plain hypercall on our descriptor.
    unsafe { (api.close)(fd) };
    let _ = std::fs::remove_file(&path);
    m.leave();
}

/// Reads 4 KiB at 8192 of `fd` and checks it completed inside
/// `rumpuser_bio` with the CPU held (when `inline`; otherwise it may come
/// from the completion thread).
fn cached_read(api: rumpuser_core::conformance::KitApi, fd: i32, buf: &mut [u8], inline: bool) {
    buf.fill(0);
    let d = Done::default();
    // SAFETY: buffer and completion record outlive the request.
    unsafe {
        d.start(
            api,
            fd,
            RUMPUSER_BIO_READ,
            buf.as_mut_ptr(),
            buf.len(),
            8192,
        )
    };
    if !inline {
        eprintln!("no RWF_NOWAIT on this host: the read takes the asynchronous path");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while d.calls() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    // Completed before `rumpuser_bio` returned, with the CPU.
    assert_eq!(d.calls(), 1, "not completed inline");
    assert_eq!(d.without_cpu(), 0);
    assert_eq!(d.result(), (4096, 0));
    assert!(buf.iter().all(|&b| b == 0x6b));
}
