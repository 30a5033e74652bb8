//! The rumpuser version 17 C ABI in Rust: every constant of `rumpuser.h`,
//! the `rumpuser_hyperup` upcall table and `rumpuser_iovec`, with their
//! layouts checked at compile time.
//!
//! Nothing here has behaviour; this module is the API boundary between the
//! kernel's C view of the interface and the Rust types used everywhere else.
//! Values come from `rumpuser.h` rev 1.114 (contract section 1.1).

use core::ffi::{c_char, c_int, c_long, c_void};
use core::mem::{offset_of, size_of};

/// Interface revision the kernel passes to `rumpuser_init`.
pub const RUMPUSER_VERSION: c_int = 17;

/// `rumpuser_open` access mode: read only.
pub const RUMPUSER_OPEN_RDONLY: c_int = 0x0000;
/// `rumpuser_open` access mode: write only.
pub const RUMPUSER_OPEN_WRONLY: c_int = 0x0001;
/// `rumpuser_open` access mode: read and write.
pub const RUMPUSER_OPEN_RDWR: c_int = 0x0002;
/// Mask selecting the access mode bits.
pub const RUMPUSER_OPEN_ACCMODE: c_int = 0x0003;
/// Create the file if it does not exist.
pub const RUMPUSER_OPEN_CREATE: c_int = 0x0004;
/// With `CREATE`: fail with `EEXIST` if the file exists.
pub const RUMPUSER_OPEN_EXCL: c_int = 0x0008;
/// Advisory: the descriptor will be used with `rumpuser_bio`.
pub const RUMPUSER_OPEN_BIO: c_int = 0x0010;
/// Every flag bit `rumpuser_open` understands.
pub const RUMPUSER_OPEN_ALLFLAGS: c_int =
    RUMPUSER_OPEN_ACCMODE | RUMPUSER_OPEN_CREATE | RUMPUSER_OPEN_EXCL | RUMPUSER_OPEN_BIO;

/// File type: unknown.
pub const RUMPUSER_FT_OTHER: c_int = 0;
/// File type: directory.
pub const RUMPUSER_FT_DIR: c_int = 1;
/// File type: regular file.
pub const RUMPUSER_FT_REG: c_int = 2;
/// File type: block device.
pub const RUMPUSER_FT_BLK: c_int = 3;
/// File type: character device.
pub const RUMPUSER_FT_CHR: c_int = 4;

/// bio operation: read.
pub const RUMPUSER_BIO_READ: c_int = 0x01;
/// bio operation: write.
pub const RUMPUSER_BIO_WRITE: c_int = 0x02;
/// bio modifier: the write must be durable before completion.
pub const RUMPUSER_BIO_SYNC: c_int = 0x04;

/// iov offset meaning "use and advance the current file position".
pub const RUMPUSER_IOV_NOSEEK: i64 = -1;

/// syncfd: synchronise reads.
pub const RUMPUSER_SYNCFD_READ: c_int = 0x01;
/// syncfd: synchronise writes.
pub const RUMPUSER_SYNCFD_WRITE: c_int = 0x02;
/// syncfd: both directions.
pub const RUMPUSER_SYNCFD_BOTH: c_int = RUMPUSER_SYNCFD_READ | RUMPUSER_SYNCFD_WRITE;
/// syncfd: barrier.
pub const RUMPUSER_SYNCFD_BARRIER: c_int = 0x04;
/// syncfd: flush to stable storage.
pub const RUMPUSER_SYNCFD_SYNC: c_int = 0x08;

/// `enum rumpclock`: wall clock for `clock_gettime`, a relative duration for `clock_sleep`.
pub const RUMPUSER_CLOCK_RELWALL: c_int = 0;
/// `enum rumpclock`: the monotonic clock; an absolute deadline for `clock_sleep`.
pub const RUMPUSER_CLOCK_ABSMONO: c_int = 1;

/// Mandatory parameter: number of virtual CPUs.
pub const RUMPUSER_PARAM_NCPU: &str = "_RUMPUSER_NCPU";
/// Mandatory parameter: initial host name.
pub const RUMPUSER_PARAM_HOSTNAME: &str = "_RUMPUSER_HOSTNAME";

/// "No pid hint" for `rumpuser_kill`.
pub const RUMPUSER_PID_SELF: i64 = -1;
/// Special exit value for `rumpuser_exit`: crash-dump style termination.
pub const RUMPUSER_PANIC: c_int = -1;

/// getrandom: true entropy preferred.
pub const RUMPUSER_RANDOM_HARD: c_int = 0x01;
/// getrandom: do not block.
pub const RUMPUSER_RANDOM_NOWAIT: c_int = 0x02;

/// `enum rumplwpop`: an lwp became valid.
pub const RUMPUSER_LWP_CREATE: c_int = 0;
/// `enum rumplwpop`: an lwp is gone.
pub const RUMPUSER_LWP_DESTROY: c_int = 1;
/// `enum rumplwpop`: bind an lwp to the calling thread.
pub const RUMPUSER_LWP_SET: c_int = 2;
/// `enum rumplwpop`: unbind the calling thread's lwp.
pub const RUMPUSER_LWP_CLEAR: c_int = 3;

/// Mutex flag: spin semantics (never gives up the virtual CPU).
pub const RUMPUSER_MTX_SPIN: c_int = 0x01;
/// Mutex flag: kernel mutex (owner tracked).
pub const RUMPUSER_MTX_KMUTEX: c_int = 0x02;

/// `enum rumprwlock`: reader.
pub const RUMPUSER_RW_READER: c_int = 0;
/// `enum rumprwlock`: writer.
pub const RUMPUSER_RW_WRITER: c_int = 1;

