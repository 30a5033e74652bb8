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

/// Names of a file's ELF sections (every member's, for an archive).
fn sections(file: &std::path::Path) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["-S", "-W"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "readelf -S {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix('[')?;
            let (_, rest) = rest.split_once(']')?;
            rest.split_whitespace().next().map(str::to_string)
        })
        .collect()
}

fn has_debug_info(file: &std::path::Path) -> bool {
    sections(file).iter().any(|s| s == ".debug_info")
}

fn build_id(file: &std::path::Path) -> String {
    let out = Command::new("readelf")
        .arg("-n")
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_string))
        .unwrap_or_else(|| panic!("{} has no build-id", file.display()))
}

/// CRC-32 (IEEE, reflected), the checksum a `.gnu_debuglink` carries.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The `.gnu_debuglink` section of a file: (file name, CRC).
fn debuglink(file: &std::path::Path) -> (String, u32) {
    let dump = common::root().join("target/suite-c").join(format!(
        "{}.debuglink",
        file.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
    let st = Command::new("objcopy")
        .arg(format!("--dump-section=.gnu_debuglink={}", dump.display()))
        .arg(file)
        .arg(dump.with_extension("scratch"))
        .status()
        .unwrap();
    assert!(st.success(), "{} has no .gnu_debuglink", file.display());
    let raw = std::fs::read(&dump).unwrap();
    let nul = raw.iter().position(|&b| b == 0).unwrap();
    let name = String::from_utf8(raw[..nul].to_vec()).unwrap();
    // The name, NUL-padded to a multiple of 4, then the CRC (little endian here).
    let at = (nul + 4) & !3;
    let crc = u32::from_le_bytes(raw[at..at + 4].try_into().unwrap());
    (name, crc)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

#[test]
fn crc32_is_the_ieee_one() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

/// What `dist` ships carries no debug info; `lib/debug/` has it: the
/// complete archives, and every shared library's by build-id, which the
/// library's `.gnu_debuglink` also reaches (name and CRC).
#[test]
fn shipped_libraries_are_stripped_and_their_debug_info_is_apart() {
    let lib = dist().join("lib");
    let debug = lib.join("debug");
    for f in flavours() {
        let compat = dist().join("compat").join(&f);
        let archives = [
            lib.join(format!("librumpuser_{f}.a")),
            compat.join("librumpuser.a"),
        ];
        let shared = [
            lib.join(format!("librumpuser_{f}.so")),
            compat.join("librumpuser.so.0"),
        ];
        for a in &archives {
            assert!(!has_debug_info(a), "{} carries debug info", a.display());
            assert!(sections(a)
                .iter()
                .any(|s| s == ".text" || s.starts_with(".text.")));
        }
        let full = debug.join(format!("librumpuser_{f}.a"));
        assert!(
            has_debug_info(&full),
            "{} has no debug info",
            full.display()
        );
        for so in &shared {
            assert!(!has_debug_info(so), "{} carries debug info", so.display());
            let id = build_id(so);
            let by_id = debug
                .join(".build-id")
                .join(&id[..2])
                .join(format!("{}.debug", &id[2..]));
            assert!(by_id.is_file(), "{}: no {}", so.display(), by_id.display());
            let s = sections(&by_id);
            for want in [".debug_info", ".debug_line", ".symtab"] {
                assert!(
                    s.iter().any(|x| x == want),
                    "{}: no {want}",
                    by_id.display()
                );
            }
            assert_eq!(build_id(&by_id), id, "{}", by_id.display());
            let (name, crc) = debuglink(so);
            let so_name = so.file_name().unwrap().to_string_lossy();
            assert_eq!(name, format!("{so_name}.debug"));
            let linked = so.parent().unwrap().join(".debug").join(&name);
            let bytes =
                std::fs::read(&linked).unwrap_or_else(|e| panic!("{}: {e}", linked.display()));
            assert_eq!(crc32(&bytes), crc, "{}: CRC mismatch", linked.display());
            assert_eq!(bytes, std::fs::read(&by_id).unwrap());
        }
        // The static archive keeps its symbols (backtraces name functions)
        // and its rumpuser_* property (checked above) after stripping.
        let nm = Command::new("nm").arg(&archives[0]).output().unwrap();
        let nm = String::from_utf8_lossy(&nm.stdout);
        assert!(
            nm.lines().filter(|l| l.contains(" t ")).count() > 100,
            "{f}"
        );
    }
}

/// gdb finds source lines of the stripped library, through the debuglink
/// and, for a copy elsewhere, through the build-id directory.
#[test]
fn gdb_finds_the_separate_debug_info() {
    if !on_path("gdb") {
        eprintln!("gdb_finds_the_separate_debug_info: no gdb; the debuglink and build-id checks of shipped_libraries_are_stripped_and_their_debug_info_is_apart stand");
        return;
    }
    let debug = dist().join("lib/debug");
    for f in flavours() {
        let so = dist().join(format!("lib/librumpuser_{f}.so"));
        let copy = common::root()
            .join("target/suite-c")
            .join(format!("gdb-copy-{f}.so"));
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(&so, &copy).unwrap();
        for (file, init) in [
            (&so, String::from("set debug-file-directory /nonexistent")),
            (
                &copy,
                format!("set debug-file-directory {}", debug.display()),
            ),
        ] {
            let out = Command::new("gdb")
                .args(["-nx", "-batch", "-iex", &init])
                .args(["-ex", "info line rumpuser_mutex_enter"])
                .arg(file)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            // The entry's first line: the export macro's, or the body's
            // in ffi.rs where that is inlined first.
            assert!(
                text.contains("Line ") && text.contains("rumpuser-core/src/"),
                "{f}: gdb found no line for {}: {text}{}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // A static link against the complete archive has the lines.
        let full = debug.join(format!("librumpuser_{f}.a"));
        let full = full.to_str().unwrap();
        let mut args = vec![full];
        args.extend(LIBS_PRIVATE);
        let exe = cc(&format!("static_debug_{f}"), PROG, &args);
        assert!(has_debug_info(&exe));
        let out = Command::new("gdb")
            .args(["-nx", "-batch", "-ex", "info line rumpuser_mutex_enter"])
            .arg(&exe)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Line ") && text.contains("rumpuser-core/src/"),
            "{f}: static link: {text}"
        );
        // And without either, it finds none (the library itself has none).
        let out = Command::new("gdb")
            .args([
                "-nx",
                "-batch",
                "-iex",
                "set debug-file-directory /nonexistent",
            ])
            .args(["-ex", "info line rumpuser_mutex_enter"])
            .arg(&copy)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("No line number information"), "{f}: {text}");
    }
}
