//! Generated markdown: tables, the stamp that says where and when figures
//! were measured, and marked regions of a document that a command
//! replaces in place.
//!
//! A region is the text between `<!-- NAME:begin -->` and
//! `<!-- NAME:end -->` (each on a line of its own); `--update FILE` of the
//! bench and size commands rewrites only that text, so the document's
//! prose around it stays as written.

use crate::util::{output, root, Result};
use std::path::Path;
use std::process::Command;

/// Column alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A markdown table with columns padded to their widest cell.
pub fn table(header: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut width: Vec<usize> = header
        .iter()
        .map(|(h, _)| h.chars().count().max(3))
        .collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let cell = |s: &str, w: usize, a: Align| match a {
        Align::Left => format!(" {s:<w$} |"),
        Align::Right => format!(" {s:>w$} |"),
    };
    let mut out = String::from("|");
    for ((h, a), &w) in header.iter().zip(&width) {
        out.push_str(&cell(h, w, *a));
    }
    out.push_str("\n|");
    for ((_, a), &w) in header.iter().zip(&width) {
        match a {
            Align::Left => out.push_str(&format!("{}|", "-".repeat(w + 2))),
            Align::Right => out.push_str(&format!("{}:|", "-".repeat(w + 1))),
        }
    }
    out.push('\n');
    for r in rows {
        out.push('|');
        for i in 0..n {
            let c = r.get(i).map_or("", String::as_str);
            out.push_str(&cell(c, width[i], header[i].1));
        }
        out.push('\n');
    }
    out
}

fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    )
}

/// `doc` with the text of region `name` replaced by `body`. Fails unless
/// the region's two markers occur exactly once each, begin before end.
pub fn replace_region(doc: &str, name: &str, body: &str) -> Result<String> {
    let (begin, end) = markers(name);
    let find = |m: &str| -> Result<usize> {
        let hits: Vec<usize> = doc
            .match_indices(m)
            .map(|(i, _)| i)
            .filter(|&i| {
                (i == 0 || doc[..i].ends_with('\n')) && doc[i + m.len()..].starts_with('\n')
            })
            .collect();
        match hits[..] {
            [i] => Ok(i),
            [] => Err(format!("no line `{m}`")),
            _ => Err(format!("`{m}` occurs {} times", hits.len())),
        }
    };
    let b = find(&begin)?;
    let e = find(&end)?;
    if e < b {
        return Err(format!("`{end}` comes before `{begin}`"));
    }
    let body = body.trim_end_matches('\n');
    Ok(format!("{}{begin}\n{body}\n{}", &doc[..b], &doc[e..]))
}

/// Replaces region `name` of the file at `path` with `body`.
pub fn update_file(path: &Path, name: &str, body: &str) -> Result<()> {
    let doc = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let new = replace_region(&doc, name, body).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(path, new).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("updated <!-- {name} --> in {}", path.display());
    Ok(())
}

/// `--markdown FILE` (write the generated text) and `--update FILE`
/// (replace its region in a document), taken out of a command's arguments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    /// Write the region's text to this file.
    pub markdown: Option<std::path::PathBuf>,
    /// Replace the region in this document.
    pub update: Option<std::path::PathBuf>,
}

impl Outputs {
    /// Removes `--markdown FILE` and `--update FILE` from `args`.
    pub fn take(args: &[String]) -> Result<(Self, Vec<String>)> {
        let mut o = Outputs::default();
        let mut rest = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let slot = match a.as_str() {
                "--markdown" => &mut o.markdown,
                "--update" => &mut o.update,
                _ => {
                    rest.push(a.clone());
                    continue;
                }
            };
            *slot = Some(it.next().ok_or_else(|| format!("{a} needs a file"))?.into());
        }
        Ok((o, rest))
    }

    /// Writes `body` where asked (nothing if neither option was given).
    pub fn write(&self, region: &str, body: &str) -> Result<()> {
        if let Some(p) = &self.markdown {
            std::fs::write(p, body).map_err(|e| format!("{}: {e}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        if let Some(p) = &self.update {
            update_file(p, region, body)?;
        }
        Ok(())
    }
}

/// Where and when figures were taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// `git rev-parse --short HEAD`.
    pub commit: String,
    /// Tracked files differ from the commit.
    pub dirty: bool,
    /// `YYYY-MM-DD HH:MM` UTC.
    pub date: String,
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// Logical CPUs.
    pub cores: usize,
    /// Kernel name and release.
    pub kernel: String,
}

impl Stamp {
    /// The stamp of this machine, now.
    pub fn collect() -> Self {
        let git = |args: &[&str]| {
            output(Command::new("git").args(args).current_dir(root())).unwrap_or_default()
        };
        let commit = git(&["rev-parse", "--short", "HEAD"]).trim().to_string();
        let dirty = !git(&["status", "--porcelain", "--untracked-files=no"])
            .trim()
            .is_empty();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Stamp {
            commit: if commit.is_empty() {
                "unknown".into()
            } else {
                commit
            },
            dirty,
            date: utc_minutes(secs),
            cpu: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown CPU".into()),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: format!("Linux {}", release.trim()),
        }
    }

