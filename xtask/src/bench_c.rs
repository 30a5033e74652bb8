//! `cargo xtask bench-c [--rounds N] [--only PREFIX[,PREFIX...]]`: the
//! C-ABI micro-benchmark (`benches/c/microbench.c`) against every
//! librumpuser on this machine, in one run.
//!
//! The program is compiled once per library and linked with it
//! dynamically: ours from the distribution (`$RUMPUSER_DIST`, else
//! `target/dist`, built with `dist` if it is missing), NetBSD's pthread
//! `librumpuser` (`$RUMPUSER_REFERENCE_LIB`, default
//! [`DEFAULT_REFERENCE`]) and NetBSD's fiber one (`$RUMPUSER_FIBER_LIB`,
//! default [`DEFAULT_FIBER`]) when present (`none` skips either). Each
//! program prints `op ns_per_op` lines. Every round runs each operation on
//! every library in turn (one process per operation and library, so a
//! burst of load from elsewhere on the machine hits all of them alike). The
//! tables show the median over rounds and, with several rounds, the best
//! round, each with the ratios reference / ours (above 1 = ours faster).
//!
//! `--markdown FILE` writes the median table, stamped with the commit,
//! date and machine, to FILE; `--update DOC` replaces DOC's
//! `<!-- bench-c:begin -->`…`<!-- bench-c:end -->` region with it
//! (BENCHMARKS.md keeps one).

