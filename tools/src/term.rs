//! What `ectable` and `ecbench` show a person, in one place: confirmation prompts, progress
//! bars (indicatif), byte sizes (bytesize), durations (humantime) and tables (comfy-table).
//!
//! Prompts and progress go to stderr, and progress only to a terminal (a plain line per tenth
//! of the work where stderr is not one); tables and sizes are returned as text for the caller
//! to print.

use anyhow::Result;
use bytesize::ByteSize;
use comfy_table::{presets, CellAlignment, Table};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Asks `question [y/N]` on stderr and reads the answer from stdin: anything but `y`, `Y` or
/// `yes` cancels, with an error saying that nothing was written.
/// Lets a write to a closed pipe end the process quietly, as it does for other Unix tools
/// (`ectable status | head -1`), instead of Rust's default of ignoring SIGPIPE, which turns
/// the write into an error and `println!` into a panic (exit 101). Call first in `main`.
pub fn default_sigpipe() {
    // SAFETY: signal() with SIG_DFL installs no handler of ours, so nothing can run in a
    // signal context; it is called before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub fn confirm(question: &str) -> Result<()> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        crate::fail!(crate::exit::NO, "cancelled; nothing was written")
    }
}

/// Whether a command should ask before it destroys something: stdin is a terminal and the
/// user did not say `--yes`.
pub fn should_ask(yes: bool) -> bool {
    !yes && std::io::stdin().is_terminal()
}

/// A byte count in binary units: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn bytes(n: u64) -> String {
    ByteSize::b(n).display().iec().to_string()
}

/// A rate in bytes per second over `elapsed`: `12.5 MiB/s`.
pub fn rate(n: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    format!("{}/s", bytes((n as f64 / secs) as u64))
}

/// A duration for people: to the millisecond under a minute (`2s 350ms`), to the second
/// above (`1h 2m 5s`).
pub fn duration(d: Duration) -> String {
    let d = if d < Duration::from_secs(60) {
        Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    } else {
        Duration::from_secs(d.as_secs())
    };
    humantime::format_duration(d).to_string()
}

/// A table without borders, in the style of `zpool status`: a header row, then the rows;
/// the columns `right` names are right-aligned (numbers), the others left-aligned.
pub fn table<S: ToString>(header: &[S], right: &[usize]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.iter().map(ToString::to_string).collect::<Vec<_>>());
    for &i in right {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// A table's lines, each indented by `indent` (in place of the first cell's padding) and
/// without trailing blanks.
pub fn table_lines(t: &Table, indent: &str) -> Vec<String> {
    t.lines()
        .map(|l| format!("{indent}{}", l.strip_prefix(' ').unwrap_or(&l).trim_end()))
        .collect()
}

/// Every bar is drawn through this, so that log lines can be written above the bars instead
/// of through them ([`LogWriter`]).
fn bars() -> &'static MultiProgress {
    static BARS: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

/// Runs `f` (which writes lines to the terminal) with the progress bars cleared, and draws
/// them again after it.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    bars().suspend(f)
}

/// Whether log lines may carry colour codes: stderr is a terminal and `NO_COLOR` is not set.
pub fn log_colours() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The log's writer (`tracing_subscriber::fmt().with_writer(term::LogWriter)`): stderr, with
/// the progress bars cleared while a line is written and drawn again after it, so that a
/// warning during `load` or `rebuild` does not tear the bar.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        bars().suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

/// Progress of work counted in rows (`load`, `verify`, `import`, `export`): a bar on a
/// terminal; otherwise a plain line on stderr per tenth of the work, or, when the total is
/// not known (0), one every 2 seconds: `load: 30% (300000 of 1000000 rows, 41000 rows/s)`.
pub struct RowProgress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: Cell<u64>,
    last_line: Cell<(u64, Instant)>,
    start: Instant,
}

