//! Progress bars for long work (calibration, evaluation, the live oracle's timing).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps labelled `what`, with a message and the time left.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what:>10} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ETA {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    b
}
