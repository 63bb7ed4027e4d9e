//! How long work reports its progress: one [`Progress`] per task (a DDPM, a cell, an
//! evaluation), made by a [`Tasks`] so that a grid can show one bar per running cell. The `dia`
//! binary implements them with progress bars; [`Quiet`] ignores everything.

/// The progress of one task.
pub trait Progress: Send + Sync {
    /// The number of units the task will take (steps, iterations, images).
    fn set_length(&self, len: u64);
    /// Units done.
    fn set_position(&self, pos: u64);
    /// A short status (loss, stage).
    fn set_message(&self, msg: String);
    /// The task's stage label (e.g. `train features`).
    fn set_stage(&self, _stage: &str) {}
    /// The task ended, with a final message.
    fn finish(&self, msg: String);
}

/// Makes the [`Progress`] of each task of a run.
pub trait Tasks: Sync {
    /// A new task called `name`.
    fn task(&self, name: &str) -> Box<dyn Progress>;
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn set_length(&self, _len: u64) {}
    fn set_position(&self, _pos: u64) {}
    fn set_message(&self, _msg: String) {}
    fn finish(&self, _msg: String) {}
}

impl Tasks for Quiet {
    fn task(&self, _name: &str) -> Box<dyn Progress> {
        Box::new(Quiet)
    }
}
