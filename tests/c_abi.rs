//! The built libraries seen from C: the installed header compiles and
//! matches the Rust ABI definitions, every v17 symbol is defined and
//! nothing else is global, and C programs link statically (also with
//! `--whole-archive`), dynamically, through pkg-config and through the
//! drop-in `librumpuser.so.0`.

mod common;

use common::*;
use rumpuser_core::abi::*;
use rumpuser_core::export::EXPORTED_SYMBOLS;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

const LIBS_PRIVATE: &[&str] = &["-lpthread", "-ldl", "-lm", "-lgcc_s"];

#[test]
fn header_matches_the_rust_abi() {
    // Static assertions generated from the Rust constants and layouts.
    let mut src = String::from("#include <rump/rumpuser_component.h>\n#include <stddef.h>\n");
    let consts: &[(&str, i64)] = &[
        ("RUMPUSER_VERSION", RUMPUSER_VERSION as i64),
        ("RUMPUSER_OPEN_RDONLY", RUMPUSER_OPEN_RDONLY as i64),
        ("RUMPUSER_OPEN_WRONLY", RUMPUSER_OPEN_WRONLY as i64),
        ("RUMPUSER_OPEN_RDWR", RUMPUSER_OPEN_RDWR as i64),
        ("RUMPUSER_OPEN_ACCMODE", RUMPUSER_OPEN_ACCMODE as i64),
        ("RUMPUSER_OPEN_CREATE", RUMPUSER_OPEN_CREATE as i64),
        ("RUMPUSER_OPEN_EXCL", RUMPUSER_OPEN_EXCL as i64),
        ("RUMPUSER_OPEN_BIO", RUMPUSER_OPEN_BIO as i64),
        ("RUMPUSER_FT_OTHER", RUMPUSER_FT_OTHER as i64),
        ("RUMPUSER_FT_DIR", RUMPUSER_FT_DIR as i64),
        ("RUMPUSER_FT_REG", RUMPUSER_FT_REG as i64),
        ("RUMPUSER_FT_BLK", RUMPUSER_FT_BLK as i64),
        ("RUMPUSER_FT_CHR", RUMPUSER_FT_CHR as i64),
        ("RUMPUSER_BIO_READ", RUMPUSER_BIO_READ as i64),
        ("RUMPUSER_BIO_WRITE", RUMPUSER_BIO_WRITE as i64),
        ("RUMPUSER_BIO_SYNC", RUMPUSER_BIO_SYNC as i64),
        ("RUMPUSER_IOV_NOSEEK", RUMPUSER_IOV_NOSEEK),
        ("RUMPUSER_SYNCFD_READ", RUMPUSER_SYNCFD_READ as i64),
        ("RUMPUSER_SYNCFD_WRITE", RUMPUSER_SYNCFD_WRITE as i64),
        ("RUMPUSER_SYNCFD_BOTH", RUMPUSER_SYNCFD_BOTH as i64),
        ("RUMPUSER_SYNCFD_BARRIER", RUMPUSER_SYNCFD_BARRIER as i64),
        ("RUMPUSER_SYNCFD_SYNC", RUMPUSER_SYNCFD_SYNC as i64),
        ("RUMPUSER_CLOCK_RELWALL", RUMPUSER_CLOCK_RELWALL as i64),
        ("RUMPUSER_CLOCK_ABSMONO", RUMPUSER_CLOCK_ABSMONO as i64),
        ("RUMPUSER_PID_SELF", RUMPUSER_PID_SELF),
        ("RUMPUSER_PANIC", RUMPUSER_PANIC as i64),
        ("RUMPUSER_RANDOM_HARD", RUMPUSER_RANDOM_HARD as i64),
        ("RUMPUSER_RANDOM_NOWAIT", RUMPUSER_RANDOM_NOWAIT as i64),
        ("RUMPUSER_LWP_CREATE", RUMPUSER_LWP_CREATE as i64),
        ("RUMPUSER_LWP_DESTROY", RUMPUSER_LWP_DESTROY as i64),
        ("RUMPUSER_LWP_SET", RUMPUSER_LWP_SET as i64),
        ("RUMPUSER_LWP_CLEAR", RUMPUSER_LWP_CLEAR as i64),
        ("RUMPUSER_MTX_SPIN", RUMPUSER_MTX_SPIN as i64),
        ("RUMPUSER_MTX_KMUTEX", RUMPUSER_MTX_KMUTEX as i64),
        ("RUMPUSER_RW_READER", RUMPUSER_RW_READER as i64),
        ("RUMPUSER_RW_WRITER", RUMPUSER_RW_WRITER as i64),
    ];
    for (n, v) in consts {
        src += &format!("_Static_assert({n} == {v}LL, \"{n}\");\n");
    }
    src += &format!(
        "_Static_assert(sizeof(struct rumpuser_hyperup) == {}, \"hyperup size\");\n",
        std::mem::size_of::<Hyperup>()
    );
    for (f, off) in [
        ("hyp_schedule", std::mem::offset_of!(Hyperup, hyp_schedule)),
        (
            "hyp_backend_unschedule",
            std::mem::offset_of!(Hyperup, hyp_backend_unschedule),
        ),
        (
            "hyp_lwproc_rfork",
            std::mem::offset_of!(Hyperup, hyp_lwproc_rfork),
        ),
        (
            "hyp_lwproc_curlwp",
            std::mem::offset_of!(Hyperup, hyp_lwproc_curlwp),
        ),
        ("hyp_syscall", std::mem::offset_of!(Hyperup, hyp_syscall)),
        ("hyp_getpid", std::mem::offset_of!(Hyperup, hyp_getpid)),
        ("hyp__extra", std::mem::offset_of!(Hyperup, hyp_extra)),
    ] {
        src +=
            &format!("_Static_assert(offsetof(struct rumpuser_hyperup, {f}) == {off}, \"{f}\");\n");
    }
    src += &format!(
        "_Static_assert(sizeof(struct rumpuser_iovec) == {}, \"iovec\");\n",
        std::mem::size_of::<IoVec>()
    );
    src += "_Static_assert(sizeof(RUMPUSER_PARAM_NCPU) == 15, \"ncpu name\");\n";
    src += "int main(void) { return 0; }\n";
    let exe = cc("header_abi", &src, &["-Wpedantic"]);
    run(&exe, &[]);
}

