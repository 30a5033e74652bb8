//! The raw half of `rumpuser_dl_bootstrap` ([`crate::dl`], which says
//! what is looked for and why): the loaded objects from `dl_iterate_phdr`,
//! their dynamic symbol tables read in place, and what is handed to the
//! kernel's callbacks (the combined tables, each object's link sets).
//! This assumes no other thread unloads objects meanwhile, which holds at
//! boot, the only time the kernel calls it.

use core::ffi::{c_char, c_int, c_void, CStr};
use core::mem::size_of;
use rumpuser_core::abi::{CompLoadFn, ModinitFn, SymloadFn};

#[cfg(target_pointer_width = "64")]
type Phdr = libc::Elf64_Phdr;
#[cfg(target_pointer_width = "32")]
type Phdr = libc::Elf32_Phdr;

/// Native-class `ElfN_Dyn`: a signed tag and a word-sized value.
#[repr(C)]
#[derive(Clone, Copy)]
struct Dyn {
    d_tag: isize,
    d_val: usize,
}

/// Native-class `Elf64_Sym`.
#[cfg(target_pointer_width = "64")]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Sym {
    pub st_name: u32,
    pub st_info: u8,
    pub st_other: u8,
    pub st_shndx: u16,
    pub st_value: u64,
    pub st_size: u64,
}

/// Native-class `Elf32_Sym`.
#[cfg(target_pointer_width = "32")]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Sym {
    pub st_name: u32,
    pub st_value: u32,
    pub st_size: u32,
    pub st_info: u8,
    pub st_other: u8,
    pub st_shndx: u16,
}

const DT_NULL: isize = 0;
const DT_HASH: isize = 4;
const DT_STRTAB: isize = 5;
const DT_SYMTAB: isize = 6;
const DT_STRSZ: isize = 10;
const DT_SYMENT: isize = 11;
const DT_GNU_HASH: isize = 0x6fff_fef5;
/// An undefined symbol's section.
pub const SHN_UNDEF: u16 = 0;
const SHN_ABS: u16 = 0xfff1;
const PT_DYNAMIC: u32 = 2;

/// Sanity limits against corrupt or foreign dynamic sections.
const MAX_DYN_ENTRIES: usize = 1 << 16;
const MAX_SYMS: usize = 1 << 24;

/// One loaded object as reported by `dl_iterate_phdr` (made only by
/// [`loaded_objects`], so `dynamic` is a loaded object's).
pub struct Object {
    /// Load base.
    pub base: usize,
    /// `dlpi_name` without its NUL (empty for the main program on glibc).
    pub name: Vec<u8>,
    /// Run-time address of the `PT_DYNAMIC` segment, if any.
    dynamic: Option<usize>,
    /// The vDSO.
    pub is_vdso: bool,
}

impl Object {
    /// The object's dynamic symbol table, if it has one this module can read.
    pub fn symbols(&self) -> Option<SymView> {
        // SAFETY: `dynamic` came from the object's PT_DYNAMIC header
        // (`loaded_objects` is the only maker of an `Object`).
        unsafe { parse_dynamic(self) }
    }
}

/// A parsed dynamic symbol table of one object (made only by
/// [`Object::symbols`]).
#[derive(Clone, Copy)]
pub struct SymView {
    base: usize,
    syms: *const Sym,
    nsyms: usize,
    strtab: *const u8,
    strsz: usize,
}

impl SymView {
    /// The symbols.
    pub fn syms(&self) -> &[Sym] {
        // SAFETY: `parse_dynamic` checked the pointer is non-null and
        // aligned; the dynamic linker keeps the object's `DT_SYMTAB`
        // mapped with `nsyms` entries (the hash table's count) while the
        // object stays loaded, which it does during bootstrap.
        unsafe { core::slice::from_raw_parts(self.syms, self.nsyms) }
    }

    /// The string table.
    pub fn strtab(&self) -> &[u8] {
        // SAFETY: as above for `DT_STRTAB`, which is `DT_STRSZ` bytes.
        unsafe { core::slice::from_raw_parts(self.strtab, self.strsz) }
    }

    /// The NUL-less name at `off`, or `None` if it is out of bounds or
    /// unterminated.
    pub fn name(&self, off: u32) -> Option<&[u8]> {
        let tab = self.strtab().get(off as usize..)?;
        let len = tab.iter().position(|&b| b == 0)?;
        Some(&tab[..len])
    }

