//! `rumpuser_init` (contract 3.1): a wrong version is refused with an
//! error (not an abort), the right one with the model's table succeeds.

use super::super::{model, CaseResult, KitApi};
use crate::abi::RUMPUSER_VERSION;

/// Version check, then the real init.
pub fn version_and_init(api: KitApi) -> CaseResult {
    // SAFETY: the model's static table; init is the first call.
    let r = unsafe { (api.init)(RUMPUSER_VERSION - 1, &model::HYPERUP) };
    crate::ensure!(r != 0, "init with version 16 must fail, got 0");
    // SAFETY: as above.
    let r = unsafe { (api.init)(RUMPUSER_VERSION + 1, &model::HYPERUP) };
    crate::ensure!(r != 0, "init with version 18 must fail, got 0");
    // SAFETY: as above.
    let r = unsafe { (api.init)(RUMPUSER_VERSION, &model::HYPERUP) };
    crate::ensure_eq!(r, 0, "init(17)");
    Ok(())
}
