//! Shared body of the fault-injection tests: thousands of block requests
//! with `RUMPUSER_BIO_FAULTS` injecting EIO, ENOSPC and short transfers;
//! every request must complete exactly once, with a CPU held, and with a
//! result consistent with what was injected.

use rumpuser_core::abi::*;
use rumpuser_core::conformance::cases::bio::Done;
use rumpuser_core::conformance::hyp::Hyp;
use rumpuser_core::conformance::model;
use std::ffi::c_void;

/// Runs the scenario; `backend` only labels messages.
pub fn run(backend: &str) {
    // Set before the first request: the injector reads it once.
    std::env::set_var("RUMPUSER_BIO_FAULTS", "250:11");
    let api = &rumpuser_posix::rumpuser_exports::API;
    // The first call of the library in this process.
    assert_eq!(Hyp::new(api).init::<model::ModelKernel>(), 0);
    let m = model::install(api, 2);
    m.enter();
    let path =
        std::env::temp_dir().join(format!("rumpuser-faults-{backend}-{}", std::process::id()));
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut fd = -1;
    // SAFETY: valid path and out-pointer.
    let r = unsafe {
        (api.open)(
            cpath.as_ptr(),
            RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE,
            &mut fd,
        )
    };
    assert_eq!(r, 0);
    const N: usize = 3000;
    const BS: usize = 4096;
    // Fill the region first, so reads are never short because of EOF.
    let fill = vec![0x5au8; 64 * BS];
    let iov = IoVec {
        iov_base: fill.as_ptr() as *mut c_void,
        iov_len: fill.len(),
    };
    let mut n = 0;
    // SAFETY: one iovec over a live buffer.
    assert_eq!(unsafe { (api.iovwrite)(fd, &iov, 1, 0, &mut n) }, 0);
    assert_eq!(n, fill.len());
    let dones: Vec<Done> = (0..N).map(|_| Done::default()).collect();
    let mut bufs: Vec<Vec<u8>> = (0..N).map(|i| vec![i as u8; BS]).collect();
    for i in 0..N {
        let op = if i % 2 == 0 {
            RUMPUSER_BIO_WRITE
        } else {
            RUMPUSER_BIO_READ
        };
        let op = if op == RUMPUSER_BIO_WRITE && i % 10 == 0 {
            op | RUMPUSER_BIO_SYNC
        } else {
            op
        };
        // SAFETY: buffer and completion record outlive the request (we wait below).
        unsafe {
            dones[i].start(
                api,
                fd,
                op,
                bufs[i].as_mut_ptr(),
                BS,
                ((i % 64) * BS) as i64,
            )
        };
    }
    let t0 = std::time::Instant::now();
    while dones.iter().any(|d| d.calls() == 0) {
        assert!(
            t0.elapsed().as_secs() < 60,
            "{backend}: requests never completed"
        );
        // SAFETY: plain hypercall: sleep releases the model CPU.
        unsafe { (api.clock_sleep)(RUMPUSER_CLOCK_RELWALL, 0, 1_000_000) };
    }
    // SAFETY: as above; give late duplicates a chance to show up.
    unsafe { (api.clock_sleep)(RUMPUSER_CLOCK_RELWALL, 0, 20_000_000) };
    let (mut eio, mut enospc, mut short, mut full) = (0, 0, 0, 0);
    for (i, d) in dones.iter().enumerate() {
        assert_eq!(
            d.calls(),
            1,
            "{backend}: request {i} completed {} times",
            d.calls()
        );
        assert_eq!(
            d.without_cpu(),
            0,
            "{backend}: request {i} completed without a CPU"
        );
        let (b, e) = d.result();
        match e {
            0 if b == BS => full += 1,
            0 if b == BS / 2 => short += 1,
            5 if b == 0 => eio += 1,
            28 if b == 0 && i % 2 == 0 => enospc += 1,
            _ => panic!("{backend}: request {i}: inconsistent completion ({b} bytes, error {e})"),
        }
    }
    println!("{backend}: {full} full, {short} short, {eio} EIO, {enospc} ENOSPC of {N}");
    assert!(
        short > 50 && eio > 50 && enospc > 20,
        "{backend}: the injector did not fire as configured"
    );
    assert!(full > N / 2);
    // SAFETY: plain hypercall.
    unsafe { (api.close)(fd) };
    m.leave();
    let _ = std::fs::remove_file(path);
}