    /// Run-time address of a symbol's value.
    pub fn address(&self, sym: &Sym) -> usize {
        if sym.st_shndx == SHN_ABS {
            sym.st_value as usize
        } else {
            (sym.st_value as usize).wrapping_add(self.base)
        }
    }

    /// Looks `name` up among this object's own defined symbols.
    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        self.syms()
            .iter()
            .filter(|s| s.st_shndx != SHN_UNDEF)
            .find(|s| self.name(s.st_name) == Some(name))
            .map(|s| self.address(s))
    }

    /// The link set between this object's own `start` and `stop` symbols
    /// (`__start_link_set_modules`, …): pointer-aligned, `stop` not below
    /// `start`.
    pub fn link_set(&self, start: &[u8], stop: &[u8]) -> Option<LinkSet> {
        let psz = size_of::<*const c_void>();
        let (a, b) = (self.lookup(start)?, self.lookup(stop)?);
        (a <= b && a % psz == 0).then(|| LinkSet {
            start: a,
            count: (b - a) / psz,
        })
    }
}

/// The pointers of one object's link set (made only by
/// [`SymView::link_set`], from its own start and stop symbols).
pub struct LinkSet {
    start: usize,
    count: usize,
}

impl LinkSet {
    /// How many pointers the set holds.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// The vDSO's ELF header address, or 0.
fn vdso_ehdr() -> usize {
    // SAFETY: getauxval has no preconditions.
    unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) as usize }
}

unsafe extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: `data` is the `&mut Vec<Object>` passed by
    // `loaded_objects`, exclusively borrowed for the whole iteration.
    let out = unsafe { &mut *data.cast::<Vec<Object>>() };
    // SAFETY: the dynamic linker passes a valid `dl_phdr_info` that
    // lives for the duration of the callback.
    let info = unsafe { &*info };
    let base = info.dlpi_addr as usize;
    let name = if info.dlpi_name.is_null() {
        Vec::new()
    } else {
        // SAFETY: a non-null `dlpi_name` is a NUL-terminated string.
        unsafe { CStr::from_ptr(info.dlpi_name) }
            .to_bytes()
            .to_vec()
    };
    let phdrs: &[Phdr] = if info.dlpi_phdr.is_null() {
        &[]
    } else {
        // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers of
        // a loaded object.
        unsafe { core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
    };
    let dynamic = phdrs
        .iter()
        .find(|p| p.p_type == PT_DYNAMIC)
        .map(|p| base.wrapping_add(p.p_vaddr as usize));
    let ve = vdso_ehdr();
    let ph = info.dlpi_phdr as usize;
    let is_vdso = (ve != 0 && ph >= ve && ph < ve + 4096)
        || name.windows(4).any(|w| w == b"vdso")
        || name.starts_with(b"linux-gate");
    out.push(Object {
        base,
        name,
        dynamic,
        is_vdso,
    });
    0
}

/// Every loaded object, in load order (main program first).
pub fn loaded_objects() -> Vec<Object> {
    let mut objs: Vec<Object> = Vec::new();
    // SAFETY: `collect` matches the callback signature and only uses
    // `data` as the `Vec<Object>` we pass, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(collect), (&mut objs as *mut Vec<Object>).cast());
    }
    objs
}

/// A dynamic-section pointer: absolute if at or above the load base,
/// base-relative otherwise.
fn adjptr(base: usize, p: usize) -> usize {
    if p < base {
        base.wrapping_add(p)
    } else {
        p
    }
}

