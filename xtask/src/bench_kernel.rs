//! `cargo xtask bench-kernel [--rounds N] [--flavor posix|green]
//! [--threads T[,T...]]`: NetBSD's kernel layer itself (`$RUMP_KERNEL_DIR`,
//! built with shared libraries) reading 4 KiB blocks from a raw device
//! backed by a page-cached host file (`benches/c/kernel_rawread.c`: physio,
//! the block strategy, then `rumpuser_bio`), once on the layer's own
//! `librumpuser.so.0` (NetBSD's pthread one, or rumpfiber in a
//! `RUMP_CURLWP=hypercall` build) and once on our drop-in
//! (`target/dist/compat/<flavour>`), in alternation; prints the median per
//! library and the ratio (above 1: ours faster). Each thread count
//! (default `1,64`; rumpfiber runs only the rows with one thread, as it
//! takes calls from the thread that called `rumpuser_init` only) is one row: with T threads, T kernel processes read at once, so
//! up to T requests are in flight and T lwps compete for the virtual CPUs
//! and the kernel's locks. When the layer has `librumpnet_shmif`, two
//! more rows come from `benches/c/kernel_tcp.c`: two kernels (two
//! processes) talking TCP over the shared-memory interface, a 64-byte
//! request/reply round trip and a 64 MiB one-way stream (green: ours only,
//! as rumpfiber stops in shmif's blocking read). With
//! `librumpfs_ext2fs` and `mke2fs`, `benches/c/kernel_fs.c` adds ext2 on a
//! 1 GiB image: 8 MiB per thread written with `fsync` per file, then read
//! back after a remount (MiB/s, for each thread count up to 64), and
//! `benches/c/kernel_smallfiles.c` a small-file workload on a 256 MiB
//! image in `/dev/shm` (tmpfs: the figures are the kernel's and the
//! hypercall layer's, not a shared disk's): 2000 files of 1–8 KiB created,
//! written and synced one by one, a remount, all read back, all unlinked
//! and synced (milliseconds).
//!
//! `--markdown FILE` writes the table, stamped with the commit, date and
//! machine, to FILE; `--update DOC` replaces DOC's
//! `<!-- bench-kernel-<flavour>:begin -->`…`:end -->` region with it.

use crate::markdown::{self, Align, Outputs, Stamp};
use crate::util::{output, require, root, sh, target, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Files of the small-file workload (`benches/c/kernel_smallfiles.c`).
const SMALL_FILES: u32 = 2000;

/// One benchmark row: a program run on each library in turn.
struct Case {
    label: String,
    exe: PathBuf,
    args: Vec<String>,
    /// MiB/s (higher is better) rather than a time.
    higher_better: bool,
    /// What the program prints (`MiB/s`, `ns`, `ms`).
    unit: &'static str,
    /// Whether the layer's own `librumpuser` runs it too.
    reference: bool,
    /// Why it does not, when it does not.
    not_run: &'static str,
}

/// Why rumpfiber does not run a case with several host threads.
const ONE_THREAD: &str = "rumpfiber takes calls from the thread that called rumpuser_init only";
/// Why rumpfiber does not run the TCP cases.
const SHMIF: &str = "its shmif read would stop the kernel";

impl Case {
    fn new(label: String, exe: &Path, args: Vec<String>, higher_better: bool) -> Self {
        Self {
            label,
            exe: exe.to_path_buf(),
            args,
            higher_better,
            unit: if higher_better { "MiB/s" } else { "ns" },
            reference: true,
            not_run: "",
        }
    }

    /// The layer's own library runs it only if `yes`; else `why`.
    fn reference_if(mut self, yes: bool, why: &'static str) -> Self {
        self.reference = yes;
        self.not_run = if yes { "" } else { why };
        self
    }
}

/// One result: a case's medians on the two libraries.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    label: String,
    /// MiB/s (higher is better) rather than a time.
    higher_better: bool,
    unit: &'static str,
    /// The layer's own librumpuser (`None`: not run, for `not_run`).
    reference: Option<f64>,
    not_run: &'static str,
    ours: f64,
}