    /// One line: commit, date, machine, and `extra` (run parameters).
    pub fn render(&self, extra: &str) -> String {
        let dirty = if self.dirty { " (modified)" } else { "" };
        let mut s = format!(
            "Commit `{}`{dirty}, {} UTC; {}, {} CPUs, {}",
            self.commit, self.date, self.cpu, self.cores, self.kernel
        );
        if !extra.is_empty() {
            s.push_str("; ");
            s.push_str(extra);
        }
        s.push('.');
        s
    }
}

/// The first `model name` of a `/proc/cpuinfo` (x86), or the `CPU part`
/// line's neighbourhood on machines that have no model name.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.split_whitespace().collect::<Vec<_>>().join(" "))
        })
    };
    field("model name")
        .or_else(|| field("Model"))
        .or_else(|| field("CPU part").map(|p| format!("CPU part {p}")))
        .filter(|s| !s.is_empty())
}

/// `YYYY-MM-DD HH:MM` for seconds since the Unix epoch (UTC; the civil
/// calendar from a day count, as in Howard Hinnant's `civil_from_days`).
pub fn utc_minutes(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_padded_and_aligned() {
        let t = table(
            &[("op", Align::Left), ("ns", Align::Right)],
            &[
                vec!["mutex".into(), "12.5".into()],
                vec!["a_longer_name".into(), "3".into()],
            ],
        );
        assert_eq!(
            t,
            "| op            |   ns |\n\
             |---------------|-----:|\n\
             | mutex         | 12.5 |\n\
             | a_longer_name |    3 |\n"
        );
        // Short rows get empty cells.
        let t = table(
            &[("a", Align::Left), ("b", Align::Right)],
            &[vec!["x".into()]],
        );
        assert!(t.ends_with("| x   |     |\n"), "{t}");
    }

    const DOC: &str =
        "# Title\n\nprose\n<!-- t:begin -->\nold\nlines\n<!-- t:end -->\nmore prose\n";

    #[test]
    fn a_region_is_replaced_and_nothing_else() {
        let new = replace_region(DOC, "t", "new table\n\n").unwrap();
        assert_eq!(
            new,
            "# Title\n\nprose\n<!-- t:begin -->\nnew table\n<!-- t:end -->\nmore prose\n"
        );
        // Idempotent.
        assert_eq!(replace_region(&new, "t", "new table").unwrap(), new);
        // An empty region stays well formed.
        let empty = replace_region(DOC, "t", "").unwrap();
        assert!(
            empty.contains("<!-- t:begin -->\n\n<!-- t:end -->"),
            "{empty}"
        );
        assert_eq!(
            replace_region(&empty, "t", "x")
                .unwrap()
                .matches("x")
                .count(),
            1
        );
    }

    #[test]
    fn a_malformed_region_is_refused() {
        assert!(replace_region(DOC, "u", "x")
            .unwrap_err()
            .contains("no line"));
        let twice = format!("{DOC}<!-- t:begin -->\n");
        assert!(replace_region(&twice, "t", "x")
            .unwrap_err()
            .contains("2 times"));
        let reversed = "<!-- t:end -->\n<!-- t:begin -->\n";
        assert!(replace_region(reversed, "t", "x")
            .unwrap_err()
            .contains("before"));
        // A marker inside a line (quoted in prose) is not one.
        let quoted = "see `<!-- t:begin -->`\n<!-- t:end -->\n";
        assert!(replace_region(quoted, "t", "x").is_err());
    }

    #[test]
    fn outputs_are_taken_out_of_the_arguments() {
        let args: Vec<String> = [
            "--rounds",
            "3",
            "--update",
            "B.md",
            "--markdown",
            "t.md",
            "-x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (o, rest) = Outputs::take(&args).unwrap();
        assert_eq!(o.update.as_deref(), Some(Path::new("B.md")));
        assert_eq!(o.markdown.as_deref(), Some(Path::new("t.md")));
        assert_eq!(rest, ["--rounds", "3", "-x"]);
        assert!(Outputs::take(&["--update".to_string()]).is_err());
    }

    #[test]
    fn stamp_pieces() {
        assert_eq!(utc_minutes(0), "1970-01-01 00:00");
        assert_eq!(utc_minutes(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc_minutes(1_709_251_199), "2024-02-29 23:59");
        assert_eq!(utc_minutes(4_102_444_800 + 3_660), "2100-01-01 01:01");
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)  CPU @ 2.20GHz\n\
                   processor\t: 1\nmodel name\t: Intel(R) Xeon(R)  CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model(x86).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n";
        assert_eq!(cpu_model(arm).as_deref(), Some("CPU part 0xd0c"));
        assert_eq!(cpu_model(""), None);
        let s = Stamp {
            commit: "abc1234".into(),
            dirty: true,
            date: "2025-01-02 03:04".into(),
            cpu: "Some CPU".into(),
            cores: 2,
            kernel: "Linux 6.1.0".into(),
        };
        assert_eq!(
            s.render("3 rounds"),
            "Commit `abc1234` (modified), 2025-01-02 03:04 UTC; Some CPU, 2 CPUs, Linux 6.1.0; 3 rounds."
        );
        assert!(!Stamp { dirty: false, ..s }.render("").contains("modified"));
    }
}
