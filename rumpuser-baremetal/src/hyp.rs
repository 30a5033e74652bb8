//! `impl Hypervisor for Baremetal`: the hypercalls on bare x86_64.
//!
//! Scheduling (locks, cvs, threads, sleeps, curlwp) is the green core's,
//! through [`rumpuser_green::glue`]; the host half is this crate's:
//! memory from [`crate::heap`], clocks from [`crate::time`], randomness
//! from [`crate::random`], the serial console, disks from [`crate::disk`],
//! the syscall proxy on the kernel's own sockets ([`crate::sp`]), and exit
//! through `isa-debug-exit`.
//!
//! That host half is the [`pvh_hypervisor_host!`](crate::pvh_hypervisor_host)
//! macro (with the helpers below), which `rumpuser-xen` uses too with its
//! own command line, disks, clocks, console and exit.

use core::ffi::{c_int, c_void};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use rumpuser_core::param::ParamWriter;
use rumpuser_core::{Errno, HyperResult, Hypervisor};

/// The bare-metal hypervisor.
pub struct Baremetal;

/// The instance exported through the C ABI.
pub static BAREMETAL: Baremetal = Baremetal;

impl Hypervisor for Baremetal {
    rumpuser_green::green_hypervisor_sched!(
        guard = rumpuser_green::glue::no_guard,
        stack_size = crate::hyp::stack_size()
    );

    crate::pvh_hypervisor_host!(
        name = "baremetal",
        cmdline = crate::bootinfo::cmdline,
        disk = crate::disk,
        clock = crate::time,
        console = crate::serial::write_bytes,
        exit = crate::start::exit_status,
    );
}

/// The calling green thread's errno as last set by `rumpuser_seterrno`
/// (what `rump_sys_*` failures leave): bare-metal C programs have no libc
/// `errno`, so they read it with this function.
#[no_mangle]
pub extern "C" fn rumpuser_baremetal_errno() -> c_int {
    rumpuser_green::sched_core::errno()
}

