//! The access log as the administrator judges it (DESIGN §8, NEN 7513): verdicts per chain,
//! the NEN 7513 rows of a query (table, JSON, CSV) and the family's report in plain Dutch.
//! Pure: what the server said has been fetched and checked by `commands::audit`.
//!
//! Who a device belongs to comes from its root-verified certificate, never from the event's
//! own actor fields nor from the server's listing; only events of verified chains (signed by
//! the device the chain is of) are shown, so a forged event is never a row or a sentence.

use std::collections::BTreeMap;

use eenplan_core::calendar::{dutch_date_string, dutch_long_date};
use eenplan_core::plan::{Compartment, Role};
use eenplan_protocol::api::hex;
use eenplan_protocol::audit::{AuditAction, AuditEvent, Finding, UploadFault, UploadProblem};
use serde::Serialize;

/// A person as a root-verified device certificate names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    pub user_id: i64,
    pub name: String,
    pub org: String,
    pub role: String,
}

/// One chain (a device's, or the server's) as judged.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The device (hex), or `server`.
    pub writer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
    pub events: usize,
    pub findings: Vec<Finding>,
    /// The chain ends before a position this keyring verified earlier: the server dropped
    /// uploads (or, for its own chain, events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated_below: Option<u64>,
    /// The server's chain: the event at a position verified earlier is another one now, or
    /// the server signs with another key than the one pinned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rewritten: Vec<String>,
    /// An approved, unrevoked device whose newest event is older than its organisation's
    /// lease: since when (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silent_since_ms: Option<i64>,
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
            && self.truncated_below.is_none()
            && self.rewritten.is_empty()
            && self.silent_since_ms.is_none()
    }

    /// "apparaat 3f2a… (Wim de Vries, Wijkteam Zaanstad): 412 gebeurtenissen, in orde".
    pub fn line(&self) -> String {
        let who = match (&self.person, self.writer.as_str()) {
            (_, "server") => "server".to_string(),
            (Some(p), device) => format!("apparaat {} ({}, {})", short(device), p.name, p.org),
            (None, device) => format!("apparaat {}", short(device)),
        };
        let mut problems: Vec<String> = self.findings.iter().map(finding_text).collect();
        if let Some(seq) = self.truncated_below {
            problems.push(format!("ingekort: eerder gecontroleerd tot {seq}"));
        }
        problems.extend(self.rewritten.iter().cloned());
        if let Some(since) = self.silent_since_ms {
            problems.push(format!("stil sinds {}", dutch_long_date(&dutch_date_string(since))));
        }
        let state = if problems.is_empty() { "in orde".to_string() } else { problems.join("; ") };
        let noun = if self.events == 1 { "gebeurtenis" } else { "gebeurtenissen" };
        format!("{who}: {} {noun}, {state}", self.events)
    }
}

fn short(device_hex: &str) -> String {
    device_hex.chars().take(12).collect()
}

pub fn finding_text(finding: &Finding) -> String {
    match finding {
        Finding::Gap { from, to } => format!("ontbreekt: {from}–{to}"),
        Finding::Fork { seq } => format!("vertakking bij {seq}"),
        Finding::BrokenLink { seq } => format!("gebroken schakel bij {seq}"),
        Finding::Forged { seq } => format!("vervalst: {seq}"),
        Finding::Misplaced { seq } => format!("verkeerde plaats: {seq}"),
    }
}

/// "upload 3–3 van apparaat 3f2a…: niet door dit apparaat ondertekend".
pub fn problem_text(problem: &UploadProblem) -> String {
    let why = match problem.fault {
        UploadFault::Malformed => "onleesbaar",
        UploadFault::UnknownDevice => "van een apparaat zonder geldig certificaat",
        UploadFault::NotSigned => "niet door dit apparaat ondertekend",
        UploadFault::NoKey => "versleuteld met een auditsleutel die deze sleutelring niet heeft",
        UploadFault::Unopenable => "niet te openen of niet wat de kop zegt",
    };
    format!(
        "upload {}–{} van apparaat {}: {why}",
        problem.first,
        problem.last,
        short(&hex(&problem.device.0))
    )
}

