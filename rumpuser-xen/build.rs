//! Links this crate's own binaries (the test image) for a freestanding
//! target with the PVH image layout: rumpuser-pvh's `link.ld` (ET_EXEC at
//! 1 MiB, PVH note in a PT_NOTE segment), `--no-pie` and `-z norelro`,
//! exactly as rumpuser-baremetal's `build.rs` does. Host
//! builds are untouched.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let script = format!("{dir}/../rumpuser-pvh/link.ld");
    println!("cargo:rerun-if-changed={script}");
    if std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default() == "none" {
        println!("cargo:rustc-link-arg-bins=-T{script}");
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=-znorelro");
    }
}
