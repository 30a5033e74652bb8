//! A rumpuser library loaded at run time: `dlopen(RTLD_NOW | RTLD_LOCAL)`
//! and every `rumpuser_*` symbol resolved in that handle, so one process
//! can drive several implementations side by side.

use rumpuser_core::api::Api;
use std::ffi::{CStr, CString};
use std::path::Path;

/// Loads the library at `path` (never unloaded) and returns its C ABI.
/// Panics with `dlerror`'s message, or the first missing symbol.
pub fn open(path: &Path) -> &'static Api {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("path with NUL");
    // SAFETY: a valid C string; the handle is never closed.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if h.is_null() {
        // SAFETY: dlerror returns NULL or a C string valid until the next dl call.
        let msg = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "unknown error".into()
            } else {
                CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        panic!("cannot dlopen {}: {msg}", path.display());
    }
    // SAFETY: every rumpuser_* symbol of a v17 librumpuser has the v17
    // signature; `h` stays open for the life of the process.
    let api = unsafe { Api::resolve(|name| libc::dlsym(h, name.as_ptr())) }
        .unwrap_or_else(|missing| panic!("{}: missing symbol {missing}", path.display()));
    Box::leak(Box::new(api))
}