use crate::markdown::{self, Align, Outputs, Stamp};
use crate::util::{output, require, root, sh, target, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// NetBSD's pthread `librumpuser`, built locally (never committed).
pub const DEFAULT_REFERENCE: &str = "/work/rumpbuild/rump-pthread/lib/librumpuser.so.0";
/// NetBSD's fiber `librumpuser` (rumpfiber), built locally.
pub const DEFAULT_FIBER: &str = "/work/rumpbuild/rump-hypercall/lib/librumpuser.so.0";

/// One library under test.
struct Subject {
    name: &'static str,
    lib: PathBuf,
    exe: PathBuf,
}

/// Ratio columns: (header, reference, ours).
const RATIOS: &[(&str, &str, &str)] = &[
    ("pthread/posix", "netbsd-pthread", "ours-posix"),
    ("pthread/green", "netbsd-pthread", "ours-green"),
    ("fiber/green", "netbsd-fiber", "ours-green"),
];

fn optional(var: &str, default: &str) -> Result<Option<PathBuf>> {
    match std::env::var_os(var) {
        Some(v) if v.is_empty() || v == "none" => Ok(None),
        Some(v) => {
            let p = PathBuf::from(v);
            if p.exists() {
                Ok(Some(p))
            } else {
                Err(format!("{var}={} does not exist", p.display()))
            }
        }
        None => Ok(Some(PathBuf::from(default)).filter(|p| p.exists())),
    }
}

/// Whether a shared `librumpuser` is NetBSD's rumpfiber: it alone exports
/// the fiber scheduler's helpers (`init_mainthread`, `schedule`, ...).
pub fn is_rumpfiber(lib: &Path) -> bool {
    output(Command::new("nm").args(["-D", "--defined-only"]).arg(lib))
        .is_ok_and(|s| s.lines().any(|l| l.ends_with(" init_mainthread")))
}

fn dist() -> Result<PathBuf> {
    let has = |d: &Path| {
        ["posix", "green"]
            .iter()
            .all(|f| d.join(format!("lib/librumpuser_{f}.so")).exists())
    };
    if let Some(d) = std::env::var_os("RUMPUSER_DIST") {
        let d = PathBuf::from(d);
        return if has(&d) {
            Ok(d)
        } else {
            Err(format!(
                "RUMPUSER_DIST={} has no lib/librumpuser_{{posix,green}}.so",
                d.display()
            ))
        };
    }
    // Always rebuild (cheap when nothing changed): a stale library would
    // silently measure old code.
    let d = crate::dist::dist_dir();
    crate::dist::build()?;
    if !has(&d) {
        return Err(format!("{} is incomplete after building it", d.display()));
    }
    Ok(d)
}

fn compile(src: &Path, include: &Path, lib: &Path, exe: &Path) -> Result<()> {
    let dir = lib
        .parent()
        .ok_or_else(|| format!("{} has no directory", lib.display()))?;
    sh(Command::new("cc")
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(include)
        .arg(src)
        .arg(lib)
        // DT_RPATH (not RUNPATH) so that an LD_LIBRARY_PATH (cargo sets
        // one for `cargo run`) cannot substitute another build of the library.
        .arg("-Wl,--disable-new-dtags")
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .arg("-lpthread")
        .arg("-o")
        .arg(exe))
}

/// Parses `op value` lines (`-` = not applicable); `#` lines are information.
fn parse(out: &str) -> Vec<(String, Option<f64>)> {
    let mut m = Vec::new();
    for line in out.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut it = line.split_whitespace();
        if let (Some(op), Some(v)) = (it.next(), it.next()) {
            m.push((op.to_string(), v.parse::<f64>().ok()));
        }
    }
    m
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.abs() >= 100_000.0 => format!("{:.0}", x),
        Some(x) if x.abs() >= 100.0 => format!("{:.1}", x),
        Some(x) => format!("{:.2}", x),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// `cargo xtask bench-c`.
pub fn run(args: &[String]) -> Result<()> {
    let (outputs, args) = Outputs::take(args)?;
    let mut rounds = 1usize;
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => {
                rounds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--rounds needs a positive number")?;
            }
            "--only" => only = Some(it.next().ok_or("--only needs an op prefix")?.clone()),
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: cargo xtask bench-c [--rounds N] [--only OP-PREFIX[,...]] [--markdown FILE] [--update DOC]"
                ))
            }
        }
    }
    require("cc", "apt-get install build-essential")?;
    let dist = dist()?;
    let src = root().join("benches/c/microbench.c");
    let work = target().join("bench-c");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let mut subjects = vec![
        ("ours-posix", dist.join("lib/librumpuser_posix.so")),
        ("ours-green", dist.join("lib/librumpuser_green.so")),
    ];
    match optional("RUMPUSER_REFERENCE_LIB", DEFAULT_REFERENCE)? {
        Some(p) => subjects.push(("netbsd-pthread", p)),
        None => eprintln!(
            "bench-c: NetBSD reference librumpuser not found (set RUMPUSER_REFERENCE_LIB); no ratios"
        ),
    }
    if let Some(p) = optional("RUMPUSER_FIBER_LIB", DEFAULT_FIBER)? {
        if is_rumpfiber(&p) {
            subjects.push(("netbsd-fiber", p));
        } else {
            eprintln!(
                "bench-c: {} is not NetBSD's rumpfiber (it defines no init_mainthread): no netbsd-fiber column",
                p.display()
            );
        }
    }
    let subjects: Vec<Subject> = subjects
        .into_iter()
        .map(|(name, lib)| {
            let exe = work.join(format!("microbench-{name}"));
            compile(&src, &dist.join("include"), &lib, &exe)?;
            Ok(Subject { name, lib, exe })
        })
        .collect::<Result<_>>()?;
    for s in &subjects {
        eprintln!("bench-c: {} = {}", s.name, s.lib.display());
    }
    let bio_dir = root().join("target/bench-tmp");
    std::fs::create_dir_all(&bio_dir).map_err(|e| e.to_string())?;
    let bio_file = bio_dir.join("bio-64m.img");

    // The operations, in the program's order (`-l`).
    let ops: Vec<String> = output(Command::new(&subjects[0].exe).arg("-l"))?
        .lines()
        .map(str::to_string)
        .filter(|op| {
            only.as_ref()
                .is_none_or(|o| o.split(',').any(|p| op.starts_with(p)))
        })
        .collect();
    let load_before = loadavg();
    // results[name][op] = values over rounds; the libraries take turns on
    // every operation, so a burst of load from elsewhere hits all of them.
    let mut results: BTreeMap<&str, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut na: BTreeSet<(&str, String)> = BTreeSet::new();
    let mut info: BTreeSet<(&str, String)> = BTreeSet::new();
    for round in 1..=rounds {
        for op in &ops {
            eprintln!("bench-c: round {round}/{rounds}: {op}");
            for s in &subjects {
                let out = output(
                    Command::new(&s.exe)
                        .arg("-f")
                        .arg(&bio_file)
                        .arg("-o")
                        .arg(op)
                        .current_dir(&work)
                        .env_remove("LD_LIBRARY_PATH")
                        .env_remove("LD_PRELOAD"),
                )?;
                for line in out.lines() {
                    if let Some(i) = line.strip_prefix("# ") {
                        if !i.starts_with("upcalls") {
                            info.insert((s.name, i.to_string()));
                        }
                    }
                }
                for (op, v) in parse(&out) {
                    if !order.contains(&op) {
                        order.push(op.clone());
                    }
                    match v {
                        Some(v) => results
                            .entry(s.name)
                            .or_default()
                            .entry(op)
                            .or_default()
                            .push(v),
                        None => {
                            na.insert((s.name, op));
                        }
                    }
                }
            }
        }
    }
    for (name, i) in &info {
        eprintln!("bench-c: {name}: {i}");
    }
    let load_after = loadavg();

    let names: Vec<&str> = subjects.iter().map(|s| s.name).collect();
    println!(
        "\nC-ABI microbench, {rounds} round(s); each figure per round is the median of 5 batches; \
         ratio = reference / ours (> 1: ours faster)"
    );
    println!(
        "nproc {}, load average before {load_before}, after {load_after}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let table = Table {
        names: &names,
        order: &order,
        results: &results,
        na: &na,
    };
    println!("\nmedian over rounds (ns per op)\n");
    print!("{}", table.render(median));
    if rounds > 1 {
        // Noise on a shared machine only ever adds time, so the best round
        // estimates the intrinsic cost.
        println!("\nbest round (minimum, ns per op)\n");
        print!(
            "{}",
            table.render(|v| v.into_iter().min_by(|a, b| a.total_cmp(b)))
        );
    }
    let mut cmd = format!("`cargo xtask bench-c --rounds {rounds}");
    if let Some(o) = &only {
        cmd.push_str(&format!(" --only {o}"));
    }
    cmd.push('`');
    let extra = format!("{cmd}, load average {load_before} before, {load_after} after");
    outputs.write(
        "bench-c",
        &region(&Stamp::collect(), &extra, rounds, &table),
    )?;
    Ok(())
}

