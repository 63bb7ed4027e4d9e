//! The pipeline's progress reports as indicatif bars: one bar per task of a grid.

use dia_pipeline::{Progress, Tasks};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// One task's bar.
pub(crate) struct Bar(pub(crate) ProgressBar);

impl Progress for Bar {
    fn set_length(&self, len: u64) {
        self.0.set_length(len);
    }
    fn set_position(&self, pos: u64) {
        self.0.set_position(pos);
    }
    fn set_message(&self, msg: String) {
        self.0.set_message(msg);
    }
    fn set_stage(&self, stage: &str) {
        self.0.set_prefix(stage.to_string());
    }
    fn finish(&self, msg: String) {
        self.0.finish_with_message(msg);
    }
}

/// A bar per task, stacked.
pub(crate) struct Bars(pub(crate) MultiProgress);

impl Tasks for Bars {
    fn task(&self, name: &str) -> Box<dyn Progress> {
        let bar = self.0.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("{prefix:<36} [{bar:25}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        Box::new(Bar(bar))
    }
}