/// Symbol count from a `DT_GNU_HASH` table: one past the highest symbol
/// index reachable from any bucket (or `symoffset` if none).
///
/// # Safety
/// `ht` must point at a mapped GNU hash table.
unsafe fn gnu_hash_count(ht: *const u32) -> Option<usize> {
    // SAFETY: the header is four words (caller's contract).
    let (nbuckets, symoffset, bloom_size) =
        unsafe { (*ht as usize, *ht.add(1) as usize, *ht.add(2) as usize) };
    let bloom_words = bloom_size.checked_mul(size_of::<usize>() / 4)?;
    // SAFETY: the buckets follow the header and the bloom filter.
    let buckets = unsafe { ht.add(4 + bloom_words) };
    // SAFETY: there are `nbuckets` buckets.
    let buckets_s = unsafe { core::slice::from_raw_parts(buckets, nbuckets) };
    let max = buckets_s.iter().copied().max().unwrap_or(0) as usize;
    if max < symoffset {
        return Some(symoffset);
    }
    // SAFETY: the chain array follows the buckets.
    let chains = unsafe { buckets.add(nbuckets) };
    let mut idx = max;
    loop {
        if idx >= MAX_SYMS {
            return None;
        }
        // SAFETY: every chain reachable from a bucket ends with an entry
        // whose low bit is set; `idx - symoffset` stays within it.
        let h = unsafe { *chains.add(idx - symoffset) };
        if h & 1 != 0 {
            return Some(idx + 1);
        }
        idx += 1;
    }
}

/// The dynamic-section entries this module needs, pointers adjusted.
struct DynInfo {
    syms: usize,
    strtab: usize,
    strsz: usize,
    hash: usize,
    gnu_hash: usize,
}

/// Scans an object's dynamic section.
///
/// # Safety
/// `obj.dynamic` must be the run-time address of a loaded object's
/// `PT_DYNAMIC` segment.
unsafe fn read_dynamic(obj: &Object) -> Option<DynInfo> {
    let dynp = obj.dynamic? as *const Dyn;
    if dynp.is_null() || !(dynp as usize).is_multiple_of(core::mem::align_of::<Dyn>()) {
        return None;
    }
    let base = obj.base;
    let mut info = DynInfo {
        syms: 0,
        strtab: 0,
        strsz: 0,
        hash: 0,
        gnu_hash: 0,
    };
    for i in 0..MAX_DYN_ENTRIES {
        // SAFETY: the dynamic section is an array terminated by DT_NULL
        // (caller's contract); we stop at the terminator.
        let d = unsafe { *dynp.add(i) };
        match d.d_tag {
            DT_NULL => break,
            DT_SYMTAB => info.syms = adjptr(base, d.d_val),
            DT_STRTAB => info.strtab = adjptr(base, d.d_val),
            DT_STRSZ => info.strsz = d.d_val,
            DT_HASH => info.hash = adjptr(base, d.d_val),
            DT_GNU_HASH => info.gnu_hash = adjptr(base, d.d_val),
            DT_SYMENT if d.d_val != size_of::<Sym>() => return None,
            _ => {}
        }
    }
    let misaligned = |p: usize, a: usize| p != 0 && !p.is_multiple_of(a);
    if misaligned(info.syms, core::mem::align_of::<Sym>())
        || misaligned(info.hash, 4)
        || misaligned(info.gnu_hash, 4)
    {
        return None;
    }
    Some(info)
}

/// `nchain` of a `DT_HASH` table, which equals the symbol count.
///
/// # Safety
/// `hash` must be the address of a mapped SysV hash table.
unsafe fn sysv_hash_count(hash: usize) -> usize {
    // SAFETY: DT_HASH starts with nbucket, nchain (32-bit words on every
    // Linux target but s390x/alpha, which this crate does not support).
    unsafe { *(hash as *const u32).add(1) as usize }
}

/// Reads an object's dynamic symbol table, string table and symbol count.
///
/// # Safety
/// As for [`read_dynamic`].
unsafe fn parse_dynamic(obj: &Object) -> Option<SymView> {
    // SAFETY: forwarded caller's contract.
    let info = unsafe { read_dynamic(obj)? };
    if info.syms == 0 || info.strtab == 0 || info.strsz == 0 {
        return None;
    }
    let nsyms = if info.hash != 0 {
        // SAFETY: DT_HASH points at the object's mapped SysV hash.
        unsafe { sysv_hash_count(info.hash) }
    } else if info.gnu_hash != 0 {
        // SAFETY: DT_GNU_HASH points at the object's mapped GNU hash.
        unsafe { gnu_hash_count(info.gnu_hash as *const u32)? }
    } else {
        return None;
    };
    if nsyms == 0 || nsyms > MAX_SYMS {
        return None;
    }
    Some(SymView {
        base: obj.base,
        syms: info.syms as *const Sym,
        nsyms,
        strtab: info.strtab as *const u8,
        strsz: info.strsz,
    })
}

