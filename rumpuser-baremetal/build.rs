//! Passes the image linker script (`rumpuser-pvh/link.ld`, shared with
//! rumpuser-xen) and `--no-pie` to this crate's own binaries when they
//! are built for a freestanding target (`x86_64-unknown-none`); host
//! builds are untouched.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let script = format!("{dir}/../rumpuser-pvh/link.ld");
    println!("cargo:rerun-if-changed={script}");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "none" {
        println!("cargo:rustc-link-arg-bins=-T{script}");
        // The target links static-PIE by default; the PVH note and the
        // 32-bit trampoline hold absolute addresses, so link a plain
        // static executable at the script's address instead (the objects
        // stay position-independent, which is fine there).
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=-znorelro");
    }
}
