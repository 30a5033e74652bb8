//! On a host that refuses `RWF_NOWAIT` for buffered writes (ext4), a green
//! write without `BIO_SYNC` completes inside `rumpuser_bio` with the
//! caller's virtual CPU never released (a plain `pwrite`, as rumpfiber
//! does). A `BIO_SYNC` write goes to a host worker when another green
//! thread is ready to run, so that it runs during the disk flush, and is
//! done inline (`pwrite` + `fdatasync`) when nobody would run meanwhile.

use rumpuser_core::abi::*;
use rumpuser_core::conformance::cases::bio::Done;
use rumpuser_core::conformance::model;
use std::ffi::c_void;
use std::sync::atomic::Ordering;

/// Whether the host takes `pwritev2(RWF_NOWAIT)` for a buffered write in
/// the directory of `path`.
fn host_takes_nowait_writes(path: &std::path::Path) -> bool {
    let probe = path.with_extension("probe");
    let f = std::fs::File::create(&probe).unwrap();
    let b = [0u8; 512];
    let iov = libc::iovec {
        iov_base: b.as_ptr() as *mut c_void,
        iov_len: b.len(),
    };
    // SAFETY: one iovec over a local buffer, an open descriptor.
    let n = unsafe {
        libc::pwritev2(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            &iov,
            1,
            0,
            libc::RWF_NOWAIT,
        )
    };
    let e = std::io::Error::last_os_error().raw_os_error();
    let _ = std::fs::remove_file(&probe);
    !(n < 0 && matches!(e, Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)))
}

extern "C" fn ready_thread(_: *mut c_void) -> *mut c_void {
    std::ptr::null_mut()
}

#[test]
fn buffered_write_inline_and_sync_write_inline_only_when_idle() {
    let api = &rumpuser_green::rumpuser_exports::API;
    assert_eq!(
        rumpuser_core::conformance::hyp::Hyp::new(api).init::<model::ModelKernel>(),
        0
    );
    let m = model::install(api, 1);
    m.enter();
    let path = std::env::temp_dir().join(format!("rumpuser-green-inlinew-{}", std::process::id()));
    if host_takes_nowait_writes(&path) {
        eprintln!(
            "this host takes RWF_NOWAIT buffered writes in {}: the inline pwrite path is not used",
            path.display()
        );
        m.leave();
        return;
    }
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut fd = -1;
    // SAFETY: valid path and out-pointer.
    let r = unsafe {
        (api.open)(
            cpath.as_ptr(),
            RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE | RUMPUSER_OPEN_BIO,
            &mut fd,
        )
    };
    assert_eq!(r, 0);
    let lwp = m.current().expect("the test thread has an lwp");

    let mut w: Vec<u8> = (0..65536u32).map(|i| (i * 13 + 5) as u8).collect();
    let releases = lwp.releases.load(Ordering::Relaxed);
    let d = Done::default();
    // SAFETY: buffer and completion record outlive the request.
    unsafe { d.start(api, fd, RUMPUSER_BIO_WRITE, w.as_mut_ptr(), w.len(), 4096) };
    // Completed before `rumpuser_bio` returned, with the CPU, never released.
    assert_eq!(d.calls(), 1, "not completed inline");
    assert_eq!(d.without_cpu(), 0);
    assert_eq!(d.result(), (65536, 0));
    assert_eq!(
        lwp.releases.load(Ordering::Relaxed),
        releases,
        "the CPU was released for an inline write"
    );
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(on_disk.len(), 4096 + 65536);
    assert!(on_disk[4096..] == w[..], "written data differs");

    // BIO_SYNC with another green thread ready: to a host worker; the
    // biodone green thread delivers it only once this thread lets the
    // scheduler run.
    let mut cookie: *mut c_void = std::ptr::null_mut();
    // SAFETY: a joinable green thread running `ready_thread`, which touches
    // nothing; created, hence ready, until this thread yields.
    let r = unsafe {
        (api.thread_create)(
            Some(ready_thread),
            std::ptr::null_mut(),
            c"ready".as_ptr(),
            1,
            0,
            -1,
            &mut cookie,
        )
    };
    assert_eq!(r, 0);
    let s = Done::default();
    // SAFETY: as above.
    unsafe {
        s.start(
            api,
            fd,
            RUMPUSER_BIO_WRITE | RUMPUSER_BIO_SYNC,
            w.as_mut_ptr(),
            4096,
            0,
        )
    };
    assert_eq!(
        s.calls(),
        0,
        "a SYNC write completed inline while another thread was ready"
    );
    assert!(lwp.releases.load(Ordering::Relaxed) > releases);
    for _ in 0..20_000 {
        if s.calls() > 0 {
            break;
        }
        // SAFETY: plain hypercall; lets the biodone green thread run.
        unsafe { (api.clock_sleep)(RUMPUSER_CLOCK_RELWALL, 0, 1_000_000) };
    }
    assert_eq!(s.calls(), 1);
    assert_eq!(s.without_cpu(), 0);
    assert_eq!(s.result(), (4096, 0));
    // SAFETY: the cookie of the joinable thread created above.
    assert_eq!(unsafe { (api.thread_join)(cookie) }, 0);

    // BIO_SYNC with nobody else ready: inline, the CPU never released.
    let releases = lwp.releases.load(Ordering::Relaxed);
    w[..4096].fill(0x5a);
    let t = Done::default();
    // SAFETY: as above.
    unsafe {
        t.start(
            api,
            fd,
            RUMPUSER_BIO_WRITE | RUMPUSER_BIO_SYNC,
            w.as_mut_ptr(),
            4096,
            8192,
        )
    };
    assert_eq!(
        t.calls(),
        1,
        "an idle scheduler's SYNC write was not inline"
    );
    assert_eq!(t.without_cpu(), 0);
    assert_eq!(t.result(), (4096, 0));
    assert_eq!(lwp.releases.load(Ordering::Relaxed), releases);
    assert!(std::fs::read(&path).unwrap()[8192..12288]
        .iter()
        .all(|&b| b == 0x5a));
    // SAFETY: plain hypercall on our descriptor.
    unsafe { (api.close)(fd) };
    let _ = std::fs::remove_file(&path);
    m.leave();
}
