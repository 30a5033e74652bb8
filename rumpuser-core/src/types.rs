//! Typed arguments of the hypercalls: what the C ABI passes as bare `int`
//! flags and enums, validated once at the boundary so that a platform only
//! ever sees legal values.

use crate::abi::*;
use crate::errno::Errno;
use core::ffi::c_int;

/// Monotonic nanoseconds since an arbitrary origin; every deadline uses it.
pub type MonoNanos = u64;

/// Nanoseconds per second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Converts a relative `(sec, nsec)` pair into a monotonic deadline, saturating
/// instead of overflowing. Negative durations give `now` (an expired deadline).
pub fn deadline_after(now: MonoNanos, sec: i64, nsec: i64) -> MonoNanos {
    if sec < 0 || (sec == 0 && nsec <= 0) {
        return now;
    }
    let total = (sec as u64)
        .saturating_mul(NANOS_PER_SEC)
        .saturating_add(nsec.max(0) as u64);
    now.saturating_add(total)
}

/// Converts an absolute monotonic `(sec, nsec)` pair into nanoseconds.
pub fn absolute_deadline(sec: i64, nsec: i64) -> MonoNanos {
    if sec < 0 {
        return 0;
    }
    (sec as u64)
        .saturating_mul(NANOS_PER_SEC)
        .saturating_add(nsec.max(0) as u64)
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Signalled, broadcast, or a spurious wakeup (all legal for the kernel).
    Woken,
    /// The deadline passed (never reported before it).
    TimedOut,
}

/// Access mode of `rumpuser_open`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessMode {
    /// `RUMPUSER_OPEN_RDONLY`.
    ReadOnly,
    /// `RUMPUSER_OPEN_WRONLY`.
    WriteOnly,
    /// `RUMPUSER_OPEN_RDWR`.
    ReadWrite,
}

/// Validated `rumpuser_open` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFlags {
    /// Access mode.
    pub access: AccessMode,
    /// Create the file if missing.
    pub create: bool,
    /// With `create`: fail with `EEXIST` if it exists.
    pub exclusive: bool,
    /// Advisory: will be used for block I/O.
    pub bio: bool,
}

impl OpenFlags {
    /// Parses the raw flags; unknown bits, access mode 3 and `EXCL` without
    /// `CREATE` are `EINVAL`.
    pub fn from_raw(mode: c_int) -> Result<OpenFlags, Errno> {
        if mode & !RUMPUSER_OPEN_ALLFLAGS != 0 {
            return Err(Errno::EINVAL);
        }
        let access = match mode & RUMPUSER_OPEN_ACCMODE {
            RUMPUSER_OPEN_RDONLY => AccessMode::ReadOnly,
            RUMPUSER_OPEN_WRONLY => AccessMode::WriteOnly,
            RUMPUSER_OPEN_RDWR => AccessMode::ReadWrite,
            _ => return Err(Errno::EINVAL),
        };
        let create = mode & RUMPUSER_OPEN_CREATE != 0;
        let exclusive = mode & RUMPUSER_OPEN_EXCL != 0;
        if exclusive && !create {
            return Err(Errno::EINVAL);
        }
        Ok(OpenFlags {
            access,
            create,
            exclusive,
            bio: mode & RUMPUSER_OPEN_BIO != 0,
        })
    }
}

/// `RUMPUSER_FT_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// Unknown or other.
    Other,
    /// Directory.
    Dir,
    /// Regular file.
    Regular,
    /// Block device.
    Block,
    /// Character device.
    Char,
}

impl FileType {
    /// The C value.
    pub const fn raw(self) -> c_int {
        match self {
            FileType::Other => RUMPUSER_FT_OTHER,
            FileType::Dir => RUMPUSER_FT_DIR,
            FileType::Regular => RUMPUSER_FT_REG,
            FileType::Block => RUMPUSER_FT_BLK,
            FileType::Char => RUMPUSER_FT_CHR,
        }
    }
}

/// Validated `rumpuser_bio` operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BioOp {
    /// Read into the buffer.
    Read,
    /// Write from the buffer; `sync` means durable before completion.
    Write {
        /// `RUMPUSER_BIO_SYNC` was given.
        sync: bool,
    },
}

impl BioOp {
    /// Parses the raw op: exactly one of READ/WRITE, SYNC only with WRITE
    /// (SYNC on a read is accepted and ignored, as the kernel never sends it
    /// and it asks for nothing a read could violate).
    pub fn from_raw(op: c_int) -> Result<BioOp, Errno> {
        let known = RUMPUSER_BIO_READ | RUMPUSER_BIO_WRITE | RUMPUSER_BIO_SYNC;
        if op & !known != 0 {
            return Err(Errno::EINVAL);
        }
        match (op & RUMPUSER_BIO_READ != 0, op & RUMPUSER_BIO_WRITE != 0) {
            (true, false) => Ok(BioOp::Read),
            (false, true) => Ok(BioOp::Write {
                sync: op & RUMPUSER_BIO_SYNC != 0,
            }),
            _ => Err(Errno::EINVAL),
        }
    }
}

/// Validated `rumpuser_syncfd` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncFlags {
    /// `RUMPUSER_SYNCFD_READ`.
    pub read: bool,
    /// `RUMPUSER_SYNCFD_WRITE`.
    pub write: bool,
    /// `RUMPUSER_SYNCFD_BARRIER`.
    pub barrier: bool,
    /// `RUMPUSER_SYNCFD_SYNC`: to stable storage (the reference forgets this).
    pub sync: bool,
}

