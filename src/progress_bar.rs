//! The ingest progress bar over all the files of one command; indicatif draws
//! nothing when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressStyle};
use tollgate_ingest::Progress;

#[derive(Debug)]
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar for `total_bytes` of input, however many files they are in.
    pub fn new(total_bytes: u64) -> Self {
        let bar = ProgressBar::new(total_bytes);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Bar(bar)
    }

    /// Prints a line to stdout without tearing the bar.
    pub fn println(&self, line: &str) {
        let line = tollgate_store::output::terminal_text(line);
        self.0.suspend(|| println!("{line}"));
    }

    /// Prints a line to stderr without tearing the bar.
    pub fn eprintln(&self, line: &str) {
        let line = tollgate_store::output::terminal_text(line);
        self.0.suspend(|| eprintln!("{line}"));
    }

    /// Counts `bytes` as done without reading them (a file already ingested).
    pub fn skip(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    pub fn done(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn start(&self, source: &str, _total_bytes: u64) {
        self.0.set_message(source.to_owned());
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}
