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

/// The crates whose roots deny `unsafe_code`: each `src/lib.rs` (and any
/// `src/main.rs` or `src/bin/*.rs`) has `#![deny(unsafe_code)]`, and
/// unsafe code is allowed only on the modules [`UNSAFE_ALLOWED`] names.
/// Bringing another crate under the rule is one entry here plus its
/// modules there.
const UNSAFE_DENIED: &[&str] = &[
    "rumpuser-core",
    "rumpuser-host",
    "rumpuser-posix",
    "rumpuser-green-core",
    "rumpuser-green",
    "rumpuser-testkit",
    "rumpuser-pvh",
    "rumpuser-baremetal",
    "rumpuser-xen",
    // rumpuser-suite, the package at the top (tests/ and benches/ are test
    // programs and not covered).
    "",
];

/// Where unsafe code may live: `(file, module, reason)`, the file holding
/// `#[allow(unsafe_code)]` on the `mod` item of that name (the allowance
/// covers the module and its submodules). Test code is marked as such.
const UNSAFE_ALLOWED: &[(&str, &str, &str)] = &[
    // rumpuser-core
    ("rumpuser-core/src/lib.rs", "abi", "Send/Sync of the C upcall table"),
    ("rumpuser-core/src/lib.rs", "api", "the C ABI as a table of raw function pointers, resolved by name"),
    ("rumpuser-core/src/lib.rs", "bio", "calls the kernel's biodone; requests own the kernel's raw buffer across threads"),
    ("rumpuser-core/src/lib.rs", "ffi", "the body of every hypercall: raw C arguments become Rust values"),
    ("rumpuser-core/src/lib.rs", "hypervisor", "Host's unsafe methods (free, unmap, iovread, iovwrite), SendPtr"),
    ("rumpuser-core/src/lib.rs", "printf", "rumpuser_dprintf without a C library: naked entry, va_list walk"),
    ("rumpuser-core/src/lib.rs", "sched", "the only caller of the kernel's upcalls"),
    ("rumpuser-core/src/sp/mod.rs", "kern", "LwpPtr, an opaque kernel pointer sent between server threads"),
    ("rumpuser-core/src/lib.rs", "conformance", "test code: the kit drives a library through raw C function pointers, as the kernel does"),
    ("rumpuser-core/src/export.rs", "rumpuser_exports", "the module export_rumpuser! generates in the platform crate: #[no_mangle] unsafe extern \"C\" entry points"),
    // rumpuser-host
    ("rumpuser-host/src/lib.rs", "sys", "every host call that rustix does not make safe, as small wrappers"),
    ("rumpuser-host/src/lib.rs", "host", "Host's unsafe methods (free, unmap, iovread, iovwrite), forwarded to sys"),
    ("rumpuser-host/src/lib.rs", "alloc", "the global allocator: unsafe impl GlobalAlloc, free lists threaded through free slots"),
    ("rumpuser-host/src/pages.rs", "tests", "test code: writes and reads the pages the pool hands out"),
    ("rumpuser-host/src/lib.rs", "mapped", "copies reads out of a MAP_SHARED mapping its lease keeps mapped, under a SIGBUS handler"),
    ("rumpuser-host/src/dl.rs", "tests", "test code: builds and dlopens objects, the kernel's callbacks as unsafe extern \"C\" fns"),
    ("rumpuser-host/src/handshake.rs", "loom_tests", "test code: loom's UnsafeCell stands for the state the handshake protects"),
    // rumpuser-posix
    ("rumpuser-posix/src/lib.rs", "thread", "raw pthreads and the extern \"C\" trampoline (pthread_exit unwinds no Rust frame)"),
    ("rumpuser-posix/src/lib.rs", "curlwp", "curlwp in a static-TLS slot read and written with inline asm"),
    ("rumpuser-posix/src/bio/mod.rs", "uring", "io_uring: submission entries point at the kernel's buffers until completion"),
    ("rumpuser-posix/src/sync/mod.rs", "stress_tests", "test code: lock words and unsynchronised counters shared through raw pointers"),
    ("rumpuser-posix/src/sync/mod.rs", "loom_tests", "test code: loom's UnsafeCell stands for the data the locks protect"),
    // rumpuser-green-core
    ("rumpuser-green-core/src/lib.rs", "arch", "context switch and first frame (global_asm!), stack canary, the TLS words (host cell, curlwp)"),
    ("rumpuser-green-core/src/lib.rs", "global", "the scheduler's one cell (UnsafeCell behind unsafe fn init's one-host-at-a-time rule)"),
    ("rumpuser-green-core/src/lib.rs", "api", "unsafe fn init; frees exited threads' stacks; a thread's home host cell"),
    ("rumpuser-green-core/src/lib.rs", "sched", "excursion records by pointer, first frames, stack canaries, freeing stacks"),
    ("rumpuser-green-core/src/lib.rs", "switch", "performs the register switch; host cells by pointer"),
    ("rumpuser-green-core/src/lib.rs", "queue", "re-borrows the wait queue a timed-out waiter is parked on, to unlink it"),
    ("rumpuser-green-core/src/lib.rs", "platform", "declares Platform::free_stack, an unsafe method"),
    ("rumpuser-green-core/src/lib.rs", "excursion", "an excursion's switches between a green thread and its helper host thread"),
    // rumpuser-green
    ("rumpuser-green/src/lib.rs", "sched", "Shared's Send/Sync (one host thread runs green code at a time), the kernel's thread function"),
    ("rumpuser-green/src/host/mod.rs", "platform", "the core's Platform: stacks (mmap, guard page, unsafe free_stack), the core's unsafe init"),
    ("rumpuser-green/src/host/mod.rs", "excursion", "runs excursions on helper host threads (the core's unsafe switches)"),
    ("rumpuser-green/src/host/mod.rs", "token", "host cells and parked threads' handles by pointer, pthread keys and ids"),
    // rumpuser-testkit (test code throughout)
    ("rumpuser-testkit/src/lib.rs", "dl", "test code: dlopen/dlsym of a library under test"),
    ("rumpuser-testkit/src/lib.rs", "kernels", "test code: model kernels' upcalls (unsafe extern \"C\"), lwps by pointer"),
    ("rumpuser-testkit/src/sp/mod.rs", "kernel", "test code: the syscall proxy model kernel's upcalls, lwps and syscall arguments by pointer"),
    ("rumpuser-testkit/src/sp/mod.rs", "onecpu", "test code: the one-CPU model kernel's upcalls (unsafe extern \"C\"), lwps and syscall arguments by pointer"),
    ("rumpuser-testkit/src/sp/mod.rs", "model", "test code: the model kernels' lwp records, handed out and freed by pointer"),
    // rumpuser-pvh
    ("rumpuser-pvh/src/lib.rs", "arch", "the machine layer: PVH trampoline and page tables (global_asm!), CR/MSR/port I/O, GDT/IDT/TSS and entry stubs, LAPIC/8259/8254 registers, the identity map's page tables"),
    ("rumpuser-pvh/src/lib.rs", "app", "calls the C constructors (.init_array) and the application's C main; #[no_mangle] rumpuser_pvh_errno for C programs"),
    ("rumpuser-pvh/src/lib.rs", "bootinfo", "reads the loader's hvm_start_info structures by physical address"),
    ("rumpuser-pvh/src/lib.rs", "heap", "the allocator: unsafe impl GlobalAlloc, hands RAM regions to linked_list_allocator, unsafe fn free"),
    ("rumpuser-pvh/src/lib.rs", "host", "Host's unsafe methods (free, unmap, iovread, iovwrite), forwarded to the heap and the machine's disks"),
    ("rumpuser-pvh/src/lib.rs", "random", "RDRAND/RDSEED by inline asm"),
    ("rumpuser-pvh/src/lib.rs", "serial", "the 16550 UART's I/O ports"),
    ("rumpuser-pvh/src/lib.rs", "stack", "green stacks: pointer arithmetic into the block, unsafe fn free (the core's free_stack)"),
    ("rumpuser-pvh/src/lib.rs", "virtif", "if_virt's C hypercalls (#[no_mangle]): the kernel's iovecs and softc pointers, the weak deliverpkt upcall"),
    ("rumpuser-pvh/src/sp/mod.rs", "lock", "GMutex/GCond: Send/Sync and UnsafeCell access guarded by the green lock"),
    ("rumpuser-pvh/src/lib.rs", "guest_tests", "test code: the in-guest kit drives the platform through raw C function pointers, as the kernel does"),
    // rumpuser-baremetal
    ("rumpuser-baremetal/src/lib.rs", "blk", "virtio-blk request descriptors over DMA buffers the device writes"),
    ("rumpuser-baremetal/src/lib.rs", "disk", "rumpuser_bio's raw kernel buffers and biodone across the interrupt, iovecs, the Disks unsafe method"),
    ("rumpuser-baremetal/src/lib.rs", "dma", "DMA memory: physical windows mapped into page tables, raw buffers for devices"),
    ("rumpuser-baremetal/src/lib.rs", "irq", "the kernel's interrupt handlers as C function pointers with their arguments"),
    ("rumpuser-baremetal/src/lib.rs", "net", "virtio-net through virtio-drivers' unsafe HAL: DMA buffers shared with the device"),
    ("rumpuser-baremetal/src/lib.rs", "pci", "PCI configuration space by port I/O, virtio-drivers' unsafe Hal impl (DMA, MMIO)"),
    ("rumpuser-baremetal/src/lib.rs", "pcihyp", "the rumpcomp_pci_* C hypercalls (#[no_mangle]): config space, MMIO maps, DMA memory, C interrupt handlers"),
    ("rumpuser-baremetal/src/lib.rs", "platform", "the green core's Platform: unsafe free_stack, forwarded to rumpuser_pvh::stack"),
    ("rumpuser-baremetal/src/lib.rs", "rtc", "the CMOS RTC's I/O ports"),
    ("rumpuser-baremetal/src/lib.rs", "start", "the #[no_mangle] PVH entry (rumpuser_pvh_kmain), the start info by address, heap regions, the scheduler's unsafe init"),
    ("rumpuser-baremetal/src/bin/rumpuser-baremetal-test/main.rs", "ffi", "test code: the image's C entry points (main, deliverpkt) and a raw call through the kit's C API"),
    ("rumpuser-baremetal/src/bin/rumpuser-baremetal-test/main.rs", "pci", "test code: the rumpcomp_pci_* hypercalls called as the kernel does, DMA memory and MMIO of QEMU's edu device"),
    // rumpuser-xen
    ("rumpuser-xen/src/lib.rs", "blkfront", "the blkif ring and granted pages shared with the back end, the kernel's raw bio buffers"),
    ("rumpuser-xen/src/lib.rs", "console", "the PV console ring shared with xenconsoled, port 0xE9, console_io and sched_op hypercalls"),
    ("rumpuser-xen/src/lib.rs", "events", "shared_info's pending and mask bits written by Xen, event-channel hypercalls"),
    ("rumpuser-xen/src/lib.rs", "gnttab", "the grant table frames shared with Xen"),
    ("rumpuser-xen/src/lib.rs", "hypercall", "the hypercall page (MSR write, inline asm calls into it) and the hypercalls' pointer arguments"),
    ("rumpuser-xen/src/lib.rs", "netfront", "the netif rings and granted buffers shared with netback"),
    ("rumpuser-xen/src/lib.rs", "platform", "the green core's Platform: unsafe free_stack, forwarded to rumpuser_pvh::stack"),
    ("rumpuser-xen/src/lib.rs", "start", "the #[no_mangle] PVH entry (rumpuser_pvh_kmain), XENMEM_memory_map's buffer, heap regions, the scheduler's unsafe init"),
    ("rumpuser-xen/src/lib.rs", "time", "vcpu_time_info and shared_info's wall clock, written by Xen (version-checked reads)"),
    ("rumpuser-xen/src/lib.rs", "xenstore", "the xenstore ring shared with xenstored"),
    ("rumpuser-xen/src/bin/rumpuser-xen-test.rs", "ffi", "test code: the image's C entry points (main, deliverpkt)"),
];