impl Row {
    fn unit(&self) -> &'static str {
        self.unit
    }

    /// Above 1: ours faster.
    fn ratio(&self) -> Option<f64> {
        let r = self.reference?;
        Some(if self.higher_better {
            self.ours / r
        } else {
            r / self.ours
        })
    }

    /// The line printed at the end of a run.
    fn line(&self, flavour: &str, rounds: usize) -> String {
        let (label, ours, unit) = (&self.label, self.ours, self.unit());
        match (self.reference, self.ratio()) {
            (Some(reference), Some(ratio)) => format!(
                "{label} (median of {rounds}): netbsd {reference:.0} {unit}, ours-{flavour} {ours:.0} {unit}, {ratio:.2}x"
            ),
            _ => format!(
                "{label} (median of {rounds}): ours-{flavour} {ours:.0} {unit} (netbsd: not run, {})",
                self.not_run
            ),
        }
    }
}

/// The markdown table of a run.
fn render(rows: &[Row], flavour: &str) -> String {
    let ours = format!("ours-{flavour}");
    let header = [
        ("case", Align::Left),
        ("unit", Align::Left),
        ("netbsd", Align::Right),
        (ours.as_str(), Align::Right),
        ("ratio", Align::Right),
    ];
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.label.clone(),
                r.unit().to_string(),
                r.reference.map_or("not run".into(), |v| format!("{v:.0}")),
                format!("{:.0}", r.ours),
                r.ratio().map_or(String::new(), |x| format!("{x:.2}x")),
            ]
        })
        .collect();
    markdown::table(&header, &rows)
}

/// The text of the `bench-kernel-<flavour>` region.
fn region(
    stamp: &Stamp,
    extra: &str,
    flavour: &str,
    reference: &str,
    rounds: usize,
    rows: &[Row],
) -> String {
    let mut s = format!(
        "{}\n\nNetBSD's kernel layer on {reference} (`netbsd`) and on ours (`ours-{flavour}`); \
         median of {rounds} round(s); ratio above 1: ours faster.\n\n{}",
        stamp.render(extra),
        render(rows, flavour)
    );
    let mut why: Vec<&str> = rows
        .iter()
        .filter(|r| r.reference.is_none())
        .map(|r| r.not_run)
        .collect();
    why.dedup();
    for w in why {
        s.push_str(&format!("\n`not run`: {w}.\n"));
    }
    s
}

