//! `cargo xtask sizes [--markdown FILE] [--update DOC]`: what the shipped
//! libraries weigh against NetBSD's `librumpuser`, as a markdown table
//! (README.md keeps it in its `<!-- sizes:begin -->` region).
//!
//! For every library: the file, its code and data (`size`'s text + data,
//! which does not depend on debug info or symbol tables), and the bytes
//! its debug info takes on disk: ours in separate files (`crate::dist`:
//! the `.so`'s compressed `.debug` file, what the complete archive adds
//! to the stripped one), NetBSD's inside the library (its `.debug_*`
//! sections). NetBSD's libraries are the ones `bench-c` compares
//! against (`$RUMPUSER_REFERENCE_LIB`, `$RUMPUSER_FIBER_LIB`: the
//! `librumpuser.so.0`, with `librumpuser.a` next to it).

use crate::markdown::{self, Align, Outputs, Stamp};
use crate::util::{output, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One library's figures, in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    name: String,
    file: u64,
    code_data: u64,
    debug: u64,
    /// Debug info in a separate file (else inside the library).
    apart: bool,
}

/// text + data from `size` (one file) or `size -t` (an archive: the
/// `(TOTALS)` line, which is the last).
fn parse_size(out: &str) -> Option<u64> {
    let line = out.lines().rev().find(|l| !l.trim().is_empty())?;
    let mut it = line.split_whitespace().map(|w| w.parse::<u64>());
    match (it.next(), it.next()) {
        (Some(Ok(text)), Some(Ok(data))) => Some(text + data),
        _ => None,
    }
}

/// The bytes of `.debug_*` sections in a `readelf -S -W` answer (every
/// member's, for an archive).
fn parse_debug_bytes(readelf: &str) -> u64 {
    readelf
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.trim_start().strip_prefix('[')?.split_once(']')?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            // Name Type Address Off Size ...
            (f.first()?.starts_with(".debug_")).then(|| u64::from_str_radix(f.get(4)?, 16).ok())?
        })
        .sum()
}

fn file_size(p: &Path) -> Result<u64> {
    std::fs::metadata(p)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", p.display()))
}

fn code_data(p: &Path) -> Result<u64> {
    parse_size(&output(Command::new("size").arg("-t").arg(p))?)
        .ok_or_else(|| format!("size -t {}: no totals", p.display()))
}

fn debug_inside(p: &Path) -> Result<u64> {
    Ok(parse_debug_bytes(&output(
        Command::new("readelf").args(["-S", "-W"]).arg(p),
    )?))
}

fn kib(bytes: u64) -> String {
    let k = bytes as f64 / 1024.0;
    if k >= 100.0 {
        format!("{k:.0} KiB")
    } else {
        format!("{k:.1} KiB")
    }
}

/// The markdown table.
fn render(entries: &[Entry]) -> String {
    let header = [
        ("library", Align::Left),
        ("file", Align::Right),
        ("code + data", Align::Right),
        ("debug info (on disk)", Align::Right),
    ];
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let debug = match (e.debug, e.apart) {
                (0, _) => "none".to_string(),
                (d, true) => format!("{} apart", kib(d)),
                (d, false) => format!("{} inside", kib(d)),
            };
            vec![e.name.clone(), kib(e.file), kib(e.code_data), debug]
        })
        .collect();
    markdown::table(&header, &rows)
}

fn netbsd(label: &str, so: &Path) -> Result<Vec<Entry>> {
    let so = std::fs::canonicalize(so).map_err(|e| format!("{}: {e}", so.display()))?;
    let a = so.with_file_name("librumpuser.a");
    let mut v = Vec::new();
    for (name, p) in [(format!("{label} .a"), &a), (format!("{label} .so"), &so)] {
        if p.is_file() {
            v.push(Entry {
                name,
                file: file_size(p)?,
                code_data: code_data(p)?,
                debug: debug_inside(p)?,
                apart: false,
            });
        }
    }
    Ok(v)
}

fn reference(var: &str, default: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if v.is_empty() || v == "none" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => Some(PathBuf::from(default)),
    }
    .filter(|p| p.exists())
}