/// A problem with where `unsafe_code` is denied or allowed, for every file
/// of `files` (`(path relative to the repository, text)`) in a crate of
/// `crates`.
fn unsafe_confinement(
    files: &[(String, String)],
    crates: &[&str],
    allowed: &[(&str, &str, &str)],
) -> Vec<String> {
    let mut bad = Vec::new();
    let mut used = vec![false; allowed.len()];
    // "" is the package at the repository's top.
    let src_of = |c: &str| match c {
        "" => "src/".to_string(),
        c => format!("{c}/src/"),
    };
    let is_root = |rel: &str, c: &str| {
        let Some(rest) = rel.strip_prefix(&src_of(c)) else {
            return false;
        };
        rest == "lib.rs"
            || rest == "main.rs"
            || rest
                .strip_prefix("bin/")
                .is_some_and(|b| !b.contains('/') || b.split('/').nth(1) == Some("main.rs"))
    };
    for c in crates {
        let src = src_of(c);
        let roots: Vec<&(String, String)> =
            files.iter().filter(|(rel, _)| is_root(rel, c)).collect();
        if roots.is_empty() {
            bad.push(format!("{c}: no crate root (src/lib.rs) found"));
        }
        for (rel, text) in files.iter().filter(|(rel, _)| rel.starts_with(&src)) {
            let root = is_root(rel, c);
            let mut denied = false;
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                let t = l.trim();
                if t.starts_with("//") || !t.contains("unsafe_code") {
                    continue;
                }
                let at = format!("{rel}:{}", i + 1);
                if root && t == "#![deny(unsafe_code)]" {
                    denied = true;
                    continue;
                }
                if t != "#[allow(unsafe_code)]" {
                    bad.push(format!(
                        "{at}: `{t}`: unsafe_code is only denied at a crate root \
                         (`#![deny(unsafe_code)]`) or allowed on a listed module \
                         (`#[allow(unsafe_code)]` on its `mod` line)"
                    ));
                    continue;
                }
                let item = lines[i + 1..]
                    .iter()
                    .map(|l| l.trim())
                    .find(|l| !l.is_empty() && !l.starts_with("#[") && !l.starts_with("//"))
                    .unwrap_or("");
                let name = item
                    .strip_prefix("pub ")
                    .or_else(|| {
                        item.strip_prefix("pub(")
                            .and_then(|r| r.split_once(") ").map(|(_, r)| r))
                    })
                    .unwrap_or(item)
                    .strip_prefix("mod ")
                    .map(|r| {
                        let n = r.find(|c: char| !c.is_alphanumeric() && c != '_');
                        &r[..n.unwrap_or(r.len())]
                    });
                match name {
                    Some(name) => {
                        match allowed.iter().position(|&(f, m, _)| f == rel && m == name) {
                            Some(k) => used[k] = true,
                            None => bad.push(format!(
                                "{at}: module `{name}` allows unsafe code but is not in \
                                 UNSAFE_ALLOWED (tests/tidy.rs): add it with its reason, \
                                 or keep the unsafe code in a listed module"
                            )),
                        }
                    }
                    None => bad.push(format!(
                        "{at}: `#[allow(unsafe_code)]` on `{item}`: only a listed module \
                         may allow unsafe code"
                    )),
                }
            }
            if root && !denied {
                bad.push(format!("{rel}: crate root without `#![deny(unsafe_code)]`"));
            }
        }
    }
    for (k, &(f, m, _)) in allowed.iter().enumerate() {
        if !used[k] {
            bad.push(format!(
                "UNSAFE_ALLOWED names `{m}` in {f}, which has no `#[allow(unsafe_code)]` on it"
            ));
        }
    }
    bad
}

