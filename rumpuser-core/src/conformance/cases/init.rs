//! `rumpuser_init` (contract 3.1): a wrong version is refused with an
//! error (not an abort), the right one with the model's table succeeds.

use super::super::hyp::Hyp;
use super::super::model::ModelKernel;
use super::super::{CaseResult, KitApi};
use crate::abi::RUMPUSER_VERSION;

/// Version check, then the real init (the first calls in the process).
pub fn version_and_init(api: KitApi) -> CaseResult {
    let hyp = Hyp::new(api);
    let r = hyp.init_version::<ModelKernel>(RUMPUSER_VERSION - 1);
    crate::ensure!(r != 0, "init with version 16 must fail, got 0");
    let r = hyp.init_version::<ModelKernel>(RUMPUSER_VERSION + 1);
    crate::ensure!(r != 0, "init with version 18 must fail, got 0");
    let r = hyp.init::<ModelKernel>();
    crate::ensure_eq!(r, 0, "init(17)");
    Ok(())
}