/// Names declared in the installed headers.
fn header_symbols() -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for h in ["rumpuser.h", "rumpuser_component.h"] {
        let text = std::fs::read_to_string(dist().join("include/rump").join(h)).unwrap();
        for line in text.lines() {
            if line.trim_start().starts_with('#') || line.trim_start().starts_with("typedef") {
                continue;
            }
            if let Some(i) = line.find("rumpuser_") {
                let name: String = line[i..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if line[i + name.len()..].starts_with('(') {
                    set.insert(name);
                }
            }
        }
    }
    set
}

#[test]
fn header_declares_exactly_the_exported_symbols() {
    let header = header_symbols();
    let exported: BTreeSet<String> = EXPORTED_SYMBOLS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        header, exported,
        "header prototypes and export_rumpuser! differ"
    );
    assert_eq!(exported.len(), 67);
}

#[test]
fn static_libraries_define_every_symbol_and_export_nothing_else() {
    for f in flavours() {
        let a = dist().join(format!("lib/librumpuser_{f}.a"));
        let out = Command::new("nm")
            .args(["-g", "--defined-only"])
            .arg(&a)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let mut defined = BTreeSet::new();
        for line in text.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.len() == 3 {
                assert!(
                    parts[2].starts_with("rumpuser_"),
                    "{f}: global symbol outside the rumpuser_ prefix: {line}"
                );
                assert_eq!(parts[1], "T", "{f}: {} is not a text symbol", parts[2]);
                defined.insert(parts[2].to_string());
            }
        }
        for s in EXPORTED_SYMBOLS {
            assert!(defined.contains(*s), "{f}: {s} is not defined");
        }
        // The dprintf back end is the only extra, and it keeps the prefix.
        assert_eq!(
            defined.len(),
            EXPORTED_SYMBOLS.len() + 1,
            "{f}: {defined:?}"
        );
    }
}

#[test]
fn shared_libraries_export_every_symbol() {
    for f in flavours() {
        let so = dist().join(format!("lib/librumpuser_{f}.so"));
        let out = Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(&so)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for s in EXPORTED_SYMBOLS {
            assert!(
                text.lines().any(|l| l.ends_with(&format!(" {s}"))),
                "{f}: {s} not exported by the .so"
            );
        }
    }
}

const PROG: &str = r#"
#include <rump/rumpuser.h>
#include <stdio.h>
#include <string.h>
static struct rumpuser_hyperup hyp;
int main(void) {
    char buf[64];
    if (rumpuser_init(RUMPUSER_VERSION, &hyp) != 0) return 1;
    if (rumpuser_getparam(RUMPUSER_PARAM_NCPU, buf, sizeof(buf)) != 0) return 2;
    char other[64];
    if (rumpuser_getparam("_RUMPUSER_BOGUS", other, sizeof(other)) != 22) return 3;
    void *p;
    if (rumpuser_malloc(100, 64, &p) != 0 || ((unsigned long)p & 63) != 0) return 4;
    rumpuser_free(p, 100);
    if (rumpuser_malloc(100, 3, &p) != 22) return 5;
    struct rumpuser_mtx *m;
    rumpuser_mutex_init(&m, RUMPUSER_MTX_KMUTEX);
    rumpuser_mutex_enter(m);
    if (rumpuser_mutex_tryenter(m) != 16) return 6;
    rumpuser_mutex_exit(m);
    rumpuser_mutex_destroy(m);
    printf("ncpu=%s ok\n", buf);
    return 0;
}
"#;