/// Test view of one loaded object with a dynamic section.
#[cfg(test)]
pub(crate) struct ObjReport {
    pub name: Vec<u8>,
    pub is_vdso: bool,
    /// Whether `parse_dynamic` accepted it.
    pub parsed: bool,
    /// Symbol count from `DT_HASH`, if present.
    pub hash: Option<usize>,
    /// Symbol count from `DT_GNU_HASH`, if present.
    pub gnu_hash: Option<usize>,
}

/// Test hook: every loaded object with a dynamic section.
#[cfg(test)]
pub(crate) fn object_report() -> Vec<ObjReport> {
    loaded_objects()
        .into_iter()
        .filter(|o| o.dynamic.is_some())
        .map(|o| {
            // SAFETY: `dynamic` came from the object's PT_DYNAMIC header.
            let info = unsafe { read_dynamic(&o) };
            // SAFETY: as above.
            let parsed = unsafe { parse_dynamic(&o) }.is_some();
            let (h, g) = info.map_or((None, None), |i| {
                // SAFETY: the tables belong to the loaded object.
                let h = (i.hash != 0).then(|| unsafe { sysv_hash_count(i.hash) });
                // SAFETY: as above.
                let g = (i.gnu_hash != 0)
                    .then(|| unsafe { gnu_hash_count(i.gnu_hash as *const u32) })
                    .flatten();
                (h, g)
            });
            ObjReport {
                name: o.name,
                is_vdso: o.is_vdso,
                parsed,
                hash: h,
                gnu_hash: g,
            }
        })
        .collect()
}

/// Copies `bytes` into a fresh `malloc` block (never freed by us); null
/// when out of memory.
fn malloc_copy(bytes: &[u8]) -> *mut c_void {
    // SAFETY: malloc has no preconditions; a zero size is avoided.
    let p = unsafe { libc::malloc(bytes.len().max(1)) };
    if !p.is_null() {
        // SAFETY: `p` holds at least `bytes.len()` bytes and is fresh, so
        // it does not overlap `bytes`.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>(), bytes.len()) };
    }
    p
}

/// Hands the combined symbol and string tables to the kernel's `symload`
/// in `malloc`ed copies (ownership passes to the kernel; they are never
/// freed); `false` when out of memory.
pub fn give_symbols(symload: SymloadFn, syms: &[Sym], strs: &[u8]) -> bool {
    let symbytes = core::mem::size_of_val(syms);
    // SAFETY: `Sym` is `repr(C)` integers without padding (24 or 16
    // bytes), so the slice is `symbytes` initialised bytes.
    let sym_bytes = unsafe { core::slice::from_raw_parts(syms.as_ptr().cast::<u8>(), symbytes) };
    let symtab = malloc_copy(sym_bytes);
    let strtab = malloc_copy(strs);
    if symtab.is_null() || strtab.is_null() {
        // SAFETY: both are malloc results or null.
        unsafe {
            libc::free(symtab);
            libc::free(strtab);
        }
        return false;
    }
    // SAFETY: the kernel's symload callback (`rumpuser_dl_bootstrap`'s
    // argument) takes ownership of two valid tables of the stated sizes.
    unsafe {
        symload(
            symtab,
            symbytes as u64,
            strtab.cast::<c_char>(),
            strs.len() as u64,
        )
    };
    true
}

/// Calls the kernel's `modinit` once with an object's module link set.
pub fn give_modules(modinit: ModinitFn, set: &LinkSet) {
    // SAFETY: the object's link set is an array of `count`
    // `const struct modinfo *` between its start/stop symbols; `modinit`
    // is the kernel's callback for exactly that.
    unsafe { modinit(set.start as *const *const c_void, set.count) };
}

/// Calls the kernel's `compload` with each component of an object's
/// component link set.
pub fn give_components(compload: CompLoadFn, set: &LinkSet) {
    for k in 0..set.count {
        // SAFETY: `count` `struct rump_component *` pointers lie between
        // the object's start/stop symbols.
        let rc = unsafe { *(set.start as *const *const c_void).add(k) };
        // SAFETY: handing a component of a loaded object to the kernel's
        // compload callback is its documented use.
        unsafe { compload(rc) };
    }
}
