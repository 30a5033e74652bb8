//! `cargo xtask kernel-test [--flavor posix|green]`: the project's own C
//! test programs (`tests/kernel/*.c`) linked against a real NetBSD rump
//! kernel layer that the user built (this repository never contains or
//! fetches it) and against our library, statically (`--whole-archive`, as
//! the kernel's own tests and `rump_server` link) and dynamically (our
//! `compat/<flavour>/librumpuser.so` first on the search path).
//!
//! Each program names the kernel libraries it needs in a comment line
//! `LIBS: -lrumpfs_tmpfs -lrumpvfs -lrump`, prints what it checks, and
//! exits 0 on success. Programs whose libraries the kernel layer lacks are
//! reported as skipped.

use crate::util::{output, root, sh, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `cargo xtask kernel-test [--flavor F]`.
pub fn run(args: &[String]) -> Result<()> {
    let flavour = match args
        .iter()
        .position(|a| a == "--flavor" || a == "--flavour")
    {
        Some(i) => args
            .get(i + 1)
            .map(String::as_str)
            .ok_or("--flavor needs a value")?,
        None => "posix",
    };
    if std::env::var_os("RUMP_KERNEL_DIR").is_none() {
        eprintln!("kernel-test: SKIPPED: set RUMP_KERNEL_DIR to a built rump kernel layer (a directory with lib/ and include/)");
        return Ok(());
    }
    crate::dist::build()?;
    run_flavour(flavour)
}

fn kernel_dir() -> Result<PathBuf> {
    let d = PathBuf::from(std::env::var_os("RUMP_KERNEL_DIR").ok_or("RUMP_KERNEL_DIR is not set")?);
    if !d.join("lib/librump.a").is_file() || !d.join("include/rump/rump.h").is_file() {
        return Err(format!(
            "{} has no lib/librump.a or include/rump/rump.h",
            d.display()
        ));
    }
    Ok(d)
}

fn libs_of(src: &str) -> Vec<String> {
    src.lines()
        .find_map(|l| {
            l.trim()
                .trim_start_matches("/*")
                .trim()
                .strip_prefix("LIBS:")
        })
        .map(|l| {
            l.trim()
                .trim_end_matches("*/")
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_else(|| vec!["-lrump".into()])
}

/// Runs every program for one flavour; fails if any program fails.
pub fn run_flavour(flavour: &str) -> Result<()> {
    let k = kernel_dir()?;
    let dist = crate::dist::dist_dir();
    let ours_a = dist.join(format!("lib/librumpuser_{flavour}.a"));
    let compat = dist.join("compat").join(flavour);
    let out = crate::util::target().join("kernel-test").join(flavour);
    fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let mut srcs: Vec<PathBuf> = fs::read_dir(root().join("tests/kernel"))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    srcs.sort();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for src in &srcs {
        let name = src.file_stem().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(src).map_err(|e| e.to_string())?;
        let libs = libs_of(&text);
        let missing: Vec<_> = libs
            .iter()
            .filter(|l| {
                !k.join(format!("lib/lib{}.a", l.trim_start_matches("-l")))
                    .is_file()
            })
            .collect();
        if !missing.is_empty() {
            eprintln!("kernel-test {flavour} {name}: SKIPPED (kernel layer lacks {missing:?})");
            skipped += 1;
            continue;
        }
        for mode in ["static", "dynamic"] {
            let exe = out.join(format!("{name}-{mode}"));
            let mut cc = Command::new("cc");
            cc.args(["-O1", "-g", "-D_GNU_SOURCE", "-Wall"])
                .arg("-I")
                .arg(k.join("include"))
                .arg("-I")
                .arg(root().join("tests/kernel"))
                .arg(src)
                .arg("-o")
                .arg(&exe);
            if mode == "static" {
                cc.arg("-L").arg(k.join("lib")).arg("-Wl,--whole-archive");
                for l in &libs {
                    cc.arg(format!("-l:lib{}.a", l.trim_start_matches("-l")));
                }
                cc.arg(&ours_a).arg("-Wl,--no-whole-archive");
            } else {
                cc.arg("-L").arg(&compat).arg("-L").arg(k.join("lib"));
                cc.arg(format!(
                    "-Wl,-rpath,{}:{}",
                    compat.display(),
                    k.join("lib").display()
                ));
                cc.arg("-Wl,--no-as-needed").args(&libs).arg("-lrumpuser");
            }
            cc.args(crate::dist::LIBS_PRIVATE.split(' '));
            let label = format!("kernel-test {flavour} {name} ({mode})");
            if let Err(e) = sh(&mut cc) {
                eprintln!("{label}: FAILED to build: {e}");
                failed += 1;
                continue;
            }
            match run_one(&exe, &out, flavour) {
                Ok(o) if o.contains("SKIP:") => {
                    eprintln!("{label}: skipped\n{}", indent(&o));
                    skipped += 1;
                }
                Ok(o) => {
                    eprintln!("{label}: ok\n{}", indent(&o));
                    passed += 1;
                }
                Err(e) => {
                    eprintln!("{label}: FAILED: {e}");
                    failed += 1;
                }
            }
        }
    }
    if let Some(dir) = std::env::var_os("RUMP_KERNEL_TESTS") {
        let (p, f, sk) = own_tests(Path::new(&dir), &compat, &k, flavour)?;
        passed += p;
        failed += f;
        skipped += sk;
    }
    eprintln!("kernel-test {flavour}: {passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 {
        Err(format!("{failed} kernel test(s) failed"))
    } else {
        Ok(())
    }
}

fn run_one(exe: &Path, workdir: &Path, flavour: &str) -> Result<String> {
    output(
        Command::new("timeout")
            .arg("120")
            .arg(exe)
            .current_dir(workdir)
            .env("RUMPUSER_FLAVOUR", flavour)
            .env(
                "RUMP_NCPU",
                std::env::var("RUMP_NCPU").unwrap_or_else(|_| "2".into()),
            ),
    )
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

/// The kernel layer's own test programs (buildrump.sh's `tests/`, built in
/// its object directory `brtests/`), run unchanged against our drop-in
/// `librumpuser.so.0` through `LD_LIBRARY_PATH`, in testrump.sh's order and
/// with its commands: `RUMP_KERNEL_TESTS` names the `brtests` directory;
/// `RUMP_KERNEL_TESTS_SRC` the source `tests/` directory (for the image of
/// `fstest_img`). The servers (`rump_server` from the layer's `bin/`, the
/// routed test's router) run on our library too, and are stopped at the
/// end as testrump.sh stops them.
fn own_tests(dir: &Path, compat: &Path, k: &Path, flavour: &str) -> Result<(u32, u32, u32)> {
    let ld = format!("{}:{}", compat.display(), k.join("lib").display());
    let src = std::env::var_os("RUMP_KERNEL_TESTS_SRC").map(PathBuf::from);
    let img = src
        .map(|s| s.join("fstest_img").display().to_string())
        .unwrap_or_default();
    let server = k.join("bin/rump_server").display().to_string();
    let client = dir.join("simpleclient/simpleclient").display().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    // One test: its directory, the files it needs, and its commands (program,
    // arguments, extra environment) run in that directory in order.
    type Step = (Vec<String>, Vec<(&'static str, &'static str)>);
    let tests: Vec<(&str, Vec<String>, Vec<Step>)> = vec![
        ("init", s(&["init"]), vec![(s(&["./init"]), vec![])]),
        ("fstest", s(&["fstest"]), vec![(s(&["./fstest"]), vec![])]),
        (
            "fstest_img",
            vec!["fstest2".into(), img.clone()],
            vec![(vec!["./fstest2".into(), img.clone()], vec![])],
        ),
        (
            "simpleclient",
            vec!["simpleclient".into(), server.clone()],
            vec![
                (vec![server.clone(), "unix://mysocket".into()], vec![]),
                (
                    s(&["./simpleclient"]),
                    vec![("RUMP_SERVER", "unix://mysocket")],
                ),
            ],
        ),
        (
            "nettest_simple",
            s(&["nettest_simple"]),
            vec![
                (s(&["./nettest_simple", "server"]), vec![]),
                (s(&["./nettest_simple", "client"]), vec![]),
            ],
        ),
        (
            "nettest_simple6",
            s(&["nettest_simple6"]),
            vec![
                (s(&["./nettest_simple6", "server6"]), vec![]),
                (s(&["./nettest_simple6", "client6"]), vec![]),
            ],
        ),
        (
            "nettest_routed",
            vec!["nettest_routed".into(), client.clone()],
            vec![
                (s(&["./nettest_routed", "server"]), vec![]),
                (
                    s(&["./nettest_routed", "router", "unix://routerctrl"]),
                    vec![],
                ),
                (s(&["./nettest_routed", "client"]), vec![]),
                (
                    vec![client.clone()],
                    vec![("RUMP_SERVER", "unix://routerctrl")],
                ),
            ],
        ),
        (
            "nettest_routed6",
            vec!["nettest_routed6".into(), client.clone()],
            vec![
                (s(&["./nettest_routed6", "server6"]), vec![]),
                (
                    s(&["./nettest_routed6", "router6", "unix://routerctrl"]),
                    vec![],
                ),
                (s(&["./nettest_routed6", "client6"]), vec![]),
                (
                    vec![client.clone()],
                    vec![("RUMP_SERVER", "unix://routerctrl")],
                ),
            ],
        ),
        (
            "dynamic",
            s(&["dynamic"]),
            vec![(s(&["./dynamic"]), vec![])],
        ),
    ];
    let (mut p, mut f, mut sk) = (0, 0, 0);
    for (d, needs, steps) in tests {
        let wd = dir.join(d);
        // A need is a file of the test's directory, or an absolute path.
        let present = |n: &str| {
            let p = Path::new(n);
            !n.is_empty()
                && if p.is_absolute() {
                    p.exists()
                } else {
                    wd.join(p).exists()
                }
        };
        let missing = needs.iter().find(|n| !present(n));
        if let Some(m) = missing {
            let what = if m.is_empty() {
                "RUMP_KERNEL_TESTS_SRC (the image)"
            } else {
                m.as_str()
            };
            eprintln!("kernel-test {flavour} own/{d}: skipped ({what} not built or not given)");
            sk += 1;
            continue;
        }
        for stale in ["busmem", "busmem1", "busmem2", "mysocket", "routerctrl"] {
            let _ = std::fs::remove_file(wd.join(stale));
        }
        let label = format!("kernel-test {flavour} own/{d}");
        let mut outcome = Ok(());
        for (argv, env) in &steps {
            let st = Command::new("timeout")
                .arg("60")
                .args(argv)
                .current_dir(&wd)
                .env("LD_LIBRARY_PATH", &ld)
                .envs(env.iter().copied())
                .output()
                .map_err(|e| e.to_string())?;
            match st.status.code() {
                Some(0) => {}
                Some(37) if d == "dynamic" => outcome = Err(None),
                _ => {
                    outcome = Err(Some(format!(
                        "{} ({})\n{}",
                        argv.join(" "),
                        st.status,
                        indent(&String::from_utf8_lossy(&st.stderr))
                    )));
                }
            }
            if outcome.is_err() {
                break;
            }
        }
        stop_servers(&wd);
        match outcome {
            Ok(()) => {
                eprintln!("{label}: ok");
                p += 1;
            }
            Err(None) => {
                eprintln!("{label}: skipped (component load failed, as testrump.sh treats it)");
                sk += 1;
            }
            Err(Some(e)) => {
                eprintln!("{label}: FAILED: {e}");
                f += 1;
            }
        }
    }
    Ok((p, f, sk))
}

/// Ends the daemons a test left running in `wd` (testrump.sh's final
/// `pkill`): every process whose working directory is `wd`, or whose
/// command line names one of the tests' server sockets.
fn stop_servers(wd: &Path) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let cwd = std::fs::read_link(e.path().join("cwd")).is_ok_and(|c| c == wd);
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if cwd || cmd.contains("unix://mysocket") || cmd.contains("unix://routerctrl") {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}