/// The non-scheduling half of `impl Hypervisor` for a platform on this
/// crate's machine (one identity-mapped address space, [`crate::heap`],
/// [`crate::random`], parameters on the PVH command line), given:
///
/// * `name`: [`Hypervisor::NAME`]; messages say `rumpuser-<name>`, the
///   default host name is `rump-<name>`;
/// * `cmdline`: `fn() -> &'static str`, the boot command line;
/// * `disk`: a module with `open`, `close`, `getfileinfo`, `iov`, `sync`
///   and `bio` (as [`crate::disk`]);
/// * `clock`: a module with `wall()` and `now_ns()` (as [`crate::time`]);
/// * `console`: `fn(&[u8])`, console output;
/// * `exit`: `fn(u32) -> !`, the end with a [`crate::status`] value.
///
/// Use it inside the `impl Hypervisor` block, next to
/// `rumpuser_green::green_hypervisor_sched!` (with
/// [`stack_size`] as its stack size).
#[macro_export]
macro_rules! pvh_hypervisor_host {
    (
        name = $name:literal,
        cmdline = $cmdline:path,
        disk = $($disk:ident)::+,
        clock = $($clock:ident)::+,
        console = $console:path,
        exit = $exit:path $(,)?
    ) => {
        const NAME: &'static str = $name;

        fn init(&self) -> $crate::__core::HyperResult<()> {
            $crate::__core::diag::set_fatal(|| $exit($crate::status::PANIC));
            $crate::hyp::set_stack_size($cmdline());
            $crate::sp::set_cmdline($cmdline);
            // The scheduler, clocks and entropy were set up at boot.
            Ok(())
        }

        fn ncpu(&self) -> u32 {
            1
        }

        fn hostname(
            &self,
            out: &mut $crate::__core::param::ParamWriter<'_>,
        ) -> $crate::__core::HyperResult<()> {
            $crate::hyp::hostname($cmdline(), concat!("rump-", $name), out)
        }

        fn param(
            &self,
            name: &str,
            out: &mut $crate::__core::param::ParamWriter<'_>,
        ) -> $crate::__core::HyperResult<()> {
            $crate::hyp::param($cmdline(), name, out)
        }

        fn malloc(
            &self,
            len: usize,
            align: usize,
        ) -> $crate::__core::HyperResult<::core::ptr::NonNull<u8>> {
            $crate::heap::alloc(len, align).ok_or($crate::__core::Errno::ENOMEM)
        }

        unsafe fn free(&self, ptr: ::core::ptr::NonNull<u8>, len: usize) {
            // SAFETY: forwarded contract (`ptr` from `malloc` with this `len`).
            unsafe { $crate::heap::free(ptr, len) }
        }

        fn anonmmap(
            &self,
            _hint: *mut ::core::ffi::c_void,
            size: usize,
            alignbit: u32,
            _exec: bool,
        ) -> $crate::__core::HyperResult<::core::ptr::NonNull<u8>> {
            $crate::hyp::anonmmap(size, alignbit)
        }

        unsafe fn unmap(&self, addr: *mut ::core::ffi::c_void, len: usize) {
            // SAFETY: forwarded contract: a mapping from `anonmmap` of `len` bytes.
            unsafe { $crate::hyp::unmap(addr, len) }
        }

        fn open(
            &self,
            name: &::core::ffi::CStr,
            flags: $crate::__core::types::OpenFlags,
        ) -> $crate::__core::HyperResult<::core::ffi::c_int> {
            $($disk)::+::open(name, flags)
        }

        fn close(&self, fd: ::core::ffi::c_int) -> $crate::__core::HyperResult<()> {
            $($disk)::+::close(fd)
        }

        fn getfileinfo(
            &self,
            name: &::core::ffi::CStr,
            _want_size: bool,
        ) -> $crate::__core::HyperResult<(u64, $crate::__core::types::FileType)> {
            $($disk)::+::getfileinfo(name)
        }

        unsafe fn iovread(
            &self,
            fd: ::core::ffi::c_int,
            iov: &[$crate::__core::abi::IoVec],
            off: Option<u64>,
        ) -> $crate::__core::HyperResult<usize> {
            // SAFETY: forwarded contract (writable iovecs).
            unsafe { $($disk)::+::iov(fd, iov, off, false) }
        }

        unsafe fn iovwrite(
            &self,
            fd: ::core::ffi::c_int,
            iov: &[$crate::__core::abi::IoVec],
            off: Option<u64>,
        ) -> $crate::__core::HyperResult<usize> {
            // SAFETY: forwarded contract (readable iovecs).
            unsafe { $($disk)::+::iov(fd, iov, off, true) }
        }

        fn syncfd(
            &self,
            fd: ::core::ffi::c_int,
            flags: $crate::__core::types::SyncFlags,
            _start: u64,
            _len: u64,
        ) -> $crate::__core::HyperResult<()> {
            $($disk)::+::sync(fd, flags.write)
        }

        fn bio(&self, req: $crate::__core::bio::BioRequest) {
            $($disk)::+::bio(req)
        }

        fn clock_wall(&self) -> $crate::__core::HyperResult<(i64, i64)> {
            Ok($($clock)::+::wall())
        }

        #[inline]
        fn clock_monotonic(&self) -> $crate::__core::types::MonoNanos {
            $($clock)::+::now_ns()
        }

        fn getrandom(
            &self,
            buf: &mut [u8],
            flags: $crate::__core::types::RandomFlags,
        ) -> $crate::__core::HyperResult<usize> {
            $crate::random::fill(buf, flags)
        }

        fn putchar(&self, c: u8) {
            $console(&[c]);
        }

        fn console_write(&self, bytes: &[u8]) {
            $console(bytes);
        }

        fn set_errno(&self, error: ::core::ffi::c_int) {
            $crate::__green::sched_core::set_errno(error);
        }

        fn kill(&self, _pid: i64, _sig: ::core::ffi::c_int) -> $crate::__core::HyperResult<()> {
            // There is no host process to signal: the advice is ignored, as
            // on rumprun (the kernel ignores the return value).
            Ok(())
        }

        fn exit(&self, how: $crate::__core::types::ExitKind) -> ! {
            $exit($crate::hyp::exit_value(concat!("rumpuser-", $name), how))
        }

        fn sysproxy(&self) -> Option<&dyn $crate::__core::sysproxy::SysProxy> {
            Some(&$crate::sp::SYSPROXY)
        }
    };
}

