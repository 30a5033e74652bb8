//! `rumpuser_dprintf` without a C library: a C `printf` subset in Rust and,
//! for freestanding x86_64 (`target_os = "none"`), the variadic entry point.
//!
//! Hosted targets compile `csrc/dprintf.c` (libc `vsnprintf`). Bare-metal
//! and Xen guests have no libc, and stable Rust cannot define a C-variadic
//! function, so [`va_entry!`](crate::printf) builds one as a naked function:
//! it spills the six integer argument registers and (when `%al` says vector
//! registers were used) `xmm0`–`xmm7` into a save area shaped like the SysV
//! `va_list` register area, and calls [`vformat_entry`] with it and the
//! address of the caller's stack arguments (the overflow area). [`VaList`]
//! then walks the arguments exactly as `va_arg` does: integer-class
//! arguments from the six GP slots, `double`s from the eight XMM slots, and
//! either class from the one overflow area once its registers are used up,
//! so any number of arguments works.
//!
//! Supported conversions: `d i u o x X c s p % n` with the flags `- 0 + space #`,
//! a field width and precision (digits or `*`), the length modifiers
//! `hh h l ll q j z t`, and `f F e E g G` for `double` (`L` long double is
//! consumed and printed as `?`). Unknown conversions are copied verbatim.
//! Output goes to the sink in chunks of at most 256 bytes, so nothing is
//! truncated and nothing is allocated: `dprintf` works in any context.

use core::ffi::c_char;
use core::fmt::Write as _;

/// Where the arguments of one variadic call live.
pub trait ArgSource {
    /// The next integer-class argument (`int`, `long`, pointers, ...).
    fn next_int(&mut self) -> u64;
    /// The next `double` argument.
    fn next_double(&mut self) -> f64;
    /// Skips a `long double` (passed in memory, 16 bytes).
    fn skip_long_double(&mut self);
}

/// The register save area written by the variadic entry: the SysV
/// `reg_save_area` layout (6 GP registers, then 8 XMM registers of 16 bytes).
#[repr(C, align(16))]
pub struct RegSave {
    /// `rdi rsi rdx rcx r8 r9`; `rdi` is the format string.
    pub gp: [u64; 6],
    /// `xmm0`–`xmm7`, valid only if the caller set `%al` > 0.
    pub xmm: [[u64; 2]; 8],
}

/// `va_list` over a [`RegSave`] and the caller's overflow area.
pub struct VaList {
    save: *const RegSave,
    gp: usize,
    fp: usize,
    overflow: *const u64,
}

impl VaList {
    /// Starts after the named arguments (`named_gp` integer registers used).
    ///
    /// # Safety
    /// `save` points to a register area filled by a variadic entry and
    /// `overflow` to the caller's stack arguments; both stay valid while
    /// the list is used, and the list is read no further than the caller
    /// passed arguments.
    pub unsafe fn new(save: *const RegSave, overflow: *const u64, named_gp: usize) -> VaList {
        VaList {
            save,
            gp: named_gp,
            fp: 0,
            overflow,
        }
    }

    fn next_overflow(&mut self) -> u64 {
        // SAFETY: `VaList::new`'s contract: the caller passed this argument
        // on the stack, in order, 8-byte slots.
        let v = unsafe { self.overflow.read() };
        // SAFETY: stays within (or one past) the caller's argument area.
        self.overflow = unsafe { self.overflow.add(1) };
        v
    }
}

impl ArgSource for VaList {
    fn next_int(&mut self) -> u64 {
        if self.gp < 6 {
            // SAFETY: `save` is valid (constructor contract), index < 6.
            let v = unsafe { (*self.save).gp[self.gp] };
            self.gp += 1;
            v
        } else {
            self.next_overflow()
        }
    }

    fn next_double(&mut self) -> f64 {
        if self.fp < 8 {
            // SAFETY: as above; the caller set %al, so the slot was saved.
            let v = unsafe { (*self.save).xmm[self.fp][0] };
            self.fp += 1;
            f64::from_bits(v)
        } else {
            f64::from_bits(self.next_overflow())
        }
    }

    fn skip_long_double(&mut self) {
        // 16-byte aligned slot in the overflow area.
        let p = self.overflow as usize;
        self.overflow = (p.next_multiple_of(16) + 16) as *const u64;
    }
}

/// A 256-byte output buffer flushed into a sink.
struct Out<'a> {
    buf: [u8; 256],
    len: usize,
    sink: &'a mut dyn FnMut(&[u8]),
}

