//! Repository habits, enforced by `cargo test` (rust-analyzer's tidy idea):
//! every Rust file opens with a `//!` header saying what it is for, the C
//! symbols are defined in one place only, and no file has trailing
//! whitespace or tabs in Rust code.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            if name == "target" || name.starts_with('.') {
                continue;
            }
            rust_files(&p, out);
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

fn all() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut v = Vec::new();
    rust_files(&root, &mut v);
    assert!(v.len() > 50, "found only {} Rust files", v.len());
    v
}

#[test]
fn every_rust_file_has_a_module_header() {
    let mut missing = Vec::new();
    for f in all() {
        let text = std::fs::read_to_string(&f).unwrap();
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with("#!["))
            .unwrap_or("");
        if !first.starts_with("//!") {
            missing.push(f.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "files without a `//!` header: {missing:#?}"
    );
}

#[test]
fn c_symbols_are_defined_only_by_the_export_layer() {
    // The export macro defines every rumpuser_* symbol; the freestanding
    // dprintf (no C library) is the one other definition. Platform crates
    // may add extensions that keep the `rumpuser_` prefix or implement
    // NetBSD's component hypercalls (`rumpcomp_*`, named by the kernel
    // layer's pci_user.h and virtif_user.h), and boot images (src/bin/,
    // and the cases they share in src/guest_tests/) define their C entry
    // points and stand-ins.
    let allowed = ["rumpuser-core/src/export.rs", "rumpuser-core/src/printf.rs"];
    let mut bad = Vec::new();
    for f in all() {
        let rel = f.to_string_lossy().replace('\\', "/");
        if allowed.iter().any(|a| rel.ends_with(a))
            || rel.contains("/tests/")
            || rel.contains("/benches/")
            || rel.contains("/src/bin/")
            || rel.contains("/src/guest_tests/")
        {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            if t.starts_with("//") {
                continue;
            }
            if t.contains("#[no_mangle]")
                || t.contains("#[unsafe(no_mangle)]")
                || t.contains("#[export_name")
            {
                let item = lines[i + 1..]
                    .iter()
                    .find(|l| !l.trim_start().starts_with("#["))
                    .unwrap_or(&"");
                if !item.contains("fn rumpuser_")
                    && !item.contains("static rumpuser_")
                    && !item.contains("fn rumpcomp_")
                {
                    bad.push(format!("{}:{}", rel, i + 1));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "symbol definitions outside the export layer: {bad:#?}"
    );
}

#[test]
fn no_trailing_whitespace_or_tabs() {
    let mut bad = Vec::new();
    for f in all() {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, l) in text.lines().enumerate() {
            if l.ends_with(' ') || l.ends_with('\t') || l.starts_with('\t') {
                bad.push(format!("{}:{}", f.display(), i + 1));
            }
        }
    }
    assert!(bad.is_empty(), "whitespace problems: {bad:#?}");
}
