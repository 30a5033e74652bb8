//! Passes the image linker script (and `--no-pie`) to this crate's own
//! binaries when they are built for a freestanding target
//! (`x86_64-unknown-none`); host builds are untouched.

fn main() {
    println!("cargo:rerun-if-changed=link.ld");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "none" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
        // The target links static-PIE by default; the PVH note and the
        // 32-bit trampoline hold absolute addresses, so link a plain
        // static executable at the script's address instead (the objects
        // stay position-independent, which is fine there).
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=-znorelro");
    }
}