/// NetBSD `MAXHOSTNAMELEN`, the buffer the kernel passes for the host name.
pub const MAXHOSTNAMELEN: usize = 256;
/// amd64 `MAXCPUS`: the kernel clamps `_RUMPUSER_NCPU` to this.
pub const MAXCPUS: u32 = 256;

/// The kernel's `struct lwp`, opaque to the hypervisor.
#[repr(C)]
pub struct Lwp {
    _opaque: [u8; 0],
}

/// `rump_biodone_fn`: completes one `rumpuser_bio` request.
pub type BiodoneFn = unsafe extern "C" fn(donearg: *mut c_void, bytes_done: usize, error: c_int);
/// `rump_modinit_fn`.
pub type ModinitFn = unsafe extern "C" fn(mi: *const *const c_void, count: usize);
/// `rump_symload_fn`.
pub type SymloadFn = unsafe extern "C" fn(
    symtab: *mut c_void,
    symtab_bytes: u64,
    strtab: *mut c_char,
    strtab_bytes: u64,
) -> c_int;
/// `rump_compload_fn`.
pub type CompLoadFn = unsafe extern "C" fn(rc: *const c_void);
/// Thread entry point passed to `rumpuser_thread_create`.
pub type ThreadFn = unsafe extern "C" fn(arg: *mut c_void) -> *mut c_void;

/// `struct rumpuser_hyperup`: the kernel's upcall table (field order is ABI).
///
/// Every pointer is an `Option` so that a table handed over by a test or a
/// partial kernel cannot make the hypervisor call through NULL.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Hyperup {
    /// `rump_schedule`: full kernel entry for a thread holding no CPU.
    pub hyp_schedule: Option<unsafe extern "C" fn()>,
    /// `rump_unschedule`: release the CPU after a full entry.
    pub hyp_unschedule: Option<unsafe extern "C" fn()>,
    /// `rump_user_unschedule(nlocks, &count, interlock)`.
    pub hyp_backend_unschedule:
        Option<unsafe extern "C" fn(nlocks: c_int, countp: *mut c_int, interlock: *mut c_void)>,
    /// `rump_user_schedule(nlocks, interlock)`.
    pub hyp_backend_schedule: Option<unsafe extern "C" fn(nlocks: c_int, interlock: *mut c_void)>,
    /// `rump_lwproc_switch(l)`.
    pub hyp_lwproc_switch: Option<unsafe extern "C" fn(l: *mut Lwp)>,
    /// `rump_lwproc_releaselwp()`.
    pub hyp_lwproc_release: Option<unsafe extern "C" fn()>,
    /// sysproxy `hyp_rfork(priv, flags, comm)`.
    pub hyp_lwproc_rfork: Option<
        unsafe extern "C" fn(priv_: *mut c_void, flags: c_int, comm: *const c_char) -> c_int,
    >,
    /// `rump_lwproc_newlwp(pid)`.
    pub hyp_lwproc_newlwp: Option<unsafe extern "C" fn(pid: i32) -> c_int>,
    /// `rump_lwproc_curlwp()`.
    pub hyp_lwproc_curlwp: Option<unsafe extern "C" fn() -> *mut Lwp>,
    /// sysproxy `hyp_syscall(num, args, retval[2])`.
    pub hyp_syscall:
        Option<unsafe extern "C" fn(num: c_int, args: *mut c_void, retval: *mut c_long) -> c_int>,
    /// sysproxy `hyp_lwpexit()`.
    pub hyp_lwpexit: Option<unsafe extern "C" fn()>,
    /// sysproxy `hyp_execnotify(comm)`.
    pub hyp_execnotify: Option<unsafe extern "C" fn(comm: *const c_char)>,
    /// sysproxy `hyp_getpid()`.
    pub hyp_getpid: Option<unsafe extern "C" fn() -> i32>,
    /// Reserved, zero.
    pub hyp_extra: [*mut c_void; 8],
}

// SAFETY: the table only holds function pointers and reserved (unused) raw
// pointers; the kernel's copy is a static const object valid for the whole
// process, so sharing it between threads is what the kernel expects.
unsafe impl Sync for Hyperup {}
// SAFETY: see the `Sync` impl above.
unsafe impl Send for Hyperup {}

/// `struct rumpuser_iovec`, identical in layout to POSIX `struct iovec`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IoVec {
    /// Start of the buffer.
    pub iov_base: *mut c_void,
    /// Length of the buffer in bytes.
    pub iov_len: usize,
}

#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<Hyperup>() == 168);
    assert!(offset_of!(Hyperup, hyp_schedule) == 0);
    assert!(offset_of!(Hyperup, hyp_unschedule) == 8);
    assert!(offset_of!(Hyperup, hyp_backend_unschedule) == 16);
    assert!(offset_of!(Hyperup, hyp_backend_schedule) == 24);
    assert!(offset_of!(Hyperup, hyp_lwproc_switch) == 32);
    assert!(offset_of!(Hyperup, hyp_lwproc_release) == 40);
    assert!(offset_of!(Hyperup, hyp_lwproc_rfork) == 48);
    assert!(offset_of!(Hyperup, hyp_lwproc_newlwp) == 56);
    assert!(offset_of!(Hyperup, hyp_lwproc_curlwp) == 64);
    assert!(offset_of!(Hyperup, hyp_syscall) == 72);
    assert!(offset_of!(Hyperup, hyp_lwpexit) == 80);
    assert!(offset_of!(Hyperup, hyp_execnotify) == 88);
    assert!(offset_of!(Hyperup, hyp_getpid) == 96);
    assert!(offset_of!(Hyperup, hyp_extra) == 104);
    assert!(size_of::<IoVec>() == 16);
    assert!(offset_of!(IoVec, iov_base) == 0);
    assert!(offset_of!(IoVec, iov_len) == 8);
};
