//! `cargo xtask xen-dist`: the C library `librumpuser_xen.a` (release),
//! with the linker script and a README of the link and run lines, in
//! `target/dist/xen/`.

use crate::qemu;
use crate::util::{root, target, Result};
use std::fs;
use std::path::PathBuf;

/// Builds `librumpuser_xen.a` (release) and returns its path.
pub fn build_archive() -> Result<PathBuf> {
    qemu::build_archive("rumpuser-xen")
}

/// `cargo xtask xen-dist`: `target/dist/xen/` with the archive, the
/// linker script and a README holding the link and run lines.
pub fn dist(_args: &[String]) -> Result<()> {
    let archive = build_archive()?;
    let out = target().join("dist").join("xen");
    fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    // Debug info stays in debug/ (see `crate::dist`).
    let full = out.join("debug/librumpuser_xen.a");
    fs::create_dir_all(out.join("debug")).map_err(|e| e.to_string())?;
    fs::copy(&archive, &full).map_err(|e| format!("copy {}: {e}", archive.display()))?;
    crate::dist::strip_archive(&full, &out.join("librumpuser_xen.a"))?;
    let ld = root().join("rumpuser-pvh/link.ld");
    fs::copy(&ld, out.join("link.ld")).map_err(|e| format!("copy {}: {e}", ld.display()))?;
    fs::write(out.join("README"), DIST_README).map_err(|e| e.to_string())?;
    eprintln!("xen-dist: {}", out.display());
    Ok(())
}

/// The README of `target/dist/xen/`.
const DIST_README: &str = include_str!("dist-README");