/// Stack size of kernel threads (`RUMPUSER_STACK`, default 256 KiB).
static STACK_SIZE: AtomicUsize = AtomicUsize::new(256 * 1024);

/// The stack size of kernel threads.
pub fn stack_size() -> usize {
    STACK_SIZE.load(Ordering::Relaxed)
}

/// Takes `RUMPUSER_STACK` (at least 16 KiB) from the command line.
pub fn set_stack_size(cmdline: &str) {
    if let Some(s) = crate::cmdline::param_u64(cmdline, "RUMPUSER_STACK") {
        STACK_SIZE.store((s as usize).max(16 * 1024), Ordering::Relaxed);
    }
}

/// `rumpuser_getparam("_RUMPUSER_HOSTNAME")`: `hostname=` or
/// `RUMP_HOSTNAME=` from the command line, else `default`.
pub fn hostname(cmdline: &str, default: &str, out: &mut ParamWriter<'_>) -> HyperResult<()> {
    let h = crate::cmdline::param(cmdline, "hostname")
        .or_else(|| crate::cmdline::param(cmdline, "RUMP_HOSTNAME"))
        .filter(|h| !h.is_empty())
        .unwrap_or(default);
    out.push_str(h);
    Ok(())
}

/// `rumpuser_getparam`: the command line's `name=value`, else (for
/// `RUMP_MEMLIMIT`) half of the heap.
pub fn param(cmdline: &str, name: &str, out: &mut ParamWriter<'_>) -> HyperResult<()> {
    if let Some(v) = crate::cmdline::param(cmdline, name) {
        out.push_str(v);
        return Ok(());
    }
    if name == "RUMP_MEMLIMIT" {
        // As rumprun: half of the memory, so the kernel's page daemon
        // runs before the heap is exhausted.
        let mut buf = [0u8; 24];
        let s = decimal(crate::heap::usage().0 as u64 / 2, &mut buf);
        out.push_str(s);
        return Ok(());
    }
    Err(Errno::ENOENT)
}

/// `rumpuser_anonmmap`: one identity-mapped address space, so "mapping"
/// is zeroed, page aligned heap memory (executable like all memory
/// here); the placement hint cannot be honoured and is not needed when
/// the kernel is linked statically.
pub fn anonmmap(size: usize, alignbit: u32) -> HyperResult<NonNull<u8>> {
    if size == 0 || alignbit >= 40 {
        return Err(Errno::EINVAL);
    }
    let align = (1usize << alignbit).max(4096);
    crate::heap::alloc_zeroed(size.next_multiple_of(4096), align).ok_or(Errno::ENOMEM)
}

/// `rumpuser_unmap` of an [`anonmmap`] mapping.
///
/// # Safety
/// `addr` is null or a mapping from [`anonmmap`] of `len` bytes, unused
/// afterwards.
pub unsafe fn unmap(addr: *mut c_void, len: usize) {
    if let Some(p) = NonNull::new(addr.cast::<u8>()) {
        // SAFETY: the caller's contract: a mapping from `anonmmap` of `len` bytes.
        unsafe { crate::heap::free(p, len.next_multiple_of(4096)) }
    }
}

/// Reports `rumpuser_exit` on the console (as `who`) and returns the
/// [`crate::status`] value to end with.
pub fn exit_value(who: &str, how: rumpuser_core::types::ExitKind) -> u32 {
    match how {
        rumpuser_core::types::ExitKind::Panic => {
            crate::kprintln!("{who}: rumpuser_exit(RUMPUSER_PANIC)");
            crate::status::PANIC
        }
        rumpuser_core::types::ExitKind::Status(s) => {
            crate::kprintln!("{who}: halted (exit status {s})");
            crate::status::from_exit_value(s)
        }
    }
}

/// Formats `v` in decimal into `buf`.
fn decimal(mut v: u64, buf: &mut [u8; 24]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    core::str::from_utf8(&buf[i..]).unwrap_or("0")
}
