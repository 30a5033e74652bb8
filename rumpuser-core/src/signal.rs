//! NetBSD signal numbers and their Linux equivalents (`rumpuser_sigtrans.c`).
//!
//! `rumpuser_kill` and the sysproxy `RAISE` request carry NetBSD numbers;
//! a POSIX host must translate before raising.

use core::ffi::c_int;

#[allow(missing_docs)]
pub mod netbsd {
    use core::ffi::c_int;
    pub const SIGHUP: c_int = 1;
    pub const SIGINT: c_int = 2;
    pub const SIGQUIT: c_int = 3;
    pub const SIGILL: c_int = 4;
    pub const SIGTRAP: c_int = 5;
    pub const SIGABRT: c_int = 6;
    pub const SIGEMT: c_int = 7;
    pub const SIGFPE: c_int = 8;
    pub const SIGKILL: c_int = 9;
    pub const SIGBUS: c_int = 10;
    pub const SIGSEGV: c_int = 11;
    pub const SIGSYS: c_int = 12;
    pub const SIGPIPE: c_int = 13;
    pub const SIGALRM: c_int = 14;
    pub const SIGTERM: c_int = 15;
    pub const SIGURG: c_int = 16;
    pub const SIGSTOP: c_int = 17;
    pub const SIGTSTP: c_int = 18;
    pub const SIGCONT: c_int = 19;
    pub const SIGCHLD: c_int = 20;
    pub const SIGTTIN: c_int = 21;
    pub const SIGTTOU: c_int = 22;
    pub const SIGIO: c_int = 23;
    pub const SIGXCPU: c_int = 24;
    pub const SIGXFSZ: c_int = 25;
    pub const SIGVTALRM: c_int = 26;
    pub const SIGPROF: c_int = 27;
    pub const SIGWINCH: c_int = 28;
    pub const SIGINFO: c_int = 29;
    pub const SIGUSR1: c_int = 30;
    pub const SIGUSR2: c_int = 31;
    pub const SIGPWR: c_int = 32;
}

/// NetBSD signal number to Linux (x86_64) signal number. `Some(0)` for signal
/// 0 ("no signal"); `None` where Linux has no equivalent (SIGEMT, SIGINFO,
/// anything at or above 33, negative numbers).
pub const fn netbsd_to_linux(sig: c_int) -> Option<c_int> {
    match sig {
        0 => Some(0),
        1 => Some(1),
        2 => Some(2),
        3 => Some(3),
        4 => Some(4),
        5 => Some(5),
        6 => Some(6),
        8 => Some(8),
        9 => Some(9),
        10 => Some(7),
        11 => Some(11),
        12 => Some(31),
        13 => Some(13),
        14 => Some(14),
        15 => Some(15),
        16 => Some(23),
        17 => Some(19),
        18 => Some(20),
        19 => Some(18),
        20 => Some(17),
        21 => Some(21),
        22 => Some(22),
        23 => Some(29),
        24 => Some(24),
        25 => Some(25),
        26 => Some(26),
        27 => Some(27),
        28 => Some(28),
        30 => Some(10),
        31 => Some(12),
        32 => Some(30),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_contract() {
        assert_eq!(netbsd_to_linux(netbsd::SIGBUS), Some(7));
        assert_eq!(netbsd_to_linux(netbsd::SIGUSR1), Some(10));
        assert_eq!(netbsd_to_linux(netbsd::SIGCHLD), Some(17));
        assert_eq!(netbsd_to_linux(netbsd::SIGEMT), None);
        assert_eq!(netbsd_to_linux(netbsd::SIGINFO), None);
        assert_eq!(netbsd_to_linux(33), None);
        assert_eq!(netbsd_to_linux(-1), None);
        assert_eq!(netbsd_to_linux(0), Some(0));
    }
}
