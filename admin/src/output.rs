//! What a command prints: plain text for people (or one bare value, for scripts to capture),
//! or JSON with `--json`.

use std::io::Write;

use serde::Serialize;

use crate::error::AdminError;

#[derive(Debug)]
pub enum Output {
    Text(String),
    Json(serde_json::Value),
}

impl Output {
    /// Picks the form: `json` is built only when asked for, `text` otherwise.
    pub fn either<T: Serialize>(
        json: bool,
        value: impl FnOnce() -> T,
        text: impl FnOnce() -> String,
    ) -> Result<Output, AdminError> {
        if json {
            serde_json::to_value(value()).map(Output::Json).map_err(AdminError::Json)
        } else {
            Ok(Output::Text(text()))
        }
    }

    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        match self {
            Output::Text(text) if text.is_empty() => Ok(()),
            Output::Text(text) if text.ends_with('\n') => out.write_all(text.as_bytes()),
            Output::Text(text) => writeln!(out, "{text}"),
            Output::Json(value) => {
                // `From` keeps the kind of an I/O error (a closed pipe stays `BrokenPipe`).
                serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::from)?;
                writeln!(out)
            }
        }
    }
}

/// Left-aligned columns under a header; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<&str> = cells.collect();
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// A server time (ms since the epoch) as UTC, to the minute.
pub fn time(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// How long ago `at` was, seen at `now`, in Dutch: "zojuist", "3 min geleden", "2 uur
/// geleden", "gisteren", "5 dagen geleden"; further back (or in the future) the date.
pub fn ago(at: i64, now: i64) -> String {
    const MINUTE: i64 = 60_000;
    let past = now.saturating_sub(at);
    match past {
        i64::MIN..0 if past > -MINUTE => "zojuist".to_string(),
        0..MINUTE => "zojuist".to_string(),
        MINUTE..3_600_000 => format!("{} min geleden", past / MINUTE),
        3_600_000..86_400_000 => format!("{} uur geleden", past / 3_600_000),
        86_400_000..172_800_000 => "gisteren".to_string(),
        172_800_000..2_592_000_000 => format!("{} dagen geleden", past / 86_400_000),
        _ => eenplan_core::calendar::dutch_long_date_of_ms(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let text = table(
            &["ID", "NAME"],
            &[vec!["1".into(), "Wijkteam Noord".into()], vec!["12".into(), "GGZ".into()]],
        );
        assert_eq!(text, "ID  NAME\n1   Wijkteam Noord\n12  GGZ\n");
    }

    #[test]
    fn times_ago_read_as_dutch_people_say_them() {
        let now = 1_800_000_000_000;
        assert_eq!(ago(now - 20_000, now), "zojuist");
        assert_eq!(ago(now + 20_000, now), "zojuist");
        assert_eq!(ago(now - 3 * 60_000 - 5, now), "3 min geleden");
        assert_eq!(ago(now - 2 * 3_600_000, now), "2 uur geleden");
        assert_eq!(ago(now - 30 * 3_600_000, now), "gisteren");
        assert_eq!(ago(now - 5 * 86_400_000, now), "5 dagen geleden");
        assert_eq!(
            ago(now - 40 * 86_400_000, now),
            eenplan_core::calendar::dutch_long_date_of_ms(now - 40 * 86_400_000)
        );
    }

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        assert_eq!(time(i64::MAX), i64::MAX.to_string());
    }
}