#[test]
fn c_program_links_statically_with_and_without_whole_archive() {
    for f in flavours() {
        let a = dist().join(format!("lib/librumpuser_{f}.a"));
        let a = a.to_str().unwrap();
        let mut args = vec![a];
        args.extend(LIBS_PRIVATE);
        let exe = cc(&format!("static_{f}"), PROG, &args);
        // Green threads have exactly one virtual CPU whatever RUMP_NCPU says.
        let want = if f == "green" {
            "ncpu=1 ok"
        } else {
            "ncpu=3 ok"
        };
        assert!(run(&exe, &[("RUMP_NCPU", "3")]).contains(want), "{f}");
        let mut args = vec!["-Wl,--whole-archive", a, "-Wl,--no-whole-archive"];
        args.extend(LIBS_PRIVATE);
        let exe = cc(&format!("whole_{f}"), PROG, &args);
        assert!(run(&exe, &[]).contains("ok"));
    }
}

/// `cc` linking `prog` against the distribution's `librumpuser_<flavour>.so`
/// (found at run time through an rpath).
fn cc_dynamic(name: &str, prog: &str, flavour: &str) -> PathBuf {
    let lib = dist().join("lib");
    let l = format!("-L{}", lib.display());
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    let lname = format!("-lrumpuser_{flavour}");
    cc(name, prog, &[&l, &rpath, &lname])
}

#[test]
fn c_program_links_dynamically_and_through_pkg_config_flags() {
    for f in flavours() {
        let exe = cc_dynamic(&format!("dynamic_{f}"), PROG, &f);
        assert!(run(&exe, &[]).contains("ok"));
        // The .pc file's Libs line, expanded by hand (pkg-config may be absent).
        let lib = dist().join("lib");
        let pc = std::fs::read_to_string(lib.join(format!("pkgconfig/rumpuser-{f}.pc"))).unwrap();
        assert!(
            pc.contains(&format!("Libs: -L${{libdir}} -lrumpuser_{f}")),
            "{pc}"
        );
        assert!(pc.contains("Cflags: -I${includedir}"), "{pc}");
    }
}

#[test]
fn drop_in_librumpuser_so_0_replaces_netbsds() {
    for f in flavours() {
        // Link against a library *named* librumpuser (as a program built
        // against NetBSD's would be), then run with our compat directory.
        let compat = dist().join("compat").join(&f);
        assert!(compat.join("librumpuser.so.0").is_file());
        let l = format!("-L{}", compat.display());
        let exe = cc(&format!("compat_{f}"), PROG, &[&l, "-lrumpuser"]);
        let needed = Command::new("readelf")
            .args(["-d"])
            .arg(&exe)
            .output()
            .unwrap();
        let needed = String::from_utf8_lossy(&needed.stdout);
        assert!(needed.contains("librumpuser"), "{needed}");
        assert!(run(&exe, &[("LD_LIBRARY_PATH", compat.to_str().unwrap())]).contains("ok"));
    }
}

const PANIC_PROG: &str = r#"
#include <rump/rumpuser.h>
static struct rumpuser_hyperup hyp;
int main(void) {
    if (rumpuser_init(RUMPUSER_VERSION, &hyp) != 0) return 1;
    for (const char *p = "panic: ext2fs_alloccg: map corrupted\n"; *p; p++)
        rumpuser_putchar(*p);
    rumpuser_exit(RUMPUSER_PANIC);
}
"#;

/// A kernel panic prints its message with `rumpuser_putchar` (C stdio's
/// stdout) and then calls `rumpuser_exit(RUMPUSER_PANIC)`, which aborts:
/// with stdout a pipe (fully buffered) the message must still come out.
#[test]
fn panic_message_reaches_a_piped_stdout() {
    for f in flavours() {
        let exe = cc_dynamic(&format!("panic_{f}"), PANIC_PROG, &f);
        let out = command(&exe).output().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "{f}: {}",
            out.status
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("panic: ext2fs_alloccg: map corrupted"),
            "{f}: the panic message was lost: {stdout:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
