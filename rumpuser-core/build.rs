//! Compiles the C shim for the variadic `rumpuser_dprintf`.
//!
//! Hosted targets format with the C library's `vsnprintf`. Freestanding
//! targets (`target_os = "none"`) need no C compiler: `src/printf.rs`
//! defines `rumpuser_dprintf` there as a naked Rust function.

fn main() {
    println!("cargo:rerun-if-changed=csrc/dprintf.c");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "none" {
        cc::Build::new()
            .file("csrc/dprintf.c")
            .warnings(true)
            .flag_if_supported("-fvisibility=default")
            .compile("rumpuser_dprintf");
    }
}
