//! Our image as a PVH dom0 of Xen nested in QEMU TCG ("Mode A"): `-kernel
//! xen -append "<Xen options>" -initrd "<our image> <params>"`. Xen builds
//! dom0 from the first module; the rest of the module string becomes
//! dom0's command line (commas doubled for QEMU). Our output reaches the
//! serial log through `console_io`, interleaved with `(XEN)` lines.

use crate::qemu::{self, Run};
use crate::util::{output, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Xen's options: serial console, PVH dom0 with 64 MiB and one vcpu, all
/// messages (guest ones too).
const XEN_APPEND: &str = "console=com1 com1=115200,8n1 dom0=pvh dom0_mem=64M dom0_max_vcpus=1 \
                          loglvl=all guest_loglvl=all";

/// Builds the test image (release) and checks it is a PVH ELF.
pub fn build_image() -> Result<PathBuf> {
    let image = qemu::build_test_image("rumpuser-xen", "rumpuser-xen-test")?;
    let notes = output(Command::new("readelf").args(["-nW"]).arg(&image))?;
    if !notes.contains("Xen") {
        return Err(format!("{}: no PVH (Xen) ELF note", image.display()));
    }
    Ok(image)
}

/// Boots `image` as dom0 with command line `params`.
pub fn run_dom0(
    xen: &Path,
    image: &Path,
    params: &str,
    label: &str,
    timeout: Duration,
) -> Result<Run> {
    if image.to_string_lossy().contains([',', ' ']) {
        return Err(format!(
            "{}: QEMU's -initrd cannot take a path with a comma or space",
            image.display()
        ));
    }
    let mut args = qemu::base_args("max", "512M");
    args.extend(
        ["-smp", "1", "-device", "intel-iommu", "-initrd"]
            .iter()
            .map(|s| s.to_string()),
    );
    args.push(format!("{} {}", image.display(), params.replace(',', ",,")));
    qemu::run(xen, &args, XEN_APPEND, label, timeout)
}

/// Our lines of the serial log (without Xen's `(XEN)` messages).
pub(super) fn guest_lines(run: &Run) -> impl Iterator<Item = &str> {
    run.output.lines().filter(|l| !l.starts_with("(XEN)"))
}