/// An event with who wrote its chain.
#[derive(Debug, Clone)]
pub struct Sourced {
    pub event: AuditEvent,
    /// The device whose chain holds it; `None` for the server's chain.
    pub device: Option<[u8; 16]>,
    /// From the device's root-verified certificate.
    pub person: Option<Person>,
}

/// The NEN 7513 fields of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub tijdstip: String,
    pub bron: String,
    pub gebruiker_id: i64,
    pub gebruiker_naam: String,
    pub apparaat: String,
    pub organisatie: String,
    pub rol: String,
    pub namens: String,
    pub actie: String,
    pub plan: String,
    pub compartiment: String,
    pub object: String,
    pub resultaat: String,
    pub detail: String,
}

pub const CSV_HEADER: [&str; 14] = [
    "tijdstip",
    "bron",
    "gebruiker_id",
    "gebruiker_naam",
    "apparaat",
    "organisatie",
    "rol",
    "namens",
    "actie",
    "plan",
    "compartiment",
    "object",
    "resultaat",
    "detail",
];

impl Row {
    pub fn of(sourced: &Sourced) -> Row {
        let event = &sourced.event;
        // A device's identity is its certificate's; the server names its own actors.
        let person = sourced.person.clone().unwrap_or_else(|| Person {
            user_id: event.actor.user_id,
            name: event.actor.user_name.clone(),
            org: event.actor.organisation.clone(),
            role: event.actor.role.clone(),
        });
        Row {
            tijdstip: timestamp(event.at_ms),
            bron: if sourced.device.is_some() { "apparaat" } else { "server" }.into(),
            gebruiker_id: person.user_id,
            gebruiker_naam: person.name,
            apparaat: sourced.device.map(|d| hex(&d)).unwrap_or_default(),
            organisatie: person.org,
            rol: person.role,
            namens: event.on_behalf_of.clone().unwrap_or_default(),
            actie: event.action.as_str().into(),
            plan: event.plan.map(|p| hex(&p.0)).unwrap_or_default(),
            compartiment: event.compartment.map(compartment_label).unwrap_or_default(),
            object: event.object.clone().unwrap_or_default(),
            resultaat: event.result.as_str().into(),
            detail: event.detail.clone().unwrap_or_default(),
        }
    }

    fn fields(&self) -> [String; 14] {
        [
            self.tijdstip.clone(),
            self.bron.clone(),
            self.gebruiker_id.to_string(),
            self.gebruiker_naam.clone(),
            self.apparaat.clone(),
            self.organisatie.clone(),
            self.rol.clone(),
            self.namens.clone(),
            self.actie.clone(),
            self.plan.clone(),
            self.compartiment.clone(),
            self.object.clone(),
            self.resultaat.clone(),
            self.detail.clone(),
        ]
    }
}

/// ISO 8601 in UTC, to the millisecond.
fn timestamp(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| ms.to_string())
}

fn compartment_label(index: u8) -> String {
    Compartment::ALL.get(usize::from(index)).map_or_else(|| index.to_string(), |c| c.label().to_string())
}

/// Rows as CSV (RFC 4180, CRLF) with a header row.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::new();
    let line = |out: &mut String, fields: &mut dyn Iterator<Item = String>| {
        let cells: Vec<String> = fields.map(|f| csv_field(&f)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    };
    line(&mut out, &mut CSV_HEADER.iter().map(|h| h.to_string()));
    for row in rows {
        line(&mut out, &mut row.fields().into_iter());
    }
    out
}