/// Entry point.
pub fn run(args: &[String]) -> Result<()> {
    let (outputs, args) = Outputs::take(args)?;
    let rounds: usize = match args.iter().position(|a| a == "--rounds") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or("bench-kernel: --rounds takes a number")?,
        None => 3,
    };
    let flavour = match args.iter().position(|a| a == "--flavor") {
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some(f @ ("posix" | "green")) => f,
            _ => return Err("bench-kernel: --flavor takes posix or green".into()),
        },
        None => "posix",
    };
    let threads: Vec<u32> = match args.iter().position(|a| a == "--threads") {
        Some(i) => args
            .get(i + 1)
            .map(|v| {
                v.split(',')
                    .map(|t| t.parse().ok().filter(|&n| (1..=256).contains(&n)))
                    .collect()
            })
            .and_then(|v: Option<Vec<u32>>| v)
            .ok_or("bench-kernel: --threads takes counts from 1 to 256, comma-separated")?,
        None => vec![1, 64],
    };
    let Some(k) = std::env::var_os("RUMP_KERNEL_DIR").map(PathBuf::from) else {
        eprintln!("bench-kernel: SKIPPED: set RUMP_KERNEL_DIR to a built rump kernel layer (pthread, with shared libraries)");
        return Ok(());
    };
    let klib = k.join("lib");
    if !klib.join("librump.so.0").exists() || !klib.join("librumpuser.so.0").exists() {
        return Err(format!(
            "{} lacks librump.so.0 or librumpuser.so.0 (a shared-library build is needed)",
            klib.display()
        ));
    }
    require("cc", "apt-get install build-essential")?;
    crate::dist::build()?;
    let work = target().join("bench-kernel");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let compile = |name: &str, libs: &[&str]| -> Result<PathBuf> {
        let exe = work.join(name);
        sh(Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&exe)
            .arg(root().join(format!("benches/c/{name}.c")))
            .arg("-I")
            .arg(k.join("include"))
            .arg("-L")
            .arg(&klib)
            .arg(format!("-Wl,-rpath-link,{}", klib.display()))
            .arg("-Wl,--no-as-needed")
            .args(libs)
            .args(["-lrump", "-lrumpuser", "-lpthread", "-ldl"]))?;
        Ok(exe)
    };
    let rawread = compile(
        "kernel_rawread",
        &["-lrumpdev_disk", "-lrumpdev", "-lrumpvfs"],
    )?;
    let file = target().join("bench-tmp").join("bio-64m.img");
    std::fs::create_dir_all(file.parent().unwrap()).map_err(|e| e.to_string())?;
    if std::fs::metadata(&file).map(|m| m.len()).ok() != Some(64 << 20) {
        let block: Vec<u8> = (0..1usize << 20).map(|i| (i * 31 + 7) as u8).collect();
        let mut all = Vec::with_capacity(64 << 20);
        for _ in 0..64 {
            all.extend_from_slice(&block);
        }
        std::fs::write(&file, all).map_err(|e| e.to_string())?;
    }
    // Into the page cache.
    let _ = std::fs::read(&file);

    let mut cases: Vec<Case> = threads
        .iter()
        .map(|&t| {
            let label = if t == 1 {
                "kernel_raw_read_4k".to_string()
            } else {
                format!("kernel_raw_read_4k_t{t}")
            };
            let args = vec![file.display().to_string(), "20000".into(), t.to_string()];
            Case::new(label, &rawread, args, false)
                .reference_if(flavour == "posix" || t == 1, ONE_THREAD)
        })
        .collect();
    // ext2 on a disk image: one output line per metric, both in MiB/s.
    if klib.join("librumpfs_ext2fs.so").exists()
        && require("mke2fs", "apt-get install e2fsprogs").is_ok()
    {
        let fs = compile(
            "kernel_fs",
            &[
                "-lrumpfs_ext2fs",
                "-lrumpfs_ffs",
                "-lrumpdev_disk",
                "-lrumpdev",
                "-lrumpvfs",
            ],
        )?;
        let img = work.join("ext2.img").display().to_string();
        // On tmpfs where there is one: the workload is a few thousand
        // synchronous writes, and a shared VM's disk makes their latency
        // vary fivefold between runs; on tmpfs the figures are the kernel's
        // and the hypercall layer's.
        let shm = Path::new("/dev/shm");
        let small_img = if shm.is_dir() {
            shm.join(format!("rumpuser-bench-{}.img", std::process::id()))
        } else {
            work.join("small.img")
        }
        .display()
        .to_string();
        let small = compile(
            "kernel_smallfiles",
            &[
                "-lrumpfs_ext2fs",
                "-lrumpfs_ffs",
                "-lrumpdev_disk",
                "-lrumpdev",
                "-lrumpvfs",
            ],
        )?;
        for &t in &threads {
            let t = t.min(64);
            let args = vec![img.clone(), t.to_string()];
            for what in ["write_fsync", "read"] {
                let label = format!("kernel_ext2_{what}_t{t}");
                cases.push(
                    Case::new(label, &fs, args.clone(), true)
                        .reference_if(flavour == "posix" || t == 1, ONE_THREAD),
                );
            }
            // Thousands of small files: create + write + fsync, remount,
            // read, unlink (milliseconds for the whole).
            let args = vec![small_img.clone(), SMALL_FILES.to_string(), t.to_string()];
            let mut c = Case::new(format!("kernel_ext2_smallfiles_t{t}"), &small, args, false)
                .reference_if(flavour == "posix" || t == 1, ONE_THREAD);
            c.unit = "ms";
            cases.push(c);
        }
    } else {
        eprintln!("bench-kernel: no librumpfs_ext2fs.so or no mke2fs: no ext2 rows");
    }
    // TCP between two kernels over shmif, whose driver blocks in read(2):
    // green runs it on an excursion; rumpfiber would stall for good, so on
    // the green flavour only ours runs.
    if klib.join("librumpnet_shmif.so").exists() {
        let tcp = compile(
            "kernel_tcp",
            &[
                "-lrumpnet_shmif",
                "-lrumpnet_config",
                "-lrumpnet_netinet",
                "-lrumpnet_net",
                "-lrumpnet",
            ],
        )?;
        let bus = work.join("tcp.bus").display().to_string();
        let rt = vec![bus.clone(), "rt".into(), "1000".into()];
        let stream = vec![bus, "stream".into(), (64u32 << 20).to_string()];
        for c in [
            Case::new("kernel_tcp_rt_64b".into(), &tcp, rt, false),
            Case::new("kernel_tcp_stream".into(), &tcp, stream, true),
        ] {
            cases.push(c.reference_if(flavour == "posix", SHMIF));
        }
    } else {
        eprintln!(
            "bench-kernel: no librumpnet_shmif.so in {}: no TCP rows",
            klib.display()
        );
    }

    let compat = crate::dist::dist_dir().join("compat").join(flavour);
    let ours = format!("ours-{flavour}");
    let subjects = [
        ("netbsd", klib.display().to_string()),
        (
            ours.as_str(),
            format!("{}:{}", compat.display(), klib.display()),
        ),
    ];
    let mut rows = Vec::new();
    for Case {
        label,
        exe,
        args,
        higher_better,
        unit,
        reference,
        not_run,
    } in &cases
    {
        let mut results: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
        for round in 1..=rounds {
            for (i, (name, path)) in subjects.iter().enumerate() {
                if i == 0 && !reference {
                    continue;
                }
                let out = output(Command::new(exe).args(args).env("LD_LIBRARY_PATH", path))?;
                let v: f64 = out
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{label} ")))
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| format!("bench-kernel: no {label} from {name}: {out}"))?;
                eprintln!("bench-kernel: round {round}: {label} {name} {v:.1}");
                results[i].push(v);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        rows.push(Row {
            label: label.clone(),
            higher_better: *higher_better,
            unit,
            reference: reference.then(|| median(&mut results[0])),
            not_run,
            ours: median(&mut results[1]),
        });
    }
    for r in &rows {
        println!("{}", r.line(flavour, rounds));
    }
    let lib = klib.join("librumpuser.so.0");
    let reference = if crate::bench_c::is_rumpfiber(&lib) {
        "its own rumpfiber librumpuser"
    } else {
        "its own pthread librumpuser"
    };
    let extra = format!(
        "`cargo xtask bench-kernel --flavor {flavour} --rounds {rounds} --threads {}`",
        threads
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    outputs.write(
        &format!("bench-kernel-{flavour}"),
        &region(&Stamp::collect(), &extra, flavour, reference, rounds, &rows),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        vec![
            Row {
                label: "kernel_raw_read_4k".into(),
                higher_better: false,
                unit: "ns",
                not_run: "",
                reference: Some(3000.0),
                ours: 1500.0,
            },
            Row {
                label: "kernel_ext2_read_t1".into(),
                higher_better: true,
                unit: "MiB/s",
                not_run: "",
                reference: Some(400.0),
                ours: 500.0,
            },
            Row {
                label: "kernel_tcp_rt_64b".into(),
                higher_better: false,
                unit: "ns",
                not_run: SHMIF,
                reference: None,
                ours: 42000.0,
            },
        ]
    }

    #[test]
    fn ratios_favour_ours_above_one_whatever_the_unit() {
        let r = rows();
        assert_eq!(r[0].ratio(), Some(2.0));
        assert_eq!(r[1].ratio(), Some(1.25));
        assert_eq!(r[2].ratio(), None);
        assert_eq!(
            r[0].line("posix", 3),
            "kernel_raw_read_4k (median of 3): netbsd 3000 ns, ours-posix 1500 ns, 2.00x"
        );
        assert!(r[2].line("green", 3).contains("not run"));
    }

    #[test]
    fn the_table_and_region() {
        let md = render(&rows(), "green");
        let lines: Vec<&str> = md.lines().collect();
        let cells = |l: &str| -> Vec<String> {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        };
        assert_eq!(
            cells(lines[0]),
            ["case", "unit", "netbsd", "ours-green", "ratio"]
        );
        assert_eq!(
            cells(lines[2]),
            ["kernel_raw_read_4k", "ns", "3000", "1500", "2.00x"]
        );
        assert_eq!(
            cells(lines[3]),
            ["kernel_ext2_read_t1", "MiB/s", "400", "500", "1.25x"]
        );
        assert_eq!(
            cells(lines[4]),
            ["kernel_tcp_rt_64b", "ns", "not run", "42000", ""]
        );
        let stamp = Stamp {
            commit: "abc1234".into(),
            dirty: true,
            date: "2025-01-02 03:04".into(),
            cpu: "Some CPU".into(),
            cores: 2,
            kernel: "Linux 6.1".into(),
        };
        let r = region(
            &stamp,
            "x",
            "green",
            "its own rumpfiber librumpuser",
            3,
            &rows(),
        );
        assert!(
            r.starts_with("Commit `abc1234` (modified), 2025-01-02 03:04 UTC;"),
            "{r}"
        );
        assert!(r.contains(&md), "{r}");
        assert!(
            r.contains("`not run`: its shmif read would stop the kernel."),
            "{r}"
        );
        let r = region(
            &stamp,
            "x",
            "posix",
            "its own pthread librumpuser",
            3,
            &rows()[..2],
        );
        assert!(!r.contains("not run"), "{r}");
    }
}
