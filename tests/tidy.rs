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

/// Files of the given extensions, outside `target/` and dot directories.
fn files_with(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') {
                files_with(&p, exts, out);
            }
        } else if exts.iter().any(|x| name.ends_with(x)) {
            out.push(p);
        }
    }
}

/// The section numbers cited as "contract N.M" in `text`: `contract`
/// (any case, as a word), optionally `section`/`§`, then numbers joined
/// by `, `, ` and ` or `/` ("contract 3.11, 2.6", "contract 0 and 3.9").
fn contract_refs(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let mut refs = Vec::new();
    for (i, _) in lower.match_indices("contract") {
        if lower[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric())
        {
            continue;
        }
        let mut rest = &text[i + "contract".len()..];
        let Some(r) = rest.strip_prefix(' ') else {
            continue;
        };
        rest = r;
        for p in ["section ", "sections ", "§ ", "§"] {
            if let Some(r) = rest.strip_prefix(p) {
                rest = r;
                break;
            }
        }
        loop {
            let num: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let num = num.trim_end_matches('.');
            if num.is_empty() || !num.starts_with(|c: char| c.is_ascii_digit()) {
                break;
            }
            refs.push(num.to_string());
            rest = &rest[num.len()..];
            let next = [", ", " and ", "/"]
                .iter()
                .find_map(|s| rest.strip_prefix(s))
                .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()));
            match next {
                Some(r) => rest = r,
                None => break,
            }
        }
    }
    refs
}

/// The section numbers of `doc/contract.md`'s headings (`## 3.` → `3`,
/// `### 3.5 …` → `3.5`).
fn contract_sections(doc: &str) -> std::collections::BTreeSet<String> {
    doc.lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| l.trim_start_matches('#').split_whitespace().next())
        .map(|w| w.trim_end_matches('.').to_string())
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .collect()
}

#[test]
fn contract_references_are_parsed() {
    assert_eq!(
        contract_refs("(contract 3.11, 2.6) and contract 0 and 3.9; rule 3 of contract 2.2: x"),
        ["3.11", "2.6", "0", "3.9", "2.2"]
    );
    assert_eq!(contract_refs("contract 2.5 step 6."), ["2.5"]);
    assert_eq!(contract_refs("Contract section 4.3, the frame"), ["4.3"]);
    assert_eq!(contract_refs("contract 4.3 and 4.4"), ["4.3", "4.4"]);
    assert_eq!(contract_refs("ends a sentence at contract 7."), ["7"]);
    // Not references: no number, another word, a version.
    assert!(contract_refs("the contract says; contracts 3.5; subcontract 1.2").is_empty());
    assert!(contract_refs("contract v17").is_empty());
    let s = contract_sections(
        "# T\n## 0. Conventions\n### 3.5 Block I/O\n#### not 9\n### 7.18 Bugs\ntext 4.4\n",
    );
    assert_eq!(s.into_iter().collect::<Vec<_>>(), ["0", "3.5", "7.18"]);
}

/// Every "contract N.M" in the sources and documents names a section of
/// `doc/contract.md`.
#[test]
fn contract_references_resolve() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("doc/contract.md")).unwrap();
    let sections = contract_sections(&doc);
    assert!(
        sections.len() > 60,
        "doc/contract.md has {} sections",
        sections.len()
    );
    let mut files = Vec::new();
    files_with(&root, &[".rs", ".md", ".c", ".h"], &mut files);
    let mut seen = 0;
    let mut bad = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            for r in contract_refs(line) {
                seen += 1;
                if !sections.contains(&r) {
                    let rel = f.strip_prefix(&root).unwrap_or(&f);
                    bad.push(format!("{}:{}: contract {r}", rel.display(), i + 1));
                }
            }
        }
    }
    assert!(seen > 30, "only {seen} contract references found");
    assert!(
        bad.is_empty(),
        "references to sections doc/contract.md does not have: {bad:#?}"
    );
}