/// Entry point.
pub fn run(args: &[String]) -> Result<()> {
    let (outputs, rest) = Outputs::take(args)?;
    if let Some(a) = rest.first() {
        return Err(format!(
            "unknown argument {a}; usage: cargo xtask sizes [--markdown FILE] [--update DOC]"
        ));
    }
    crate::dist::build()?;
    let dist = crate::dist::dist_dir();
    let lib = dist.join("lib");
    let mut entries = Vec::new();
    for f in crate::dist::built_flavours() {
        let a = lib.join(format!("librumpuser_{f}.a"));
        let full = lib.join(format!("debug/librumpuser_{f}.a"));
        entries.push(Entry {
            name: format!("ours-{f} .a"),
            file: file_size(&a)?,
            code_data: code_data(&a)?,
            // What the complete archive in debug/ adds.
            debug: file_size(&full)?.saturating_sub(file_size(&a)?),
            apart: true,
        });
        let so = lib.join(format!("librumpuser_{f}.so"));
        // The separate file is what the debuglink names.
        let dbg = lib.join(format!(".debug/librumpuser_{f}.so.debug"));
        entries.push(Entry {
            name: format!("ours-{f} .so"),
            file: file_size(&so)?,
            code_data: code_data(&so)?,
            debug: file_size(&dbg)?,
            apart: true,
        });
    }
    let mut sources = Vec::new();
    if let Some(p) = reference("RUMPUSER_REFERENCE_LIB", crate::bench_c::DEFAULT_REFERENCE) {
        entries.extend(netbsd("netbsd-pthread", &p)?);
        sources.push(format!("netbsd-pthread: {}", p.display()));
    } else {
        eprintln!("sizes: no NetBSD pthread librumpuser (set RUMPUSER_REFERENCE_LIB)");
    }
    match reference("RUMPUSER_FIBER_LIB", crate::bench_c::DEFAULT_FIBER) {
        Some(p) if crate::bench_c::is_rumpfiber(&p) => {
            entries.extend(netbsd("netbsd-fiber", &p)?);
            sources.push(format!("netbsd-fiber: {}", p.display()));
        }
        Some(p) => eprintln!(
            "sizes: {} is not NetBSD's rumpfiber (no init_mainthread): no fiber rows (set RUMPUSER_FIBER_LIB)",
            p.display()
        ),
        None => eprintln!("sizes: no NetBSD fiber librumpuser (set RUMPUSER_FIBER_LIB)"),
    }
    let table = render(&entries);
    print!("{table}");
    for s in &sources {
        eprintln!("sizes: {s}");
    }
    // The sizes depend on the compiler more than on the machine.
    let rustc = output(Command::new("rustc").arg("-V")).unwrap_or_default();
    let extra = format!("{}; `cargo xtask sizes`", rustc.trim());
    let body = format!("{}\n\n{table}", Stamp::collect().render(&extra));
    outputs.write("sizes", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_output_is_parsed() {
        let one = "   text\t   data\t    bss\t    dec\t    hex\tfilename\n  46092\t   1692\t  68808\t 116592\t  1c770\tlib.so\n";
        assert_eq!(parse_size(one), Some(47784));
        let archive = "   text\t   data\t    bss\t    dec\t    hex\tfilename\n   100\t   10\t 0\t 110\t 6e\ta.o (ex lib.a)\n   \
                       200\t   20\t 0\t 220\t dc\tb.o (ex lib.a)\n   300\t   30\t 0\t 330\t 14a\t(TOTALS)\n";
        assert_eq!(parse_size(archive), Some(330));
        assert_eq!(parse_size("size: x: file format not recognized\n"), None);
    }

    #[test]
    fn debug_sections_are_summed() {
        let readelf = "There are 3 section headers:\n\nSection Headers:\n  \
            [Nr] Name              Type            Address          Off    Size   ES Flg Lk Inf Al\n  \
            [ 0]                   NULL            0000000000000000 000000 000000 00      0   0  0\n  \
            [ 1] .text             PROGBITS        0000000000001000 001000 000100 00  AX  0   0 16\n  \
            [ 2] .debug_info       PROGBITS        0000000000000000 002000 011b6a 00      0   0  1\n  \
            [ 3] .debug_line       PROGBITS        0000000000000000 013b6a 000010 00      0   0  1\n";
        assert_eq!(parse_debug_bytes(readelf), 0x11b6a + 0x10);
        assert_eq!(parse_debug_bytes(""), 0);
    }

    #[test]
    fn the_table() {
        let e = [
            Entry {
                name: "ours-posix .so".into(),
                file: 1_435_032,
                code_data: 1_427_054,
                debug: 2_071_000,
                apart: true,
            },
            Entry {
                name: "netbsd-pthread .so".into(),
                file: 219_656,
                code_data: 47_784,
                debug: 88_000,
                apart: false,
            },
            Entry {
                name: "stripped".into(),
                file: 1000,
                code_data: 900,
                debug: 0,
                apart: false,
            },
        ];
        let md = render(&e);
        let lines: Vec<&str> = md.lines().collect();
        let cells = |l: &str| -> Vec<String> {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        };
        assert_eq!(
            cells(lines[0]),
            ["library", "file", "code + data", "debug info (on disk)"]
        );
        assert_eq!(
            cells(lines[2]),
            ["ours-posix .so", "1401 KiB", "1394 KiB", "2022 KiB apart"]
        );
        assert_eq!(
            cells(lines[3]),
            [
                "netbsd-pthread .so",
                "215 KiB",
                "46.7 KiB",
                "85.9 KiB inside"
            ]
        );
        assert_eq!(cells(lines[4]), ["stripped", "1.0 KiB", "0.9 KiB", "none"]);
    }
}
