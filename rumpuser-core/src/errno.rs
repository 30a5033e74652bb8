//! NetBSD errno numbers and the host-to-NetBSD translation table.
//!
//! Every `int` a hypercall returns is a NetBSD errno (contract 0 and 3.9).
//! Only this module knows the numbers; everything else uses [`Errno`].
//! The Linux table is `rumpuser_errtrans.c` resolved for x86_64 Linux/glibc:
//! 0 maps to 0 and any host value without a NetBSD twin maps to `EINVAL`.

use core::ffi::c_int;
use core::fmt;

/// A NetBSD errno value (never zero).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(c_int);

impl Errno {
    /// Wraps a raw NetBSD errno value. Zero or negative values become `EINVAL`,
    /// because an error must never read as success.
    pub const fn from_raw(v: c_int) -> Errno {
        if v > 0 {
            Errno(v)
        } else {
            Errno::EINVAL
        }
    }

    /// The raw NetBSD number, as returned across the C ABI.
    pub const fn raw(self) -> c_int {
        self.0
    }

    /// Translates a Linux errno into NetBSD numbering (`rumpuser_component_errtrans`).
    pub const fn from_linux(host: c_int) -> Errno {
        Errno(linux_to_netbsd(host))
    }

    /// The symbolic name, e.g. `"ENOENT"`, or `"E?"` for an unknown value.
    pub const fn name(self) -> &'static str {
        match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            3 => "ESRCH",
            4 => "EINTR",
            5 => "EIO",
            6 => "ENXIO",
            7 => "E2BIG",
            8 => "ENOEXEC",
            9 => "EBADF",
            10 => "ECHILD",
            11 => "EDEADLK",
            12 => "ENOMEM",
            13 => "EACCES",
            14 => "EFAULT",
            15 => "ENOTBLK",
            16 => "EBUSY",
            17 => "EEXIST",
            18 => "EXDEV",
            19 => "ENODEV",
            20 => "ENOTDIR",
            21 => "EISDIR",
            22 => "EINVAL",
            23 => "ENFILE",
            24 => "EMFILE",
            25 => "ENOTTY",
            26 => "ETXTBSY",
            27 => "EFBIG",
            28 => "ENOSPC",
            29 => "ESPIPE",
            30 => "EROFS",
            31 => "EMLINK",
            32 => "EPIPE",
            33 => "EDOM",
            34 => "ERANGE",
            35 => "EAGAIN",
            36 => "EINPROGRESS",
            37 => "EALREADY",
            38 => "ENOTSOCK",
            39 => "EDESTADDRREQ",
            40 => "EMSGSIZE",
            41 => "EPROTOTYPE",
            42 => "ENOPROTOOPT",
            43 => "EPROTONOSUPPORT",
            44 => "ESOCKTNOSUPPORT",
            45 => "EOPNOTSUPP",
            46 => "EPFNOSUPPORT",
            47 => "EAFNOSUPPORT",
            48 => "EADDRINUSE",
            49 => "EADDRNOTAVAIL",
            50 => "ENETDOWN",
            51 => "ENETUNREACH",
            52 => "ENETRESET",
            53 => "ECONNABORTED",
            54 => "ECONNRESET",
            55 => "ENOBUFS",
            56 => "EISCONN",
            57 => "ENOTCONN",
            58 => "ESHUTDOWN",
            59 => "ETOOMANYREFS",
            60 => "ETIMEDOUT",
            61 => "ECONNREFUSED",
            62 => "ELOOP",
            63 => "ENAMETOOLONG",
            64 => "EHOSTDOWN",
            65 => "EHOSTUNREACH",
            66 => "ENOTEMPTY",
            67 => "EPROCLIM",
            68 => "EUSERS",
            69 => "EDQUOT",
            70 => "ESTALE",
            71 => "EREMOTE",
            72 => "EBADRPC",
            73 => "ERPCMISMATCH",
            74 => "EPROGUNAVAIL",
            75 => "EPROGMISMATCH",
            76 => "EPROCUNAVAIL",
            77 => "ENOLCK",
            78 => "ENOSYS",
            79 => "EFTYPE",
            80 => "EAUTH",
            81 => "ENEEDAUTH",
            82 => "EIDRM",
            83 => "ENOMSG",
            84 => "EOVERFLOW",
            85 => "EILSEQ",
            86 => "ENOTSUP",
            87 => "ECANCELED",
            88 => "EBADMSG",
            89 => "ENODATA",
            90 => "ENOSR",
            91 => "ENOSTR",
            92 => "ETIME",
            93 => "ENOATTR",
            94 => "EMULTIHOP",
            95 => "ENOLINK",
            96 => "EPROTO",
            _ => "E?",
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[allow(missing_docs)]
impl Errno {
    pub const EPERM: Errno = Errno(1);
    pub const ENOENT: Errno = Errno(2);
    pub const ESRCH: Errno = Errno(3);
    pub const EINTR: Errno = Errno(4);
    pub const EIO: Errno = Errno(5);
    pub const ENXIO: Errno = Errno(6);
    pub const E2BIG: Errno = Errno(7);
    pub const ENOEXEC: Errno = Errno(8);
    pub const EBADF: Errno = Errno(9);
    pub const ECHILD: Errno = Errno(10);
    pub const EDEADLK: Errno = Errno(11);
    pub const ENOMEM: Errno = Errno(12);
    pub const EACCES: Errno = Errno(13);
    pub const EFAULT: Errno = Errno(14);
    pub const ENOTBLK: Errno = Errno(15);
    pub const EBUSY: Errno = Errno(16);
    pub const EEXIST: Errno = Errno(17);
    pub const EXDEV: Errno = Errno(18);
    pub const ENODEV: Errno = Errno(19);
    pub const ENOTDIR: Errno = Errno(20);
    pub const EISDIR: Errno = Errno(21);
    pub const EINVAL: Errno = Errno(22);
    pub const ENFILE: Errno = Errno(23);
    pub const EMFILE: Errno = Errno(24);
    pub const ENOTTY: Errno = Errno(25);
    pub const ETXTBSY: Errno = Errno(26);
    pub const EFBIG: Errno = Errno(27);
    pub const ENOSPC: Errno = Errno(28);
    pub const ESPIPE: Errno = Errno(29);
    pub const EROFS: Errno = Errno(30);
    pub const EMLINK: Errno = Errno(31);
    pub const EPIPE: Errno = Errno(32);
    pub const EDOM: Errno = Errno(33);
    pub const ERANGE: Errno = Errno(34);
    pub const EAGAIN: Errno = Errno(35);
    pub const EINPROGRESS: Errno = Errno(36);
    pub const EALREADY: Errno = Errno(37);
    pub const ENOTSOCK: Errno = Errno(38);
    pub const EDESTADDRREQ: Errno = Errno(39);
    pub const EMSGSIZE: Errno = Errno(40);
    pub const EPROTOTYPE: Errno = Errno(41);
    pub const ENOPROTOOPT: Errno = Errno(42);
    pub const EPROTONOSUPPORT: Errno = Errno(43);
    pub const ESOCKTNOSUPPORT: Errno = Errno(44);
    pub const EOPNOTSUPP: Errno = Errno(45);
    pub const EPFNOSUPPORT: Errno = Errno(46);
    pub const EAFNOSUPPORT: Errno = Errno(47);
    pub const EADDRINUSE: Errno = Errno(48);
    pub const EADDRNOTAVAIL: Errno = Errno(49);
    pub const ENETDOWN: Errno = Errno(50);
    pub const ENETUNREACH: Errno = Errno(51);
    pub const ENETRESET: Errno = Errno(52);
    pub const ECONNABORTED: Errno = Errno(53);
    pub const ECONNRESET: Errno = Errno(54);
    pub const ENOBUFS: Errno = Errno(55);
    pub const EISCONN: Errno = Errno(56);
    pub const ENOTCONN: Errno = Errno(57);
    pub const ESHUTDOWN: Errno = Errno(58);
    pub const ETOOMANYREFS: Errno = Errno(59);
    pub const ETIMEDOUT: Errno = Errno(60);
    pub const ECONNREFUSED: Errno = Errno(61);
    pub const ELOOP: Errno = Errno(62);
    pub const ENAMETOOLONG: Errno = Errno(63);
    pub const EHOSTDOWN: Errno = Errno(64);
    pub const EHOSTUNREACH: Errno = Errno(65);
    pub const ENOTEMPTY: Errno = Errno(66);
    pub const EPROCLIM: Errno = Errno(67);
    pub const EUSERS: Errno = Errno(68);
    pub const EDQUOT: Errno = Errno(69);
    pub const ESTALE: Errno = Errno(70);
    pub const EREMOTE: Errno = Errno(71);
    pub const EBADRPC: Errno = Errno(72);
    pub const ERPCMISMATCH: Errno = Errno(73);
    pub const EPROGUNAVAIL: Errno = Errno(74);
    pub const EPROGMISMATCH: Errno = Errno(75);
    pub const EPROCUNAVAIL: Errno = Errno(76);
    pub const ENOLCK: Errno = Errno(77);
    pub const ENOSYS: Errno = Errno(78);
    pub const EFTYPE: Errno = Errno(79);
    pub const EAUTH: Errno = Errno(80);
    pub const ENEEDAUTH: Errno = Errno(81);
    pub const EIDRM: Errno = Errno(82);
    pub const ENOMSG: Errno = Errno(83);
    pub const EOVERFLOW: Errno = Errno(84);
    pub const EILSEQ: Errno = Errno(85);
    pub const ENOTSUP: Errno = Errno(86);
    pub const ECANCELED: Errno = Errno(87);
    pub const EBADMSG: Errno = Errno(88);
    pub const ENODATA: Errno = Errno(89);
    pub const ENOSR: Errno = Errno(90);
    pub const ENOSTR: Errno = Errno(91);
    pub const ETIME: Errno = Errno(92);
    pub const ENOATTR: Errno = Errno(93);
    pub const EMULTIHOP: Errno = Errno(94);
    pub const ENOLINK: Errno = Errno(95);
    pub const EPROTO: Errno = Errno(96);
    /// NetBSD spells `EWOULDBLOCK` as `EAGAIN`.
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;
}

/// `(NetBSD, Linux x86_64)` errno pairs (`rumpuser_errtrans.c` resolved on
/// Linux); NetBSD-only values are absent. One table serves both directions.
const LINUX_PAIRS: &[(c_int, c_int)] = &[
    (1, 1),    // EPERM
    (2, 2),    // ENOENT
    (3, 3),    // ESRCH
    (4, 4),    // EINTR
    (5, 5),    // EIO
    (6, 6),    // ENXIO
    (7, 7),    // E2BIG
    (8, 8),    // ENOEXEC
    (9, 9),    // EBADF
    (10, 10),  // ECHILD
    (11, 35),  // EDEADLK
    (12, 12),  // ENOMEM
    (13, 13),  // EACCES
    (14, 14),  // EFAULT
    (15, 15),  // ENOTBLK
    (16, 16),  // EBUSY
    (17, 17),  // EEXIST
    (18, 18),  // EXDEV
    (19, 19),  // ENODEV
    (20, 20),  // ENOTDIR
    (21, 21),  // EISDIR
    (22, 22),  // EINVAL
    (23, 23),  // ENFILE
    (24, 24),  // EMFILE
    (25, 25),  // ENOTTY
    (26, 26),  // ETXTBSY
    (27, 27),  // EFBIG
    (28, 28),  // ENOSPC
    (29, 29),  // ESPIPE
    (30, 30),  // EROFS
    (31, 31),  // EMLINK
    (32, 32),  // EPIPE
    (33, 33),  // EDOM
    (34, 34),  // ERANGE
    (35, 11),  // EAGAIN
    (36, 115), // EINPROGRESS
    (37, 114), // EALREADY
    (38, 88),  // ENOTSOCK
    (39, 89),  // EDESTADDRREQ
    (40, 90),  // EMSGSIZE
    (41, 91),  // EPROTOTYPE
    (42, 92),  // ENOPROTOOPT
    (43, 93),  // EPROTONOSUPPORT
    (44, 94),  // ESOCKTNOSUPPORT
    (45, 95),  // EOPNOTSUPP
    (46, 96),  // EPFNOSUPPORT
    (47, 97),  // EAFNOSUPPORT
    (48, 98),  // EADDRINUSE
    (49, 99),  // EADDRNOTAVAIL
    (50, 100), // ENETDOWN
    (51, 101), // ENETUNREACH
    (52, 102), // ENETRESET
    (53, 103), // ECONNABORTED
    (54, 104), // ECONNRESET
    (55, 105), // ENOBUFS
    (56, 106), // EISCONN
    (57, 107), // ENOTCONN
    (58, 108), // ESHUTDOWN
    (59, 109), // ETOOMANYREFS
    (60, 110), // ETIMEDOUT
    (61, 111), // ECONNREFUSED
    (62, 40),  // ELOOP
    (63, 36),  // ENAMETOOLONG
    (64, 112), // EHOSTDOWN
    (65, 113), // EHOSTUNREACH
    (66, 39),  // ENOTEMPTY
    (68, 87),  // EUSERS
    (69, 122), // EDQUOT
    (70, 116), // ESTALE
    (71, 66),  // EREMOTE
    (77, 37),  // ENOLCK
    (78, 38),  // ENOSYS
    (82, 43),  // EIDRM
    (83, 42),  // ENOMSG
    (84, 75),  // EOVERFLOW
    (85, 84),  // EILSEQ
    (87, 125), // ECANCELED
    (88, 74),  // EBADMSG
    (89, 61),  // ENODATA
    (90, 63),  // ENOSR
    (91, 60),  // ENOSTR
    (92, 62),  // ETIME
    (94, 72),  // EMULTIHOP
    (95, 67),  // ENOLINK
    (96, 71),  // EPROTO
];

/// Host (Linux) errno to NetBSD errno; 0 stays 0, unknown values become `EINVAL`.
pub const fn linux_to_netbsd(host: c_int) -> c_int {
    if host == 0 {
        return 0;
    }
    let mut i = 0;
    while i < LINUX_PAIRS.len() {
        if LINUX_PAIRS[i].1 == host {
            return LINUX_PAIRS[i].0;
        }
        i += 1;
    }
    22
}

/// NetBSD errno to Linux errno, for hosts that must hand a NetBSD value back
/// to host code; values without a Linux twin map to Linux `EINVAL` (22).
pub const fn netbsd_to_linux(nb: c_int) -> c_int {
    match nb {
        0 => 0,
        // ENOTSUP is EOPNOTSUPP on Linux.
        86 => 95,
        _ => {
            let mut i = 0;
            while i < LINUX_PAIRS.len() {
                if LINUX_PAIRS[i].0 == nb {
                    return LINUX_PAIRS[i].1;
                }
                i += 1;
            }
            22
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mapped_value_round_trips() {
        for nb in 1..=96 {
            let lx = netbsd_to_linux(nb);
            let back = linux_to_netbsd(lx);
            // ENOTSUP (86) and the NetBSD-only values have no exact twin.
            if ![67, 72, 73, 74, 75, 76, 79, 80, 81, 86, 93].contains(&nb) {
                assert_eq!(back, nb, "NetBSD {nb} -> Linux {lx} -> {back}");
            }
        }
    }

    #[test]
    fn spot_values_from_the_contract() {
        assert_eq!(linux_to_netbsd(35), 11); // EDEADLK
        assert_eq!(linux_to_netbsd(11), 35); // EAGAIN
        assert_eq!(linux_to_netbsd(110), 60); // ETIMEDOUT
        assert_eq!(linux_to_netbsd(38), 78); // ENOSYS
        assert_eq!(linux_to_netbsd(95), 45); // EOPNOTSUPP
        assert_eq!(linux_to_netbsd(44), 22); // ECHRNG: Linux only
        assert_eq!(linux_to_netbsd(130), 22); // EOWNERDEAD: Linux only
        assert_eq!(linux_to_netbsd(0), 0);
        assert_eq!(Errno::from_linux(2), Errno::ENOENT);
        assert_eq!(Errno::from_raw(0), Errno::EINVAL);
        assert_eq!(Errno::ETIMEDOUT.raw(), 60);
        assert_eq!(Errno::EBUSY.name(), "EBUSY");
    }
}
