//! Conflicts with their values numbered from 1, the numbers `resolve --pick` takes.

use eenplan_core::DeviceId;
use eenplan_core::people::Person;
use eenplan_core::plan::conflicts::FieldValue;
use eenplan_core::plan::{Compartment, Conflict};
use serde::Serialize;

use super::{Lines, Output, iso_utc};
use crate::error::CliError;

#[derive(Debug, Serialize)]
struct ConflictJson<'a> {
    id: &'a str,
    compartment: Compartment,
    path: &'a [String],
    label: &'a str,
    values: Vec<ValueJson<'a>>,
}

#[derive(Debug, Serialize)]
struct ValueJson<'a> {
    /// 1-based, as `resolve --pick` takes it.
    pick: usize,
    value: &'a FieldValue,
    author: Option<DeviceId>,
    author_person: Option<&'a Person>,
    at_ms: Option<i64>,
    /// `at_ms` as UTC ISO-8601.
    at: Option<String>,
}

pub fn conflicts_json(conflicts: &[Conflict]) -> Result<Output, CliError> {
    let rows: Vec<ConflictJson<'_>> = conflicts
        .iter()
        .map(|c| ConflictJson {
            id: &c.id,
            compartment: c.compartment,
            path: &c.path,
            label: &c.label,
            values: c
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| ValueJson {
                    pick: i + 1,
                    value: &v.value,
                    author: v.author,
                    author_person: v.author_person.as_ref(),
                    at_ms: v.at_ms,
                    at: v.at_ms.map(iso_utc),
                })
                .collect(),
        })
        .collect();
    Output::json(&rows)
}

pub fn conflicts_text(conflicts: &[Conflict]) -> String {
    if conflicts.is_empty() {
        return "no conflicts".into();
    }
    let mut out = Lines::default();
    for c in conflicts {
        out.line(0, &c.id);
        out.line(2, &c.label);
        for (i, v) in c.values.iter().enumerate() {
            let author = match (&v.author_person, v.author) {
                (Some(p), _) => format!("{} ({})", p.name, p.organisation),
                (None, Some(device)) => format!("device {device}"),
                (None, None) => "unknown device".into(),
            };
            let at = v.at_ms.map(|ms| format!(" at {}", iso_utc(ms))).unwrap_or_default();
            out.line(2, format!("{}. {}  by {author}{at}", i + 1, v.value));
        }
        out.blank();
    }
    out.finish()
}
