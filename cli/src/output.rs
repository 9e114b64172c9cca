//! What a command prints. Commands return an [`Output`] instead of printing as they go, so that
//! a command either prints its whole result or only an error.

mod audience;
mod conflicts;
mod cycle;
mod plan_view;
mod review;

use std::fmt::Display;
use std::io::Write;

use serde::Serialize;

use crate::error::CliError;

pub use audience::audience_text;
pub use conflicts::{conflicts_json, conflicts_text};
pub use cycle::{adopted_text, agenda_text, migration_text, trend_text};
pub use plan_view::{Marks, plan_view_text, plan_view_text_marked};
pub use review::review_text;

#[derive(Debug)]
pub enum Output {
    Nothing,
    /// Human text or JSON, printed as is with a final newline added when missing.
    Text(String),
    /// A result for standard output (an id a script captures) and a line for the person at
    /// the console on standard error ("zichtbaar voor: …").
    Noted {
        text: String,
        notice: String,
    },
}

impl Output {
    pub fn json(value: &impl Serialize) -> Result<Output, CliError> {
        Ok(Output::Text(serde_json::to_string_pretty(value)?))
    }

    /// JSON when asked for, text otherwise; the text is only built when needed.
    pub fn choose<T: Serialize>(
        json: bool,
        value: &T,
        text: impl FnOnce(&T) -> String,
    ) -> Result<Output, CliError> {
        if json { Output::json(value) } else { Ok(Output::Text(text(value))) }
    }

    /// A new entity's id: alone on a line, so that scripts can capture it.
    pub fn id(json: bool, id: impl Display) -> Result<Output, CliError> {
        let id = id.to_string();
        if json { Output::json(&serde_json::json!({ "id": id })) } else { Ok(Output::Text(id)) }
    }

    /// What goes to standard error beside the result, if anything.
    pub fn notice(&self) -> Option<&str> {
        match self {
            Output::Noted { notice, .. } => Some(notice),
            Output::Nothing | Output::Text(_) => None,
        }
    }

    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let text = match self {
            Output::Nothing => return Ok(()),
            Output::Text(t) | Output::Noted { text: t, .. } => t,
        };
        if text.is_empty() {
            return Ok(());
        }
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

/// Milliseconds since the epoch as UTC ISO-8601, e.g. `2025-03-01T09:30:00.000Z`.
pub fn iso_utc(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{ms} ms after the epoch"))
}

/// Builds indented human output; continuation lines of multi-line text keep the indent.
#[derive(Debug, Default)]
pub struct Lines(String);

impl Lines {
    pub fn line(&mut self, indent: usize, text: impl Display) {
        let text = text.to_string();
        let mut rows = text.lines();
        let first = rows.next().unwrap_or_default();
        self.push(indent, first);
        // Continuation lines align under the first line's text, not under its prefix.
        let hang = indent
            + first.find("  ").map_or(0, |at| {
                let gap = first.get(at..).unwrap_or_default();
                at + gap.len() - gap.trim_start().len()
            });
        for row in rows {
            self.push(hang, row);
        }
    }

    pub fn blank(&mut self) {
        if !self.0.is_empty() && !self.0.ends_with("\n\n") {
            self.0.push('\n');
        }
    }

    fn push(&mut self, indent: usize, row: &str) {
        self.0.extend(std::iter::repeat_n(' ', indent));
        self.0.push_str(row.trim_end());
        self.0.push('\n');
    }

    pub fn finish(mut self) -> String {
        while self.0.ends_with("\n\n") {
            self.0.pop();
        }
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_utc_iso_8601_with_milliseconds() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(1_740_821_400_123), "2025-03-01T09:30:00.123Z");
    }

    #[test]
    fn out_of_range_timestamps_still_print() {
        assert!(iso_utc(i64::MAX).contains("ms"));
    }

    #[test]
    fn continuation_lines_hang_under_the_text() {
        let mut lines = Lines::default();
        lines.line(2, "abcd  first\nsecond");
        assert_eq!(lines.finish(), "  abcd  first\n        second\n");
    }
}
