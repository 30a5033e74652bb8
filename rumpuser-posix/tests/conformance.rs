//! Runs the rumpuser conformance kit against the POSIX hypervisor through
//! its exported C ABI (one test: the kit owns the process-wide init).

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
fn posix_passes_the_conformance_kit() {
    let dir = std::env::temp_dir().join(format!("rumpuser-posix-kit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = Config::default().scratch_dir(dir.to_str().unwrap());
    cfg.filter = std::env::var("RUMPUSER_KIT_FILTER").ok();
    let s = run(&rumpuser_posix::rumpuser_exports::API, &cfg, &mut Print);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{} passed, {} failed, {} skipped",
        s.passed, s.failed, s.skipped
    );
    assert!(s.failures.is_empty(), "failures: {:#?}", s.failures);
    assert!(s.passed >= 40, "only {} cases ran", s.passed);
}
