//! `rumpuser_dl_bootstrap`: hand a dynamically linked rump kernel its
//! symbol table, link-set modules and components (contract 3.16).
//!
//! When the rump kernel and its components are shared objects
//! (`librump*.so`, possibly `dlopen`ed by the application before
//! `rump_init`), nothing registers their link sets for them: the kernel asks
//! the hypervisor to find them. This module:
//!
//! 1. lists the loaded objects with `dl_iterate_phdr` and processes them
//!    from the last loaded to the first (the reference's order, the most
//!    probable dependency order);
//! 2. for the main program and every object whose path contains `librump`,
//!    parses its dynamic section (`DT_SYMTAB`, `DT_STRTAB`, `DT_STRSZ`, and
//!    the symbol count from `DT_HASH`'s `nchain` or by walking every
//!    `DT_GNU_HASH` bucket and chain to the highest symbol index), and copies
//!    every defined symbol (section not `SHN_UNDEF`, value non-zero) named
//!    `rump*`, `RUMP*` or `__*` into one combined native-class ELF symbol
//!    table, rebasing `st_value` by the load base and rewriting `st_name`
//!    into one combined string table;
//! 3. calls `symload` once with the two `malloc`ed tables if any symbol was
//!    found (ownership passes to the kernel; they are never freed);
//! 4. for every object (same order) looks up `__start_/__stop_link_set_modules`
//!    and `__start_/__stop_link_set_rump_components` in *that object's own*
//!    dynamic symbol table and calls `modinit(start, count)` once per object
//!    and `compload(*p)` for each component pointer.
//!
//! A statically linked program (only the main program, plus possibly the
//! vDSO, is loaded) gets nothing: the kernel registers its own link sets, as
//! the reference's "single object in the link map" early return does.
//!
//! Differences from the reference (`rumpuser_dl.c`), all deliberate:
//! * It walks `dl_iterate_phdr` instead of `dlinfo(RTLD_DI_LINKMAP)` +
//!   `l_ld`, and finds the symbol count robustly: the reference's GNU-hash
//!   walk only looks at the last non-empty bucket and fails on modern ELF
//!   with "could not find strtab, symtab or their sizes".
//! * Dynamic-section pointers are accepted both absolute (glibc relocates
//!   them) and base-relative (musl, NetBSD, and glibc on targets with a
//!   read-only `.dynamic`): a pointer below the load base gets the base
//!   added, instead of the reference's compile-time `#ifdef __linux__`.
//! * The combined string table starts with the customary empty string at
//!   offset 0 (the reference forgets it, so its first symbol has no name
//!   distinct from "no name").
//! * `SHN_ABS` symbols are not rebased (the reference rebases everything).
//! * An object whose tables cannot be read is skipped (with a warning for
//!   `librump` objects) rather than aborting the whole symbol table.
//! * Link-set symbols are resolved in the object's own symbol table; the
//!   reference's `dlsym(handle, ..)` searches the handle's whole dependency
//!   scope and so can hand one object's link set over again for each object
//!   depending on it.
//! * `symload` is not called when no symbol was found.
//!
//! Any failure just returns (the hypercall is `void`), logging to stderr
//! with a raw `write(2, ..)`.
//!
//! The object list is captured inside the `dl_iterate_phdr` callback and
//! processed after it returns, so the callbacks (which may take locks or
//! even `dlopen`) never run under the dynamic linker's lock. This assumes no
//! other thread unloads objects meanwhile, which holds at boot, the only
//! time the kernel calls this.
//!
//! This module is the policy; reading the objects in place and calling
//! the kernel's callbacks is `sys::dl`.

use rumpuser_core::abi::{CompLoadFn, ModinitFn, SymloadFn};

/// Walks the loaded objects and feeds the kernel's callbacks (contract 3.16).
///
/// Does nothing for statically linked programs and on hosts without
/// `dl_iterate_phdr` support in this crate.
pub fn bootstrap(modinit: ModinitFn, symload: SymloadFn, compload: CompLoadFn) {
    #[cfg(target_os = "linux")]
    imp::bootstrap(modinit, symload, compload);
    #[cfg(not(target_os = "linux"))]
    let _ = (modinit, symload, compload);
}