/// The text of the `bench-c` region: stamp, what the figures are, table.
fn region(stamp: &Stamp, extra: &str, rounds: usize, table: &Table<'_>) -> String {
    format!(
        "{}\n\nMedian over {rounds} round(s) of each operation's ns per iteration (each round's \
         figure the median of 5 batches); ratio = reference / ours (above 1: ours faster).\n\n{}",
        stamp.render(extra),
        table.render(median)
    )
}

/// The results of a run, printable as markdown tables.
struct Table<'a> {
    names: &'a [&'a str],
    order: &'a [String],
    results: &'a BTreeMap<&'a str, BTreeMap<String, Vec<f64>>>,
    na: &'a BTreeSet<(&'a str, String)>,
}

impl Table<'_> {
    /// The markdown table of `stat` over each op's rounds: one column per
    /// library, then the ratio columns whose two libraries both ran.
    fn render(&self, stat: impl Fn(Vec<f64>) -> Option<f64>) -> String {
        let value = |name: &str, op: &str| -> Option<f64> {
            self.results
                .get(name)
                .and_then(|m| m.get(op))
                .and_then(|v| stat(v.clone()))
        };
        let ratios: Vec<&(&str, &str, &str)> = RATIOS
            .iter()
            .filter(|(_, r, o)| self.names.contains(r) && self.names.contains(o))
            .collect();
        let mut header = vec![("op", Align::Left)];
        header.extend(self.names.iter().map(|n| (*n, Align::Right)));
        header.extend(ratios.iter().map(|(h, _, _)| (*h, Align::Right)));
        let rows: Vec<Vec<String>> = self
            .order
            .iter()
            .map(|op| {
                let mut row = vec![op.clone()];
                for n in self.names {
                    let v = value(n, op);
                    row.push(if v.is_none() && self.na.contains(&(*n, op.clone())) {
                        "n/a".to_string()
                    } else {
                        fmt(v)
                    });
                }
                for (_, r, o) in &ratios {
                    // Lateness figures are not costs; a ratio of them means nothing.
                    row.push(match (value(r, op), value(o, op)) {
                        (Some(a), Some(b)) if !op.starts_with("sleep_") && b > 0.0 => {
                            format!("{:.2}x", a / b)
                        }
                        _ => String::new(),
                    });
                }
                row
            })
            .collect();
        markdown::table(&header, &rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program's output, as `microbench -o OP` prints it.
    const OUT_OURS: &str = "# upcalls: 12\n# bio: mapped\nmutex_enter_exit 10.0\nsleep_1ms_lateness 55000\nmutex_contended_2thr 80.5\n";
    const OUT_REF: &str =
        "mutex_enter_exit 25.0\nsleep_1ms_lateness 60000\nmutex_contended_2thr -\n";

    #[test]
    fn program_output_is_parsed() {
        assert_eq!(
            parse(OUT_OURS),
            [
                ("mutex_enter_exit".to_string(), Some(10.0)),
                ("sleep_1ms_lateness".to_string(), Some(55000.0)),
                ("mutex_contended_2thr".to_string(), Some(80.5)),
            ]
        );
        assert_eq!(
            parse(OUT_REF)[2],
            ("mutex_contended_2thr".to_string(), None)
        );
    }

    #[test]
    fn the_table_has_values_ratios_and_gaps() {
        let names = ["ours-posix", "netbsd-pthread"];
        let mut results: BTreeMap<&str, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
        let mut na = BTreeSet::new();
        let mut order = Vec::new();
        for (name, out) in [("ours-posix", OUT_OURS), ("netbsd-pthread", OUT_REF)] {
            for (op, v) in parse(out) {
                if !order.contains(&op) {
                    order.push(op.clone());
                }
                match v {
                    Some(v) => results
                        .entry(name)
                        .or_default()
                        .entry(op)
                        .or_default()
                        .push(v),
                    None => {
                        na.insert((name, op));
                    }
                }
            }
        }
        // A second round for one op: the median is the middle of three.
        results
            .get_mut("ours-posix")
            .unwrap()
            .get_mut("mutex_enter_exit")
            .unwrap()
            .extend([12.0, 9.0]);
        let t = Table {
            names: &names,
            order: &order,
            results: &results,
            na: &na,
        };
        let md = t.render(median);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 5, "{md}");
        let cells = |l: &str| -> Vec<String> {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        };
        // Only pthread/posix has both of its libraries.
        assert_eq!(
            cells(lines[0]),
            ["op", "ours-posix", "netbsd-pthread", "pthread/posix"]
        );
        assert_eq!(
            cells(lines[2]),
            ["mutex_enter_exit", "10.00", "25.00", "2.50x"]
        );
        // Lateness: values, no ratio.
        assert_eq!(
            cells(lines[3]),
            ["sleep_1ms_lateness", "55000.0", "60000.0", ""]
        );
        // Not applicable to the reference: n/a and no ratio.
        assert_eq!(
            cells(lines[4]),
            ["mutex_contended_2thr", "80.50", "n/a", ""]
        );
        let stamp = Stamp {
            commit: "abc1234".into(),
            dirty: false,
            date: "2025-01-02 03:04".into(),
            cpu: "Some CPU".into(),
            cores: 2,
            kernel: "Linux 6.1".into(),
        };
        let r = region(&stamp, "`cargo xtask bench-c --rounds 3`", 3, &t);
        assert!(r.starts_with("Commit `abc1234`, 2025-01-02 03:04 UTC; Some CPU, 2 CPUs, Linux 6.1; `cargo xtask bench-c --rounds 3`.\n\nMedian over 3 round(s)"), "{r}");
        assert!(r.ends_with(&md), "{r}");
    }
}