impl RowProgress {
    pub fn new(total: u64, label: &str) -> RowProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let pb = bars().add(ProgressBar::new(total));
            let template = if total > 0 {
                "{msg} [{elapsed_precise}] [{wide_bar}] {pos}/{len} rows {per_sec} eta {eta}"
            } else {
                "{msg} [{elapsed_precise}] {pos} rows {per_sec}"
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            pb.set_style(style);
            pb.set_message(label.to_string());
            pb
        });
        let start = Instant::now();
        RowProgress {
            bar,
            label: label.to_string(),
            total,
            done: Cell::new(0),
            last_line: Cell::new((0, start)),
            start,
        }
    }

    /// `done` rows so far.
    pub fn set(&self, done: u64) {
        self.done.set(done);
        if let Some(b) = &self.bar {
            b.set_position(done);
            return;
        }
        let (last, at) = self.last_line.get();
        let per_sec = done as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        match (done.min(self.total) * 10).checked_div(self.total) {
            Some(decile) if decile > last && decile < 10 => {
                self.last_line.set((decile, Instant::now()));
                eprintln!(
                    "{}: {}% ({done} of {} rows, {per_sec:.0} rows/s)",
                    self.label,
                    decile * 10,
                    self.total
                );
            }
            None if at.elapsed() >= Duration::from_secs(2) => {
                self.last_line.set((last, Instant::now()));
                eprintln!("{}: {done} rows ({per_sec:.0} rows/s)", self.label);
            }
            _ => {}
        }
    }

    pub fn inc(&self, n: u64) {
        self.set(self.done.get() + n);
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// One line of text redrawn in place on a terminal (`set_message`); hidden otherwise.
pub fn status_line() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = bars().add(ProgressBar::new_spinner());
    let style =
        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}

/// Progress of long work in bytes: a bar on a terminal, a plain line per 10% otherwise.
pub struct ByteProgress {
    bar: Option<ProgressBar>,
    label: &'static str,
    last_decile: Cell<u64>,
    start: Instant,
}

impl ByteProgress {
    pub fn new(label: &'static str) -> ByteProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let pb = bars().add(ProgressBar::new(0));
            let style = ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            pb.set_style(style);
            pb.set_message(label);
            pb
        });
        ByteProgress {
            bar,
            label,
            last_decile: Cell::new(0),
            start: Instant::now(),
        }
    }

    pub fn update(&self, p: &ectable_engine::Progress) {
        match &self.bar {
            Some(b) => {
                // The byte total is an estimate (a rebuild reads only k members, and reads
                // back what it wrote); the bar never runs past it and ends full.
                let total = if p.segments_done == p.segments_total && !p.interrupted {
                    p.bytes_scanned
                } else {
                    p.bytes_total.max(p.bytes_scanned)
                };
                b.set_length(total);
                b.set_position(p.bytes_scanned);
            }
            None => {
                // Progress counts segments, which is exact and ends at 100 %.
                let decile = (p.segments_done as u64 * 10)
                    .checked_div(p.segments_total as u64)
                    .unwrap_or(10);
                if decile > self.last_decile.get() {
                    self.last_decile.set(decile);
                    eprintln!(
                        "{}: {}% ({} of {} segments, {} scanned at {}, {} rebuilt)",
                        self.label,
                        decile * 10,
                        p.segments_done,
                        p.segments_total,
                        bytes(p.bytes_scanned),
                        rate(p.bytes_scanned, self.start.elapsed()),
                        bytes(p.bytes_rebuilt)
                    );
                }
            }
        }
    }

    /// `done` of `total` bytes (a backup, a verify, a restore): the bar, or a plain line per
    /// tenth of the work, `restore: 30% (12.0 MiB of 40.0 MiB, 35.2 MiB/s)`, none at 100 %.
    pub fn update_bytes(&self, done: u64, total: u64) {
        match &self.bar {
            Some(b) => {
                b.set_length(total);
                b.set_position(done);
            }
            None => {
                let decile = (done.min(total) * 10).checked_div(total).unwrap_or(10);
                if decile > self.last_decile.get() && decile < 10 {
                    self.last_decile.set(decile);
                    eprintln!(
                        "{}: {}% ({} of {}, {})",
                        self.label,
                        decile * 10,
                        bytes(done),
                        bytes(total),
                        rate(done, self.start.elapsed())
                    );
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(100 << 20), "100.0 MiB");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
        assert_eq!(duration(Duration::from_micros(2_350_400)), "2s 350ms");
        assert_eq!(duration(Duration::from_millis(3_725_500)), "1h 2m 5s");
        assert_eq!(rate(10 << 20, Duration::from_secs(2)), "5.0 MiB/s");
    }

    #[test]
    fn tables_align_their_columns() {
        let mut t = table(&["NAME", "N"], &[1]);
        t.add_row(vec!["a", "1"]);
        t.add_row(vec!["bbb", "100"]);
        let lines = table_lines(&t, "  ");
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("  ") && lines[0].contains("NAME"));
        assert!(lines[1].ends_with("  1") && lines[2].ends_with("100"));
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
    }
}
