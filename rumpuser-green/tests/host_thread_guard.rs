//! With other host threads switched off (`RUMPUSER_GREEN_HOSTS=0`, as in
//! deterministic mode), every hypercall that touches the green world must
//! come from the host thread that called `rumpuser_init`: one from another
//! host thread ends the process with a message (not silent corruption of
//! the scheduler). The check runs in a child process, since it aborts.

use rumpuser_core::abi::RUMPUSER_MTX_KMUTEX;

const CHILD: &str = "RUMPUSER_GREEN_GUARD_CHILD";

/// The child: init here, then enter a mutex from another host thread.
#[test]
fn guard_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let api = &rumpuser_green::rumpuser_exports::API;
    let rc = rumpuser_core::conformance::hyp::Hyp::new(api)
        .init::<rumpuser_core::conformance::model::ModelKernel>();
    assert_eq!(rc, 0);
    let mut m = std::ptr::null_mut();
    // SAFETY: valid out-pointer; on the init thread.
    unsafe { (api.mutex_init)(&mut m, RUMPUSER_MTX_KMUTEX) };
    let addr = m as usize;
    // From the init thread it works.
    // SAFETY: a mutex made above, entered and left by this thread.
    unsafe {
        (api.mutex_enter_nowrap)(addr as *mut _);
        (api.mutex_exit)(addr as *mut _);
    }
    println!("guard-child: init thread ok");
    let _ = std::thread::spawn(move || {
        // SAFETY: a valid mutex; the wrong host thread on purpose.
        unsafe { (api.mutex_enter_nowrap)(addr as *mut _) };
        println!("guard-child: foreign thread got in");
    })
    .join();
    println!("guard-child: survived");
}

#[test]
fn hypercall_from_another_host_thread_is_fatal() {
    let mut cmd = rumpuser_host::testing::current_exe_command();
    let out = cmd
        .args(["--exact", "guard_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("RUMPUSER_GREEN_HOSTS", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("guard-child: init thread ok"),
        "{stdout}\n{stderr}"
    );
    assert!(
        !out.status.success(),
        "the child survived:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("foreign thread got in"), "{stdout}");
    assert!(
        stderr.contains("hypercall from host thread")
            && stderr.contains("called rumpuser_init")
            && stderr.contains("RUMPUSER_GREEN_HOSTS=0"),
        "no guard message:\n{stderr}"
    );
}
