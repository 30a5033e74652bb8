//! The host calls behind the mapping: how big a descriptor is, mapping and
//! unmapping it, and the calling thread's major-fault count.

use core::ffi::c_int;

/// The size to map for `fd`: a regular file's length or a block device's
/// (`BLKGETSIZE64`); `None` for anything else, an empty file or a size the
/// address space cannot hold.
pub fn mappable_size(fd: c_int) -> Option<usize> {
    // SAFETY: `fstat` fills the zeroed struct we own.
    let st = unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return None;
        }
        st
    };
    let size: u64 = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => u64::try_from(st.st_size).ok()?,
        libc::S_IFBLK => crate::sys::fs::block_device_size(fd).ok()?,
        _ => return None,
    };
    // Half the address space at most: a mapping must leave room for the rest.
    (size > 0 && size <= (isize::MAX as u64) / 2).then_some(size as usize)
}

/// Maps `len` bytes of `fd` shared and read-only, advised random access
/// (a fault reads just the page it needs, no read-around).
pub fn map_shared_readonly(fd: c_int, len: usize) -> Option<*mut u8> {
    // SAFETY: a fresh mapping chosen by the host; it aliases nothing of ours.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: advice on the mapping just made; failure only loses the advice.
    unsafe { libc::madvise(p, len, libc::MADV_RANDOM) };
    Some(p.cast())
}

/// Unmaps what [`map_shared_readonly`] mapped.
pub fn unmap(base: *mut u8, len: usize) {
    if base.is_null() {
        return;
    }
    // SAFETY: `base..+len` is a mapping of ours no copy is using any more
    // (the caller waited for the readers).
    unsafe { libc::munmap(base.cast(), len) };
}

/// Major faults (page faults that waited for I/O) of the calling thread.
pub fn thread_major_faults() -> u64 {
    #[cfg(target_os = "linux")]
    const WHO: c_int = libc::RUSAGE_THREAD;
    #[cfg(not(target_os = "linux"))]
    const WHO: c_int = libc::RUSAGE_SELF;
    // SAFETY: `getrusage` fills the zeroed struct we own.
    unsafe {
        let mut ru: libc::rusage = core::mem::zeroed();
        if libc::getrusage(WHO, &mut ru) != 0 {
            return 0;
        }
        ru.ru_majflt as u64
    }
}