#[test]
fn unsafe_code_is_denied_at_crate_roots_and_allowed_only_in_listed_modules() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let files: Vec<(String, String)> = all()
        .into_iter()
        .map(|f| {
            let rel = f
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&f).unwrap())
        })
        .collect();
    let bad = unsafe_confinement(&files, UNSAFE_DENIED, UNSAFE_ALLOWED);
    assert!(bad.is_empty(), "unsafe code confinement: {bad:#?}");
    for (f, m, why) in UNSAFE_ALLOWED {
        assert!(
            !why.trim().is_empty(),
            "{f}: `{m}` is allowed without a reason"
        );
    }
}

/// The check above fails where it should: a root without the deny, an
/// unlisted module, an allowance on something other than a module, a
/// stale entry.
#[test]
fn unsafe_confinement_catches_what_it_should() {
    let f = |p: &str, t: &str| (p.to_string(), t.to_string());
    let ok = [
        f("k/src/lib.rs", "//! K.\n#![deny(unsafe_code)]\n#[allow(unsafe_code)]\n#[cfg(x)]\npub mod sys;\nmod safe;\n"),
        f("k/src/sys.rs", "//! S.\n#[allow(unsafe_code)]\npub(crate) mod inner {}\n"),
    ];
    let allowed = [("k/src/lib.rs", "sys", "r"), ("k/src/sys.rs", "inner", "r")];
    assert_eq!(
        unsafe_confinement(&ok, &["k"], &allowed),
        Vec::<String>::new()
    );

    let mut no_deny = ok.clone();
    no_deny[0].1 = no_deny[0].1.replace("#![deny(unsafe_code)]\n", "");
    let bad = unsafe_confinement(&no_deny, &["k"], &allowed);
    assert!(
        bad.iter()
            .any(|b| b.starts_with("k/src/lib.rs: crate root without")),
        "{bad:?}"
    );

    let mut unlisted = ok.clone();
    unlisted[0]
        .1
        .push_str("#[allow(unsafe_code)]\nmod other;\n");
    let bad = unsafe_confinement(&unlisted, &["k"], &allowed);
    assert!(
        bad.iter()
            .any(|b| b.starts_with("k/src/lib.rs:7: module `other`")),
        "{bad:?}"
    );

    let mut on_fn = ok.clone();
    on_fn[1].1.push_str("#[allow(unsafe_code)]\nfn f() {}\n");
    let bad = unsafe_confinement(&on_fn, &["k"], &allowed);
    assert!(
        bad.iter()
            .any(|b| b.starts_with("k/src/sys.rs:4: `#[allow(unsafe_code)]` on `fn f() {}`")),
        "{bad:?}"
    );

    let mut inner = ok.clone();
    inner[1].1.push_str("#![allow(unsafe_code)]\n");
    let bad = unsafe_confinement(&inner, &["k"], &allowed);
    assert!(
        bad.iter()
            .any(|b| b.starts_with("k/src/sys.rs:4: `#![allow(unsafe_code)]`")),
        "{bad:?}"
    );

    let bad = unsafe_confinement(
        &ok,
        &["k"],
        &[allowed[0], allowed[1], ("k/src/lib.rs", "gone", "r")],
    );
    assert!(
        bad.iter().any(|b| b.contains("`gone` in k/src/lib.rs")),
        "{bad:?}"
    );
}
