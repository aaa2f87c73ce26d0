//! Progress of backups, verifies and restores on stderr: a bar on a terminal, otherwise a
//! plain line at every tenth of the work (`restore: 30% (12.0 MiB of 40.0 MiB, 35.2 MiB/s)`).

use super::human_bytes;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

pub struct Progress {
    bar: Option<ProgressBar>,
    label: &'static str,
    last_decile: u64,
    start: Instant,
}

impl Progress {
    pub fn new(label: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let pb = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            pb.set_style(style);
            pb.set_message(label);
            pb
        });
        Progress {
            bar,
            label,
            last_decile: 0,
            start: Instant::now(),
        }
    }

    /// `done` of `total` bytes.
    pub fn update(&mut self, done: u64, total: u64) {
        match &self.bar {
            Some(b) => {
                b.set_length(total);
                b.set_position(done);
            }
            None => {
                let decile = (done.min(total) * 10).checked_div(total).unwrap_or(10);
                if decile > self.last_decile && decile < 10 {
                    self.last_decile = decile;
                    let secs = self.start.elapsed().as_secs_f64().max(1e-3);
                    eprintln!(
                        "{}: {}% ({} of {}, {}/s)",
                        self.label,
                        decile * 10,
                        human_bytes(done),
                        human_bytes(total),
                        human_bytes((done as f64 / secs) as u64)
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