/// Writes a diagnostic line to stderr without allocating or locking.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn warn(parts: &[&[u8]]) {
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            match crate::sys::with_fd(2, |fd| rustix::io::write(fd, rest)) {
                Ok(n) if n > 0 => rest = &rest[n..],
                _ => return,
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::warn;
    use crate::sys::dl::{
        give_components, give_modules, give_symbols, loaded_objects, Sym, SymView, SHN_UNDEF,
    };
    use rumpuser_core::abi::{CompLoadFn, ModinitFn, SymloadFn};

    /// The combined symbol and string tables under construction.
    pub(super) struct Tables {
        pub syms: Vec<Sym>,
        pub strs: Vec<u8>,
    }

    impl Tables {
        pub fn new() -> Tables {
            // The customary empty string at offset 0.
            Tables {
                syms: Vec::new(),
                strs: vec![0],
            }
        }

        /// Appends every interesting defined symbol of one object.
        pub fn add(&mut self, view: &SymView) {
            for sym in view.syms() {
                if sym.st_shndx == SHN_UNDEF || sym.st_value == 0 {
                    continue;
                }
                let Some(name) = view.name(sym.st_name) else {
                    continue;
                };
                if !(name.starts_with(b"rump")
                    || name.starts_with(b"RUMP")
                    || name.starts_with(b"__"))
                {
                    continue;
                }
                let Ok(off) = u32::try_from(self.strs.len()) else {
                    return;
                };
                let mut out = *sym;
                out.st_name = off;
                out.st_value = view.address(sym) as _;
                self.syms.push(out);
                self.strs.extend_from_slice(name);
                self.strs.push(0);
            }
        }
    }

    pub(super) fn bootstrap(modinit: ModinitFn, symload: SymloadFn, compload: CompLoadFn) {
        let objs = loaded_objects();
        // Static program: only the main object (and the vDSO).
        if objs.iter().filter(|o| !o.is_vdso).count() <= 1 {
            return;
        }

        // Last loaded to first; index 0 is the main program.
        let views: Vec<(usize, Option<SymView>)> = objs
            .iter()
            .enumerate()
            .rev()
            .map(|(i, o)| (i, o.symbols()))
            .collect();

        let mut tables = Tables::new();
        for (i, view) in &views {
            let obj = &objs[*i];
            let is_rump = obj.name.windows(7).any(|w| w == b"librump");
            if *i != 0 && !is_rump {
                continue;
            }
            match view {
                Some(v) => tables.add(v),
                None if is_rump => warn(&[
                    b"rumpuser: dl_bootstrap: no symbol table in ",
                    &obj.name,
                    b", skipped\n",
                ]),
                None => {}
            }
        }

        if !tables.syms.is_empty() && !give_symbols(symload, &tables.syms, &tables.strs) {
            warn(&[b"rumpuser: dl_bootstrap: out of memory for symbol table\n"]);
        }

        for view in views.iter().filter_map(|(_, v)| v.as_ref()) {
            if let Some(set) =
                view.link_set(b"__start_link_set_modules", b"__stop_link_set_modules")
            {
                if set.count() > 0 {
                    give_modules(modinit, &set);
                }
            }
            if let Some(set) = view.link_set(
                b"__start_link_set_rump_components",
                b"__stop_link_set_rump_components",
            ) {
                give_components(compload, &set);
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use crate::sys::dl::{object_report, Sym};
    use core::ffi::c_void;
    use core::ffi::{c_char, c_int};
    use core::mem::size_of;
    use std::ffi::{CStr, CString};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Record {
        symload_calls: usize,
        syms: Vec<(Vec<u8>, usize, u16)>,
        strtab_first: Option<u8>,
        strtab_last: Option<u8>,
        bad_names: usize,
        modules: Vec<(usize, usize)>,
        comps: Vec<usize>,
    }

    static RECORD: Mutex<Option<Record>> = Mutex::new(None);
    /// Serializes the tests that call `bootstrap` (they share `RECORD`).
    static SERIAL: Mutex<()> = Mutex::new(());

    fn with_record<R>(f: impl FnOnce(&mut Record) -> R) -> R {
        let mut g = RECORD.lock().unwrap_or_else(|e| e.into_inner());
        f(g.get_or_insert_with(Record::default))
    }

    unsafe extern "C" fn rec_modinit(mi: *const *const c_void, count: usize) {
        with_record(|r| r.modules.push((mi as usize, count)));
    }

    unsafe extern "C" fn rec_symload(
        symtab: *mut c_void,
        symtab_bytes: u64,
        strtab: *mut c_char,
        strtab_bytes: u64,
    ) -> c_int {
        // SAFETY: bootstrap hands over `strtab_bytes` bytes of strings.
        let strs = unsafe {
            std::slice::from_raw_parts(strtab.cast::<u8>(), strtab_bytes as usize).to_vec()
        };
        let n = symtab_bytes as usize / size_of::<Sym>();
        // SAFETY: and `n` symbols, malloc-aligned.
        let syms = unsafe { std::slice::from_raw_parts(symtab.cast::<Sym>(), n).to_vec() };
        with_record(|r| {
            r.symload_calls += 1;
            r.strtab_first = strs.first().copied();
            r.strtab_last = strs.last().copied();
            for s in &syms {
                let Some(tail) = strs.get(s.st_name as usize..) else {
                    r.bad_names += 1;
                    continue;
                };
                let Some(len) = tail.iter().position(|&b| b == 0) else {
                    r.bad_names += 1;
                    continue;
                };
                r.syms
                    .push((tail[..len].to_vec(), s.st_value as usize, s.st_shndx));
            }
        });
        // SAFETY: the tables were handed over to us and came from malloc.
        unsafe {
            libc::free(symtab);
            libc::free(strtab.cast());
        }
        0
    }

    unsafe extern "C" fn rec_compload(rc: *const c_void) {
        with_record(|r| r.comps.push(rc as usize));
    }

    fn run_bootstrap() -> Record {
        *RECORD.lock().unwrap_or_else(|e| e.into_inner()) = Some(Record::default());
        bootstrap(rec_modinit, rec_symload, rec_compload);
        RECORD
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default()
    }

    const TEST_SO_SRC: &str = r#"
struct comp { int type; const char *name; };
struct modinfo { int version; const char *name; };
static const struct comp comp_a = {1, "a"};
static const struct comp comp_b = {2, "b"};
static const struct modinfo mod_a = {0, "moda"};
__attribute__((used, section("link_set_rump_components")))
static const void *const lsc_a = &comp_a;
__attribute__((used, section("link_set_rump_components")))
static const void *const lsc_b = &comp_b;
__attribute__((used, section("link_set_modules")))
static const void *const lsm_a = &mod_a;
extern const void *const __start_link_set_rump_components[];
extern const void *const __stop_link_set_rump_components[];
extern const void *const __start_link_set_modules[];
extern const void *const __stop_link_set_modules[];
const void *const expected_components[2] = {&comp_a, &comp_b};
const void *const expected_modules[1] = {&mod_a};
extern int rump_undefined_thing __attribute__((weak));
int not_rump_symbol = 1;
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
int CAT(rump_foo_, SUFFIX)(void) {
    return (int)(__stop_link_set_rump_components - __start_link_set_rump_components)
        + (int)(__stop_link_set_modules - __start_link_set_modules)
        + (&rump_undefined_thing != 0);
}
"#;

    /// Builds `librumptest_<suffix>.so` in `dir` and `dlopen`s it.
    fn build_and_open(dir: &std::path::Path, suffix: &str, hash: &str) -> Option<*mut c_void> {
        let src = dir.join("t.c");
        std::fs::write(&src, TEST_SO_SRC).unwrap();
        let so = dir.join(format!("librumptest_{suffix}.so"));
        // The target's C compiler (`RUMPUSER_TEST_CC`, e.g. a cross
        // compiler when the tests run under an emulator), else `cc`.
        let cc = std::env::var("RUMPUSER_TEST_CC").unwrap_or_else(|_| "cc".into());
        let st = match std::process::Command::new(cc)
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&so)
            .arg(&src)
            .arg(format!("-DSUFFIX={suffix}"))
            .arg(format!("-Wl,--hash-style={hash}"))
            .status()
        {
            Ok(st) => st,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("running cc: {e}"),
        };
        assert!(st.success(), "cc failed for {suffix}");
        let path = CString::new(so.to_str().unwrap()).unwrap();
        // SAFETY: loading a freshly built object without constructors.
        let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!h.is_null(), "dlopen failed: {:?}", {
            // SAFETY: dlerror returns a valid string after a failure.
            unsafe { CStr::from_ptr(libc::dlerror()) }
        });
        Some(h)
    }

    fn dlsym(h: *mut c_void, name: &str) -> usize {
        let n = CString::new(name).unwrap();
        // SAFETY: `h` is a live dlopen handle, `n` a C string.
        let p = unsafe { libc::dlsym(h, n.as_ptr()) };
        assert!(!p.is_null(), "dlsym {name}");
        p as usize
    }

    fn read_ptrs(addr: usize, n: usize) -> Vec<usize> {
        // SAFETY: `addr` is an exported array of `n` pointers in a loaded
        // object.
        unsafe { std::slice::from_raw_parts(addr as *const usize, n).to_vec() }
    }

    #[test]
    fn hash_tables_agree_and_every_object_parses() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("rumpuser-dl-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let Some(h) = build_and_open(&dir, "both", "both") else {
            eprintln!("no C compiler (cc); skipping");
            return;
        };
        let _ = std::fs::remove_dir_all(&dir);
        let report = object_report();
        let mut compared = 0;
        for r in &report {
            let name = String::from_utf8_lossy(&r.name);
            assert!(r.parsed, "{name} did not parse");
            if let (Some(hash), Some(gnu)) = (r.hash, r.gnu_hash) {
                assert_eq!(hash, gnu, "{name}: DT_HASH and DT_GNU_HASH disagree");
                compared += 1;
            }
        }
        // SAFETY: getauxval has no preconditions.
        let has_vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } != 0;
        // (qemu-user gives its guests no vDSO.)
        assert!(
            !has_vdso || report.iter().any(|r| r.is_vdso),
            "vDSO not recognised"
        );
        assert!(report
            .iter()
            .any(|r| r.name.ends_with(b"librumptest_both.so")
                && r.hash.is_some()
                && r.gnu_hash.is_some()));
        assert!(compared >= 1);
        // SAFETY: nothing from the object is used any more.
        unsafe { libc::dlclose(h) };
    }

    #[test]
    fn walking_self_does_not_crash() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let r = run_bootstrap();
        assert!(r.symload_calls <= 1);
        assert_eq!(r.bad_names, 0);
        if r.symload_calls == 1 {
            assert_eq!(r.strtab_first, Some(0));
            assert_eq!(r.strtab_last, Some(0));
        }
        // Everything reported must be rump-namespace and defined.
        for (name, value, shndx) in &r.syms {
            assert!(
                name.starts_with(b"rump") || name.starts_with(b"RUMP") || name.starts_with(b"__"),
                "{:?}",
                String::from_utf8_lossy(name)
            );
            assert_ne!(*shndx, 0);
            assert_ne!(*value, 0);
        }
    }

    #[test]
    fn finds_symbols_and_link_sets_of_librump_objects() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("rumpuser-dl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let Some(h_gnu) = build_and_open(&dir, "gnu", "gnu") else {
            eprintln!("no C compiler (cc); skipping");
            return;
        };
        let h_sysv = build_and_open(&dir, "sysv", "sysv").unwrap();
        let _ = std::fs::remove_dir_all(&dir);

        let r = run_bootstrap();
        assert_eq!(r.symload_calls, 1);
        assert_eq!(r.strtab_first, Some(0), "string table must start with NUL");
        assert_eq!(r.strtab_last, Some(0));
        assert_eq!(r.bad_names, 0);

        let find = |name: &[u8]| -> Vec<usize> {
            r.syms
                .iter()
                .filter(|(n, _, _)| n == name)
                .map(|(_, v, _)| *v)
                .collect()
        };
        assert_eq!(find(b"rump_foo_gnu"), vec![dlsym(h_gnu, "rump_foo_gnu")]);
        assert_eq!(find(b"rump_foo_sysv"), vec![dlsym(h_sysv, "rump_foo_sysv")]);
        assert!(find(b"not_rump_symbol").is_empty());
        assert!(find(b"expected_components").is_empty());
        assert!(find(b"rump_undefined_thing").is_empty());
        // One start/stop pair per object.
        assert_eq!(find(b"__start_link_set_rump_components").len(), 2);

        // Components: each object's own pair, last loaded (sysv) first.
        let mut want = read_ptrs(dlsym(h_sysv, "expected_components"), 2);
        want.extend(read_ptrs(dlsym(h_gnu, "expected_components"), 2));
        let mut got = r.comps.clone();
        // The test binary itself may be linked with other objects that
        // carry components; keep only ours, in order.
        got.retain(|p| want.contains(p));
        let (mut a, mut b) = (got.clone(), want.clone());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "each component exactly once");
        assert_eq!(
            &got[..2]
                .iter()
                .copied()
                .collect::<std::collections::BTreeSet<_>>(),
            &want[..2].iter().copied().collect(),
            "last loaded object first"
        );

        // Modules: one batch per object with its own single entry.
        let mods: Vec<usize> = r
            .modules
            .iter()
            .filter(|(_, n)| *n == 1)
            .map(|&(start, _)| read_ptrs(start, 1)[0])
            .collect();
        let m_sysv = read_ptrs(dlsym(h_sysv, "expected_modules"), 1)[0];
        let m_gnu = read_ptrs(dlsym(h_gnu, "expected_modules"), 1)[0];
        let pos_sysv = mods.iter().position(|&m| m == m_sysv).expect("sysv module");
        let pos_gnu = mods.iter().position(|&m| m == m_gnu).expect("gnu module");
        assert!(pos_sysv < pos_gnu);
        assert_eq!(mods.iter().filter(|&&m| m == m_gnu).count(), 1);

        // SAFETY: nothing from the objects is used any more.
        unsafe {
            libc::dlclose(h_sysv);
            libc::dlclose(h_gnu);
        }
    }
}