/// One CSV field: quoted when it holds a comma, quote, line break or outer space, quotes
/// doubled. A field a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first)
/// gets a leading `'`: event details are written by devices, and a privacy officer opens
/// the file in a spreadsheet.
pub fn csv_field(text: &str) -> String {
    let text =
        if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.into() };
    let needs_quotes = text.contains([',', '"', '\n', '\r']) || text.starts_with(' ') || text.ends_with(' ');
    if needs_quotes { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

/// Whether `at_ms` falls on a day from `from` to `to` (YYYY-MM-DD, the Netherlands' days).
pub fn in_range(at_ms: i64, from: Option<&str>, to: Option<&str>) -> bool {
    let day = dutch_date_string(at_ms);
    from.is_none_or(|from| day.as_str() >= from) && to.is_none_or(|to| day.as_str() <= to)
}

/// What one person did to the plan: the days of each action and the parts it touched.
struct Acts {
    who: String,
    days: BTreeMap<AuditAction, Vec<String>>,
    parts: BTreeMap<AuditAction, Vec<u8>>,
    /// Actions done at least once to the whole plan (an event naming no compartment): their
    /// parts are not listed, or a look at the whole plan would read as a look at one part.
    whole: Vec<AuditAction>,
}

impl Acts {
    fn add(&mut self, event: &AuditEvent) {
        let day = dutch_date_string(event.at_ms);
        let days = self.days.entry(event.action).or_default();
        if !days.contains(&day) {
            days.push(day);
        }
        match event.compartment {
            Some(c) => {
                let parts = self.parts.entry(event.action).or_default();
                if !parts.contains(&c) {
                    parts.push(c);
                }
            }
            None if !self.whole.contains(&event.action) => self.whole.push(event.action),
            None => {}
        }
    }

    /// "Wim de Vries (…) bekeek het plan op 3 en 5 december 2026; wijzigde het op …."
    fn sentence(&self) -> String {
        let clauses: Vec<String> = self
            .days
            .iter()
            .enumerate()
            .map(|(i, (action, days))| {
                let object = if i == 0 || !takes_bare_het(*action) { "het plan" } else { "het" };
                let parts = match self.parts.get(action) {
                    Some(parts) if !self.whole.contains(action) => parts_text(parts),
                    _ => String::new(),
                };
                format!("{}{parts} op {}", phrase(*action, object), days_text(days))
            })
            .collect();
        format!("{} {}.\n", self.who, clauses.join("; "))
    }
}

/// The family's report: one sentence per person, in the order they first acted, then the
/// reads of the log about the plan. The person is the one the device's certificate names.
pub fn family_report(events: &[Sourced]) -> String {
    let mut people: Vec<Acts> = Vec::new();
    let mut log_reads: Vec<(String, Vec<String>)> = Vec::new();
    for sourced in events {
        if sourced.device.is_none() {
            if sourced.event.action == AuditAction::LogRead {
                let admin = &sourced.event.actor.user_name;
                let name = if admin.to_lowercase().starts_with("beheerder") {
                    admin.clone()
                } else {
                    format!("Beheerder {admin}")
                };
                push_day(&mut log_reads, name, dutch_date_string(sourced.event.at_ms));
            }
            continue;
        }
        let Some(person) = &sourced.person else { continue };
        let who = format!("{} ({}, {})", person.name, person.org, Role::label_of(&person.role));
        let index = people.iter().position(|p| p.who == who).unwrap_or_else(|| {
            people.push(Acts { who, days: BTreeMap::new(), parts: BTreeMap::new(), whole: Vec::new() });
            people.len() - 1
        });
        people[index].add(&sourced.event);
    }
    let mut out: String = people.iter().map(Acts::sentence).collect();
    for (who, days) in &log_reads {
        out.push_str(&format!("{who} las het logboek van dit plan op {}.\n", days_text(days)));
    }
    if out.is_empty() {
        out.push_str("Niemand heeft dit plan in deze periode bekeken of gewijzigd.\n");
    }
    out
}

fn push_day(list: &mut Vec<(String, Vec<String>)>, who: String, day: String) {
    match list.iter_mut().find(|(w, _)| *w == who) {
        Some((_, days)) if days.contains(&day) => {}
        Some((_, days)) => days.push(day),
        None => list.push((who, vec![day])),
    }
}

/// " (Zorg, Veiligheid)": the parts of the plan, when the events name them.
fn parts_text(compartments: &[u8]) -> String {
    let mut sorted = compartments.to_vec();
    sorted.sort_unstable();
    let labels: Vec<String> = sorted.into_iter().map(compartment_label).collect();
    format!(" ({})", labels.join(", "))
}

/// Verbs after which "het" reads as well as "het plan" in a later clause.
fn takes_bare_het(action: AuditAction) -> bool {
    matches!(
        action,
        AuditAction::Read
            | AuditAction::Create
            | AuditAction::Change
            | AuditAction::Export
            | AuditAction::Import
            | AuditAction::Share
            | AuditAction::Adopt
            | AuditAction::Close
            | AuditAction::Erase
    )
}

/// The verb phrase with its object in place: "maakte het plan aan", "bekeek het".
fn phrase(action: AuditAction, object: &str) -> String {
    match action {
        AuditAction::Create => format!("maakte {object} aan"),
        AuditAction::Adopt => format!("stelde {object} vast"),
        AuditAction::Close => format!("sloot {object} af"),
        AuditAction::EmergencyAccess => format!("opende {object} met noodtoegang"),
        AuditAction::RemoveFromDevice => format!("verwijderde {object} van een apparaat"),
        other => format!("{} {object}", other.label()),
    }
}

/// "3, 5 en 9 december 2026"; days of several months: "28 november en 3 december 2026".
pub fn days_text(days: &[String]) -> String {
    let mut dates: Vec<time::Date> =
        days.iter().filter_map(|d| eenplan_core::calendar::parse_date(d)).collect();
    dates.sort_unstable();
    dates.dedup();
    let mut groups: Vec<(i32, time::Month, Vec<u8>)> = Vec::new();
    for date in &dates {
        match groups.last_mut() {
            Some((year, month, list)) if *year == date.year() && *month == date.month() => {
                list.push(date.day())
            }
            _ => groups.push((date.year(), date.month(), vec![date.day()])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .enumerate()
        .map(|(i, (year, month, list))| {
            let days: Vec<String> = list.iter().map(u8::to_string).collect();
            let month_name = dutch_long_date(&format!("{year}-{:02}-01", u8::from(*month)));
            let month_name = month_name.split(' ').nth(1).unwrap_or_default().to_string();
            let last_of_year = groups.get(i + 1).is_none_or(|(next, _, _)| next != year);
            let year = if last_of_year { format!(" {year}") } else { String::new() };
            format!("{} {month_name}{year}", join_dutch(&days))
        })
        .collect();
    join_dutch(&parts)
}

/// "a", "a en b", "a, b en c".
fn join_dutch(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} en {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eenplan_protocol::audit::{Actor, AuditResult};
    use eenplan_protocol::sync::Fixed;

    fn ms(date: &str, hour: u8) -> i64 {
        let date = eenplan_core::calendar::parse_date(date).unwrap();
        let t = date.with_hms(hour, 0, 0).unwrap().assume_utc();
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
    }

    fn wim() -> Person {
        Person {
            user_id: 7,
            name: "Wim de Vries".into(),
            org: "Wijkteam Zaanstad".into(),
            role: "wijkteam".into(),
        }
    }

    fn event(action: AuditAction, at_ms: i64, compartment: Option<u8>) -> AuditEvent {
        AuditEvent {
            seq: 1,
            prev: Fixed([0; 32]),
            at_ms,
            actor: Actor {
                device: Fixed([1; 16]),
                user_id: 7,
                user_name: "wie dan ook".into(),
                organisation: "?".into(),
                role: "?".into(),
            },
            on_behalf_of: None,
            action,
            plan: Some(Fixed([9; 16])),
            compartment,
            object: None,
            result: AuditResult::Done,
            detail: None,
        }
    }

    fn by_wim(action: AuditAction, at_ms: i64) -> Sourced {
        Sourced { event: event(action, at_ms, None), device: Some([1; 16]), person: Some(wim()) }
    }

    #[test]
    fn the_family_reads_one_line_per_person_with_the_days_of_each_action() {
        let events = vec![
            by_wim(AuditAction::Read, ms("2026-12-03", 9)),
            by_wim(AuditAction::Read, ms("2026-12-05", 9)),
            by_wim(AuditAction::Change, ms("2026-12-05", 10)),
            by_wim(AuditAction::Read, ms("2026-12-09", 9)),
            by_wim(AuditAction::Read, ms("2026-12-09", 15)),
        ];
        assert_eq!(
            family_report(&events),
            "Wim de Vries (Wijkteam Zaanstad, Wijkteam) bekeek het plan op 3, 5 en 9 december 2026; \
             wijzigde het op 5 december 2026.\n"
        );
    }

    #[test]
    fn a_look_at_the_whole_plan_is_not_reported_as_a_look_at_one_part_and_an_administrator_is_named_once() {
        let zorg = Sourced {
            event: event(AuditAction::Read, ms("2026-12-03", 9), Some(1)),
            ..by_wim(AuditAction::Read, 0)
        };
        let whole = by_wim(AuditAction::Read, ms("2026-12-03", 10));
        let only_zorg = family_report(std::slice::from_ref(&zorg));
        assert!(only_zorg.contains("bekeek het plan (Zorg) op 3 december 2026"), "{only_zorg}");
        let both = family_report(&[zorg, whole]);
        assert!(both.contains("bekeek het plan op 3 december 2026."), "{both}");

        let mut read_log = event(AuditAction::LogRead, ms("2026-12-03", 11), None);
        read_log.actor.user_name = "Beheerder Regio Midden".into();
        let log = family_report(&[Sourced { event: read_log, device: None, person: None }]);
        assert_eq!(log, "Beheerder Regio Midden las het logboek van dit plan op 3 december 2026.\n");
    }

    #[test]
    fn days_of_several_months_and_years_are_named_once_each() {
        let days = |list: &[&str]| days_text(&list.iter().map(|d| d.to_string()).collect::<Vec<_>>());
        assert_eq!(days(&["2026-12-03"]), "3 december 2026");
        assert_eq!(days(&["2026-11-30", "2026-11-28", "2026-12-03"]), "28 en 30 november en 3 december 2026");
        assert_eq!(days(&["2026-12-31", "2027-01-02"]), "31 december 2026 en 2 januari 2027");
    }

    #[test]
    fn csv_fields_are_quoted_doubled_and_kept_from_running_as_formulas() {
        assert_eq!(csv_field("Wim de Vries"), "Wim de Vries");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("zei \"nee\""), "\"zei \"\"nee\"\"\"");
        assert_eq!(csv_field("regel\nregel"), "\"regel\nregel\"");
        assert_eq!(csv_field(" spatie"), "\" spatie\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
        let rows = csv(&[Row::of(&by_wim(AuditAction::Read, 0))]);
        let mut lines = rows.split("\r\n");
        assert_eq!(lines.next().unwrap(), CSV_HEADER.join(","));
        assert!(lines.next().unwrap().starts_with("1970-01-01T00:00:00.000Z,apparaat,7,Wim de Vries,"));
    }

    #[test]
    fn a_row_names_the_certified_person_not_the_events_own_words() {
        let row = Row::of(&Sourced {
            event: event(AuditAction::Read, 0, Some(1)),
            device: Some([1; 16]),
            person: Some(wim()),
        });
        assert_eq!(
            (row.gebruiker_naam.as_str(), row.organisatie.as_str()),
            ("Wim de Vries", "Wijkteam Zaanstad")
        );
        assert_eq!((row.actie.as_str(), row.compartiment.as_str()), ("read", "Zorg"));
    }

    #[test]
    fn a_verdict_says_in_dutch_what_is_wrong() {
        let mut verdict = Verdict {
            writer: "0123456789abcdef0123456789abcdef".into(),
            person: Some(wim()),
            events: 412,
            findings: Vec::new(),
            truncated_below: None,
            rewritten: Vec::new(),
            silent_since_ms: None,
        };
        assert_eq!(
            verdict.line(),
            "apparaat 0123456789ab (Wim de Vries, Wijkteam Zaanstad): 412 gebeurtenissen, in orde"
        );
        verdict.findings =
            vec![Finding::Gap { from: 17, to: 17 }, Finding::Forged { seq: 23 }, Finding::Fork { seq: 8 }];
        verdict.silent_since_ms = Some(ms("2026-12-03", 9));
        assert!(verdict.line().ends_with(
            "412 gebeurtenissen, ontbreekt: 17–17; vervalst: 23; vertakking bij 8; stil sinds 3 december 2026"
        ));
    }
}
