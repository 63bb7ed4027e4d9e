//! The pipeline's progress reports as indicatif bars, one per task. When stderr is not a
//! terminal (a batch job, output redirected) the bars are hidden, so each task logs a progress
//! line through `tracing` instead — position, rate, ETA and its message — at most every
//! `DIA_LOG_EVERY` seconds (default 30).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dia_pipeline::{Progress, Tasks};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Seconds between two progress lines when stderr is not a terminal.
const LOG_EVERY_ENV: &str = "DIA_LOG_EVERY";

/// One task's bar (or, without a terminal, its log lines).
pub(crate) struct Bar {
    bar: ProgressBar,
    /// When the last line was logged; `None` when a terminal shows the bar.
    logged: Option<Mutex<Instant>>,
    every: Duration,
}

impl Bar {
    /// A bar drawn with `template` (indicatif's syntax).
    pub(crate) fn new(template: &str) -> Self {
        Self::wrap(ProgressBar::new(0), template)
    }

    fn wrap(bar: ProgressBar, template: &str) -> Self {
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        let every = std::env::var(LOG_EVERY_ENV)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(Duration::from_secs(30), Duration::from_secs_f64);
        let logged = (!std::io::stderr().is_terminal()).then(|| Mutex::new(Instant::now()));
        Self { bar, logged, every }
    }

    /// Logs a progress line when there is no terminal and the interval has passed.
    fn log(&self, force: bool) {
        let Some(last) = &self.logged else { return };
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if !force && last.elapsed() < self.every {
            return;
        }
        *last = Instant::now();
        let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
        tracing::info!(
            "{} {pos}/{len} {} ({:.1}/s, ETA {}s)",
            self.bar.prefix(),
            self.bar.message(),
            self.bar.per_sec(),
            self.bar.eta().as_secs()
        );
    }

    /// Removes the bar (a terminal) or logs the last line (no terminal).
    pub(crate) fn finish(&self) {
        self.log(true);
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn set_length(&self, len: u64) {
        self.bar.set_length(len);
    }
    fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
        self.log(false);
    }
    fn set_message(&self, msg: String) {
        self.bar.set_message(msg);
    }
    fn set_stage(&self, stage: &str) {
        self.bar.set_prefix(stage.to_string());
    }
    fn finish(&self, msg: String) {
        self.bar.set_message(msg);
        self.log(true);
        self.bar.finish();
    }
}

/// A bar per task, stacked.
pub(crate) struct Bars(pub(crate) MultiProgress);

impl Tasks for Bars {
    fn task(&self, name: &str) -> Box<dyn Progress> {
        let bar = Bar::wrap(
            self.0.add(ProgressBar::new(0)),
            "{prefix:<36} [{bar:25}] {pos}/{len} {msg}",
        );
        bar.bar.set_prefix(name.to_string());
        Box::new(bar)
    }
}