impl Out<'_> {
    fn byte(&mut self, b: u8) {
        if self.len == self.buf.len() {
            self.flush();
        }
        self.buf[self.len] = b;
        self.len += 1;
    }
    fn bytes(&mut self, s: &[u8]) {
        for &b in s {
            self.byte(b);
        }
    }
    fn pad(&mut self, c: u8, n: usize) {
        for _ in 0..n {
            self.byte(c);
        }
    }
    fn flush(&mut self) {
        if self.len > 0 {
            (self.sink)(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

/// A small stack string for number conversions.
struct Num {
    buf: [u8; 512],
    len: usize,
}

impl core::fmt::Write for Num {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl Num {
    fn new() -> Num {
        Num {
            buf: [0; 512],
            len: 0,
        }
    }
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[derive(Default, Clone, Copy)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
    width: usize,
    prec: Option<usize>,
}

/// Emits `body` (digits without sign/prefix) with sign, prefix, precision
/// zeros and field padding, as C does.
fn emit_number(out: &mut Out<'_>, sp: Spec, sign: &[u8], prefix: &[u8], digits: &[u8]) {
    let zeros = sp.prec.map_or(0, |p| p.saturating_sub(digits.len()));
    let body = sign.len() + prefix.len() + zeros + digits.len();
    let fill = sp.width.saturating_sub(body);
    if sp.left {
        out.bytes(sign);
        out.bytes(prefix);
        out.pad(b'0', zeros);
        out.bytes(digits);
        out.pad(b' ', fill);
    } else if sp.zero && sp.prec.is_none() {
        out.bytes(sign);
        out.bytes(prefix);
        out.pad(b'0', fill + zeros);
        out.bytes(digits);
    } else {
        out.pad(b' ', fill);
        out.bytes(sign);
        out.bytes(prefix);
        out.pad(b'0', zeros);
        out.bytes(digits);
    }
}

fn digits(mut v: u64, base: u64, upper: bool, buf: &mut [u8; 24]) -> usize {
    let set = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = set[(v % base) as usize];
        v /= base;
        if v == 0 {
            break;
        }
    }
    i
}

fn emit_str(out: &mut Out<'_>, sp: Spec, s: &[u8]) {
    let s = match sp.prec {
        Some(p) if p < s.len() => &s[..p],
        _ => s,
    };
    let fill = sp.width.saturating_sub(s.len());
    if !sp.left {
        out.pad(b' ', fill);
    }
    out.bytes(s);
    if sp.left {
        out.pad(b' ', fill);
    }
}

/// Length of a C string, reading at most `max` bytes.
///
/// # Safety
/// `p` is readable up to its NUL or `max` bytes.
unsafe fn c_strnlen(p: *const u8, max: usize) -> usize {
    let mut n = 0;
    // SAFETY: caller's contract; we stop at the NUL or `max`.
    while n < max && unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    n
}

/// Formats `fmt` with `args` into `sink`, C `printf` style (see the module docs).
///
/// # Safety
/// `fmt` is a NUL-terminated string; `args` yields the arguments the format
/// asks for, and every `%s` argument is NULL or a readable C string.
pub unsafe fn vformat(fmt: *const c_char, args: &mut dyn ArgSource, sink: &mut dyn FnMut(&[u8])) {
    if fmt.is_null() {
        return;
    }
    let mut out = Out {
        buf: [0; 256],
        len: 0,
        sink,
    };
    let mut p = fmt.cast::<u8>();
    // SAFETY: every read below is at or before the terminating NUL of
    // `fmt` (the caller's contract): we stop at the first 0 byte and only
    // look ahead after checking the current byte is not 0.
    let at = |p: *const u8| unsafe { *p };
    loop {
        let c = at(p);
        if c == 0 {
            break;
        }
        // SAFETY: `c` was not the NUL, so `p + 1` is still in the string.
        p = unsafe { p.add(1) };
        if c != b'%' {
            out.byte(c);
            continue;
        }
        let start = p;
        let mut sp = Spec::default();
        loop {
            match at(p) {
                b'-' => sp.left = true,
                b'0' => sp.zero = true,
                b'+' => sp.plus = true,
                b' ' => sp.space = true,
                b'#' => sp.alt = true,
                _ => break,
            }
            // SAFETY: the flag byte was not NUL.
            p = unsafe { p.add(1) };
        }
        if at(p) == b'*' {
            let w = args.next_int() as i32;
            if w < 0 {
                sp.left = true;
            }
            sp.width = w.unsigned_abs() as usize;
            // SAFETY: '*' is not NUL.
            p = unsafe { p.add(1) };
        } else {
            while at(p).is_ascii_digit() {
                sp.width = sp.width.saturating_mul(10) + (at(p) - b'0') as usize;
                // SAFETY: a digit is not NUL.
                p = unsafe { p.add(1) };
            }
        }
        if at(p) == b'.' {
            // SAFETY: '.' is not NUL.
            p = unsafe { p.add(1) };
            if at(p) == b'*' {
                let v = args.next_int() as i32;
                sp.prec = (v >= 0).then_some(v as usize);
                // SAFETY: '*' is not NUL.
                p = unsafe { p.add(1) };
            } else {
                let mut v = 0usize;
                while at(p).is_ascii_digit() {
                    v = v.saturating_mul(10) + (at(p) - b'0') as usize;
                    // SAFETY: a digit is not NUL.
                    p = unsafe { p.add(1) };
                }
                sp.prec = Some(v);
            }
        }
        // Length modifier: bytes of the integer argument (8 = full register).
        let mut size = 4usize;
        let mut long_double = false;
        loop {
            match at(p) {
                b'h' => size = if size == 2 { 1 } else { 2 },
                b'l' | b'q' | b'j' | b'z' | b't' => size = 8,
                b'L' => long_double = true,
                _ => break,
            }
            // SAFETY: the modifier byte was not NUL.
            p = unsafe { p.add(1) };
        }
        let conv = at(p);
        if conv == 0 {
            // Dangling '%...' at the end: print it as written.
            // SAFETY: `start - 1` is the '%' byte, `p` its end, same string.
            let n = unsafe { p.offset_from(start) } as usize + 1;
            // SAFETY: as above.
            out.bytes(unsafe { core::slice::from_raw_parts(start.sub(1), n) });
            break;
        }
        // SAFETY: the conversion byte was not NUL.
        p = unsafe { p.add(1) };
        match conv {
            b'%' => out.byte(b'%'),
            b'c' => {
                let ch = args.next_int() as u8;
                emit_str(&mut out, Spec { prec: None, ..sp }, &[ch]);
            }
            b's' => {
                let s = args.next_int() as *const u8;
                if s.is_null() {
                    emit_str(&mut out, sp, b"(null)");
                } else {
                    let max = sp.prec.unwrap_or(usize::MAX);
                    // SAFETY: the caller's contract: a readable C string.
                    let n = unsafe { c_strnlen(s, max) };
                    // SAFETY: `n` readable bytes at `s`.
                    emit_str(&mut out, sp, unsafe { core::slice::from_raw_parts(s, n) });
                }
            }
            b'd' | b'i' => {
                let raw = args.next_int();
                let v: i64 = match size {
                    1 => raw as i8 as i64,
                    2 => raw as i16 as i64,
                    4 => raw as i32 as i64,
                    _ => raw as i64,
                };
                let sign: &[u8] = if v < 0 {
                    b"-"
                } else if sp.plus {
                    b"+"
                } else if sp.space {
                    b" "
                } else {
                    b""
                };
                let mut b = [0u8; 24];
                let i = digits(v.unsigned_abs(), 10, false, &mut b);
                let d = if sp.prec == Some(0) && v == 0 {
                    &b[24..]
                } else {
                    &b[i..]
                };
                emit_number(&mut out, sp, sign, b"", d);
            }
            b'u' | b'x' | b'X' | b'o' | b'p' => {
                let raw = args.next_int();
                let v = match (conv, size) {
                    (b'p', _) => raw,
                    (_, 1) => raw as u8 as u64,
                    (_, 2) => raw as u16 as u64,
                    (_, 4) => raw as u32 as u64,
                    _ => raw,
                };
                let (base, upper) = match conv {
                    b'u' => (10, false),
                    b'o' => (8, false),
                    b'X' => (16, true),
                    _ => (16, false),
                };
                let mut b = [0u8; 24];
                let i = digits(v, base, upper, &mut b);
                let d = if sp.prec == Some(0) && v == 0 {
                    &b[24..]
                } else {
                    &b[i..]
                };
                let prefix: &[u8] = match conv {
                    b'p' => b"0x",
                    b'x' if sp.alt && v != 0 => b"0x",
                    b'X' if sp.alt && v != 0 => b"0X",
                    b'o' if sp.alt && d.first() != Some(&b'0') => b"0",
                    _ => b"",
                };
                emit_number(&mut out, sp, b"", prefix, d);
            }
            b'n' => {
                // Writing through %n is never needed for console output.
                let _ = args.next_int();
            }
            b'f' | b'F' | b'e' | b'E' | b'g' | b'G' => {
                if long_double {
                    args.skip_long_double();
                    emit_str(&mut out, sp, b"?");
                    continue;
                }
                let v = args.next_double();
                let mut n = Num::new();
                let prec = sp.prec.unwrap_or(6);
                let neg = v.is_sign_negative() && !v.is_nan();
                let a = if neg { -v } else { v };
                let upper = conv.is_ascii_uppercase();
                if !a.is_finite() {
                    let s: &[u8] = match (a.is_nan(), upper) {
                        (true, false) => b"nan",
                        (true, true) => b"NAN",
                        (false, false) => b"inf",
                        (false, true) => b"INF",
                    };
                    let _ = n.write_str(core::str::from_utf8(s).unwrap_or(""));
                } else {
                    let exp = if a == 0.0 { 0 } else { libm_floor_log10(a) };
                    let fixed = match conv {
                        b'f' | b'F' => true,
                        b'e' | b'E' => false,
                        _ => exp >= -4 && exp < prec.max(1) as i32,
                    };
                    let p = match conv {
                        b'g' | b'G' if fixed => (prec.max(1) as i32 - 1 - exp).max(0) as usize,
                        b'g' | b'G' => prec.max(1) - 1,
                        _ => prec,
                    };
                    if fixed {
                        let _ = write!(n, "{a:.p$}");
                    } else {
                        let _ = write!(n, "{a:.p$e}");
                    }
                    if matches!(conv, b'g' | b'G') && !sp.alt {
                        strip_zeros(&mut n);
                    }
                    if !fixed {
                        fix_exponent(&mut n, upper);
                    }
                }
                let sign: &[u8] = if neg {
                    b"-"
                } else if sp.plus {
                    b"+"
                } else if sp.space {
                    b" "
                } else {
                    b""
                };
                let zero_ok = a.is_finite();
                emit_number(
                    &mut out,
                    Spec {
                        prec: None,
                        zero: sp.zero && zero_ok,
                        ..sp
                    },
                    sign,
                    b"",
                    n.as_bytes(),
                );
            }
            _ => {
                // Unknown conversion: print the directive unchanged.
                // SAFETY: from the '%' to the conversion byte, same string.
                let n = unsafe { p.offset_from(start) } as usize + 1;
                // SAFETY: as above.
                out.bytes(unsafe { core::slice::from_raw_parts(start.sub(1), n) });
            }
        }
    }
    out.flush();
}

/// `floor(log10(a))` for finite `a > 0` without libm.
fn libm_floor_log10(a: f64) -> i32 {
    let mut e = 0i32;
    let mut x = a;
    while x >= 10.0 {
        x /= 10.0;
        e += 1;
    }
    while x < 1.0 {
        x *= 10.0;
        e -= 1;
    }
    e
}

/// `%g` drops trailing zeros of the fraction (and a bare '.').
fn strip_zeros(n: &mut Num) {
    let s = n.as_bytes();
    let end = s.iter().position(|&b| b == b'e').unwrap_or(s.len());
    if !s[..end].contains(&b'.') {
        return;
    }
    let mut cut = end;
    while cut > 0 && s[cut - 1] == b'0' {
        cut -= 1;
    }
    if cut > 0 && s[cut - 1] == b'.' {
        cut -= 1;
    }
    let tail = end - cut;
    if tail > 0 {
        n.buf.copy_within(end..n.len, cut);
        n.len -= tail;
    }
}

/// Rust prints `1.5e2`; C prints `1.5e+02`.
fn fix_exponent(n: &mut Num, upper: bool) {
    let s = n.as_bytes();
    let Some(epos) = s.iter().position(|&b| b == b'e') else {
        return;
    };
    let mut tmp = [0u8; 8];
    let exp = &s[epos + 1..];
    let (neg, digits) = match exp.first() {
        Some(b'-') => (true, &exp[1..]),
        _ => (false, exp),
    };
    let mut k = 0;
    tmp[k] = if upper { b'E' } else { b'e' };
    k += 1;
    tmp[k] = if neg { b'-' } else { b'+' };
    k += 1;
    if digits.len() < 2 {
        tmp[k] = b'0';
        k += 1;
    }
    for &d in digits.iter().take(4) {
        tmp[k] = d;
        k += 1;
    }
    n.len = epos;
    for &b in &tmp[..k] {
        if n.len < n.buf.len() {
            n.buf[n.len] = b;
            n.len += 1;
        }
    }
}

/// Called by the variadic entry with its register save area and the
/// caller's stack arguments: formats and hands the bytes to `sink`.
///
/// # Safety
/// As [`VaList::new`]; `save.gp[0]` is the format string.
pub unsafe fn vformat_entry(
    save: *const RegSave,
    overflow: *const u64,
    sink: &mut dyn FnMut(&[u8]),
) {
    // SAFETY: forwarded contract; one named integer argument (fmt).
    let mut va = unsafe { VaList::new(save, overflow, 1) };
    // SAFETY: `save` is valid; gp[0] holds `fmt`.
    let fmt = unsafe { (*save).gp[0] } as *const c_char;
    // SAFETY: the C caller's contract for printf-style calls.
    unsafe { vformat(fmt, &mut va, sink) };
}

/// Defines a naked x86_64 SysV C-variadic function `fn(fmt, ...)` that
/// spills its argument registers and calls `$imp(save: *const RegSave,
/// overflow: *const u64)` (an `extern "C"` function).
#[cfg(all(
    target_arch = "x86_64",
    any(target_os = "none", all(test, target_os = "linux"))
))]
macro_rules! va_entry {
    ($(#[$m:meta])* $name:ident => $imp:path) => {
        $(#[$m])*
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name(_fmt: *const c_char) {
            // Entry: rsp = 8 mod 16 (return address on top). 0xd8 bytes of
            // save area (6*8 GP + 8*16 XMM + 8 pad) make rsp 16-aligned, as
            // `movaps` and the call need. The overflow area (the caller's
            // stack arguments) starts right above the return address.
            core::arch::naked_asm!(
                "sub rsp, 0xd8",
                "mov [rsp + 0x00], rdi",
                "mov [rsp + 0x08], rsi",
                "mov [rsp + 0x10], rdx",
                "mov [rsp + 0x18], rcx",
                "mov [rsp + 0x20], r8",
                "mov [rsp + 0x28], r9",
                "test al, al",
                "je 2f",
                "movaps [rsp + 0x30], xmm0",
                "movaps [rsp + 0x40], xmm1",
                "movaps [rsp + 0x50], xmm2",
                "movaps [rsp + 0x60], xmm3",
                "movaps [rsp + 0x70], xmm4",
                "movaps [rsp + 0x80], xmm5",
                "movaps [rsp + 0x90], xmm6",
                "movaps [rsp + 0xa0], xmm7",
                "2:",
                "mov rdi, rsp",
                "lea rsi, [rsp + 0xe0]",
                "call {imp}",
                "add rsp, 0xd8",
                "ret",
                imp = sym $imp,
            )
        }
    };
}

#[cfg(all(target_os = "none", target_arch = "x86_64"))]
mod freestanding {
    //! The exported `rumpuser_dprintf` of freestanding targets.
    use super::*;

    extern "C" {
        /// Generated by `export_rumpuser!` in the platform crate.
        fn rumpuser__dprintf_write(buf: *const c_char, len: usize);
    }

    extern "C" fn dprintf_imp(save: *const RegSave, overflow: *const u64) {
        let mut sink = |b: &[u8]| {
            // SAFETY: a valid byte slice; the platform's console writer.
            unsafe { rumpuser__dprintf_write(b.as_ptr().cast(), b.len()) }
        };
        // SAFETY: called only from the naked entry below with its save
        // area and the caller's overflow area; the C caller passed
        // printf-conformant arguments.
        unsafe { vformat_entry(save, overflow, &mut sink) }
    }

    va_entry!(
        /// `void rumpuser_dprintf(const char *fmt, ...)` for freestanding
        /// x86_64 (C-variadic; see the module docs).
        #[no_mangle]
        rumpuser_dprintf => dprintf_imp
    );
}

#[cfg(all(test, target_arch = "x86_64", target_os = "linux"))]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::string::String;
    use std::vec::Vec;

    std::thread_local! {
        static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    extern "C" fn test_imp(save: *const RegSave, overflow: *const u64) {
        let mut sink = |b: &[u8]| OUT.with(|o| o.borrow_mut().extend_from_slice(b));
        // SAFETY: called from the naked entry with its own save area.
        unsafe { vformat_entry(save, overflow, &mut sink) }
    }

    va_entry!(test_dprintf => test_imp);

    fn take() -> String {
        OUT.with(|o| String::from_utf8(core::mem::take(&mut *o.borrow_mut())).unwrap())
    }

    type Variadic = unsafe extern "C" fn(*const c_char, ...);

    fn entry() -> Variadic {
        // SAFETY: `test_dprintf` is a naked SysV variadic entry; calling it
        // through a variadic pointer is exactly how C calls it.
        unsafe { core::mem::transmute::<*const (), Variadic>(test_dprintf as *const ()) }
    }

    #[test]
    fn integers_strings_and_flags() {
        let f = entry();
        // SAFETY: arguments match the format.
        unsafe {
            f(
                c"%d|%5d|%-5d|%05d|%+d|% d|%i\n".as_ptr(),
                -42i32,
                7i32,
                7i32,
                -7i32,
                3i32,
                3i32,
                0i32,
            )
        };
        assert_eq!(take(), "-42|    7|7    |-0007|+3| 3|0\n");
        // SAFETY: arguments match the format.
        unsafe {
            f(
                c"%u %x %X %#x %o %#o %c %% %s %.3s %8s|%-8s|%s".as_ptr(),
                4_000_000_000u32,
                255u32,
                255u32,
                255u32,
                8u32,
                8u32,
                b'Z' as i32,
                c"str".as_ptr(),
                c"abcdef".as_ptr(),
                c"r".as_ptr(),
                c"l".as_ptr(),
                core::ptr::null::<c_char>(),
            )
        };
        assert_eq!(
            take(),
            "4000000000 ff FF 0xff 10 010 Z % str abc        r|l       |(null)"
        );
    }

    #[test]
    fn lengths_pointers_and_many_arguments() {
        let f = entry();
        // SAFETY: arguments match the format; 12 variadic arguments, so
        // seven of them come from the stack (overflow area).
        unsafe {
            f(
                c"%zu %ld %lu %llu %lx %p %hhd %hd %d %s %d %llu".as_ptr(),
                usize::MAX,
                i64::MIN,
                u64::MAX,
                1234567890123u64,
                0xdead_beef_cafe_u64,
                0x1000usize as *const u8,
                0x1ffi32,
                0x1_8000i32,
                -1i32,
                c"stack".as_ptr(),
                99i32,
                77u64,
            )
        };
        assert_eq!(
            take(),
            "18446744073709551615 -9223372036854775808 18446744073709551615 1234567890123 \
             deadbeefcafe 0x1000 -1 -32768 -1 stack 99 77"
        );
    }

    #[test]
    fn doubles_in_registers_and_on_the_stack() {
        let f = entry();
        // SAFETY: arguments match the format; ten doubles (two on the
        // stack) interleaved with integers (some on the stack too).
        unsafe {
            f(
                c"%f %.2f %e %g %d %f %f %f %f %f %f %s %.1f %d".as_ptr(),
                1.5f64,
                2.345f64,
                12345.678f64,
                0.0001f64,
                1i32,
                -3.0f64,
                4.0f64,
                5.0f64,
                6.0f64,
                7.0f64,
                8.25f64,
                c"x".as_ptr(),
                9.75f64,
                2i32,
            )
        };
        assert_eq!(
            take(),
            "1.500000 2.35 1.234568e+04 0.0001 1 -3.000000 4.000000 5.000000 6.000000 7.000000 \
             8.250000 x 9.8 2"
        );
    }

    #[test]
    fn star_width_and_long_output() {
        let f = entry();
        // SAFETY: arguments match the format.
        unsafe {
            f(
                c"[%*d][%-*d][%.*s]".as_ptr(),
                6i32,
                42i32,
                4i32,
                1i32,
                2i32,
                c"abc".as_ptr(),
            )
        };
        assert_eq!(take(), "[    42][1   ][ab]");
        let long = [b'a'; 1000];
        let mut s = long.to_vec();
        s.push(0);
        // SAFETY: a NUL-terminated string argument.
        unsafe { f(c"<%s>%".as_ptr(), s.as_ptr()) };
        let o = take();
        assert_eq!(o.len(), 1003);
        assert!(o.starts_with("<aaaa") && o.ends_with("a>%"));
    }
}
