//! Runs the conformance kit against the green hypervisor through its
//! exported C ABI. The test's host thread becomes the green host thread.

use rumpuser_core::conformance::{run, Config, Report};

struct Print;

impl Report for Print {
    fn case(&mut self, name: &str, result: &Result<(), String>) {
        match result {
            Ok(()) => println!("conformance {name} ... ok"),
            Err(e) => println!("conformance {name} ... FAILED: {e}"),
        }
    }
}

#[test]
fn green_passes_the_conformance_kit() {
    let dir = std::env::temp_dir().join(format!("rumpuser-green-kit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = Config::default()
        .scratch_dir(dir.to_str().unwrap())
        .cooperative(true);
    cfg.filter = std::env::var("RUMPUSER_KIT_FILTER").ok();
    let s = run(&rumpuser_green::rumpuser_exports::API, &cfg, &mut Print);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{} passed, {} failed, {} skipped",
        s.passed, s.failed, s.skipped
    );
    assert!(s.failures.is_empty(), "failures: {:#?}", s.failures);
    assert!(s.passed >= 40, "only {} cases ran", s.passed);
}
