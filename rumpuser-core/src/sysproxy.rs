//! The syscall-proxy hypercalls (`rumpuser_sp_*`) as an optional extension.
//!
//! A platform without a proxy returns `None` from
//! [`crate::Host::sysproxy`]; the exported symbols then answer
//! `EOPNOTSUPP` for `sp_init` and `EFAULT` for the transfer calls, which is
//! what a client-less kernel would see.

use crate::errno::Errno;
use core::ffi::{c_int, c_void, CStr};

/// Server side of the rump syscall proxy (contract sections 3.19 and 4).
pub trait SysProxy: Sync {
    /// `rumpuser_sp_init`: start listening at `url`.
    fn init(
        &self,
        url: &CStr,
        ostype: &CStr,
        osrelease: &CStr,
        machine: &CStr,
    ) -> Result<(), Errno>;
    /// `rumpuser_sp_copyin`.
    fn copyin(&self, arg: *mut c_void, raddr: *const c_void, laddr: &mut [u8])
        -> Result<(), Errno>;
    /// `rumpuser_sp_copyinstr`: returns bytes received.
    fn copyinstr(
        &self,
        arg: *mut c_void,
        raddr: *const c_void,
        laddr: &mut [u8],
    ) -> Result<usize, Errno>;
    /// `rumpuser_sp_copyout`.
    fn copyout(&self, arg: *mut c_void, laddr: &[u8], raddr: *mut c_void) -> Result<(), Errno>;
    /// `rumpuser_sp_anonmmap`.
    fn anonmmap(&self, arg: *mut c_void, len: usize) -> Result<*mut c_void, Errno>;
    /// `rumpuser_sp_raise`.
    fn raise(&self, arg: *mut c_void, signo: c_int) -> Result<(), Errno>;
    /// `rumpuser_sp_fini`.
    fn fini(&self, arg: *mut c_void);
}