impl SyncFlags {
    /// Parses the raw flags: READ and/or WRITE is mandatory, unknown bits are `EINVAL`.
    pub fn from_raw(flags: c_int) -> Result<SyncFlags, Errno> {
        let known = RUMPUSER_SYNCFD_BOTH | RUMPUSER_SYNCFD_BARRIER | RUMPUSER_SYNCFD_SYNC;
        if flags & !known != 0 || flags & RUMPUSER_SYNCFD_BOTH == 0 {
            return Err(Errno::EINVAL);
        }
        Ok(SyncFlags {
            read: flags & RUMPUSER_SYNCFD_READ != 0,
            write: flags & RUMPUSER_SYNCFD_WRITE != 0,
            barrier: flags & RUMPUSER_SYNCFD_BARRIER != 0,
            sync: flags & RUMPUSER_SYNCFD_SYNC != 0,
        })
    }
}

/// Validated `rumpuser_getrandom` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomFlags {
    /// True entropy wanted.
    pub hard: bool,
    /// Must not block.
    pub nowait: bool,
}

impl RandomFlags {
    /// Parses the raw flags; unknown bits are `EINVAL`.
    pub fn from_raw(flags: c_int) -> Result<RandomFlags, Errno> {
        if flags & !(RUMPUSER_RANDOM_HARD | RUMPUSER_RANDOM_NOWAIT) != 0 {
            return Err(Errno::EINVAL);
        }
        Ok(RandomFlags {
            hard: flags & RUMPUSER_RANDOM_HARD != 0,
            nowait: flags & RUMPUSER_RANDOM_NOWAIT != 0,
        })
    }
}

/// Validated mutex flags (at least one of SPIN, KMUTEX).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MutexFlags {
    /// Never give up the virtual CPU while acquiring.
    pub spin: bool,
    /// A kernel mutex: the kernel asks for its owner lwp
    /// (`rumpuser_mutex_owner`, `mutex_owned()`).
    pub kmutex: bool,
}

impl MutexFlags {
    /// Parses the raw flags; `None` for 0 or unknown bits.
    pub fn from_raw(flags: c_int) -> Option<MutexFlags> {
        if flags == 0 || flags & !(RUMPUSER_MTX_SPIN | RUMPUSER_MTX_KMUTEX) != 0 {
            return None;
        }
        Some(MutexFlags {
            spin: flags & RUMPUSER_MTX_SPIN != 0,
            kmutex: flags & RUMPUSER_MTX_KMUTEX != 0,
        })
    }
}

impl core::fmt::Display for MutexFlags {
    /// `SPIN`, `KMUTEX` or `SPIN|KMUTEX`, as the C flags are spelt.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match (self.spin, self.kmutex) {
            (true, true) => "SPIN|KMUTEX",
            (true, false) => "SPIN",
            (false, true) => "KMUTEX",
            (false, false) => "no flags",
        })
    }
}

/// `enum rumprwlock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RwMode {
    /// Shared.
    Reader,
    /// Exclusive.
    Writer,
}

impl RwMode {
    /// Parses the raw enum.
    pub fn from_raw(op: c_int) -> Option<RwMode> {
        match op {
            RUMPUSER_RW_READER => Some(RwMode::Reader),
            RUMPUSER_RW_WRITER => Some(RwMode::Writer),
            _ => None,
        }
    }
}

/// How `rumpuser_exit` ends the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// `RUMPUSER_PANIC`: crash-dump style termination.
    Panic,
    /// A normal exit status.
    Status(c_int),
}

/// Scheduling hints of `rumpuser_thread_create`.
#[derive(Clone, Copy, Debug)]
pub struct ThreadSpec<'a> {
    /// Thread name (the caller's buffer may be on its stack: copy it).
    pub name: Option<&'a core::ffi::CStr>,
    /// The thread will be joined.
    pub joinable: bool,
    /// Kernel priority, a hint.
    pub priority: c_int,
    /// Virtual CPU the thread is bound to, or -1; a hint.
    pub cpuidx: c_int,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_reject_bad_input() {
        assert_eq!(OpenFlags::from_raw(3), Err(Errno::EINVAL));
        assert_eq!(OpenFlags::from_raw(0x100), Err(Errno::EINVAL));
        assert_eq!(OpenFlags::from_raw(RUMPUSER_OPEN_EXCL), Err(Errno::EINVAL));
        let f = OpenFlags::from_raw(RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_BIO).unwrap();
        assert_eq!(f.access, AccessMode::ReadWrite);
        assert!(f.bio && !f.create);
    }

    #[test]
    fn bio_and_sync_flags() {
        assert_eq!(BioOp::from_raw(3), Err(Errno::EINVAL));
        assert_eq!(BioOp::from_raw(0), Err(Errno::EINVAL));
        assert_eq!(BioOp::from_raw(6), Ok(BioOp::Write { sync: true }));
        assert_eq!(
            SyncFlags::from_raw(RUMPUSER_SYNCFD_SYNC),
            Err(Errno::EINVAL)
        );
        assert!(
            SyncFlags::from_raw(RUMPUSER_SYNCFD_WRITE | RUMPUSER_SYNCFD_SYNC)
                .unwrap()
                .sync
        );
        assert!(MutexFlags::from_raw(0).is_none());
        assert!(RandomFlags::from_raw(4).is_err());
    }

    #[test]
    fn deadlines_saturate_and_never_go_backwards() {
        assert_eq!(deadline_after(100, 0, 0), 100);
        assert_eq!(deadline_after(100, -5, 0), 100);
        assert_eq!(deadline_after(100, 1, 5), 100 + NANOS_PER_SEC + 5);
        assert_eq!(deadline_after(u64::MAX - 1, 10, 0), u64::MAX);
        assert_eq!(absolute_deadline(2, 3), 2 * NANOS_PER_SEC + 3);
    }
}
