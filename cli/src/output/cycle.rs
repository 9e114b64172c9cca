//! The working cycle for people to read, in Dutch: the agenda, an adopted version and what
//! is not adopted yet, the ZRM trend, the owner migration.

use eenplan_core::adoption::{AdoptedPlan, AdoptionCheck};
use eenplan_core::agenda::{self, Agenda};
use eenplan_core::calendar::dutch_long_date;
use eenplan_core::cycle::{DomainTrend, OwnerMigration};

use super::{Lines, plan_view_text};

pub fn agenda_text(agenda: &Agenda) -> String {
    let mut out = Lines::default();
    out.line(0, format!("Agenda voor {}", dutch_long_date(&agenda.today)));
    if agenda.items.is_empty() {
        out.line(2, "Niets te laat en niets voor deze week.");
    }
    for item in &agenda.items {
        out.line(2, agenda::describe(item));
    }
    for damaged in &agenda.unreadable {
        out.line(2, format!("Niet te lezen: {damaged}"));
    }
    out.finish()
}

pub fn adopted_text(adopted: &AdoptedPlan) -> String {
    let a = &adopted.adoption;
    let mut out = Lines::default();
    out.line(0, format!("Versie {}, vastgesteld op {}", a.version, dutch_long_date(&a.date)));
    if let Some(by) = &a.signed_by {
        out.line(2, format!("door {} ({})", by.name, by.organisation));
    }
    out.line(2, format!("met het gezin: {}", a.with_family));
    if !a.present.is_empty() {
        let names: Vec<String> =
            a.present.iter().map(|p| format!("{} ({})", p.name, p.organisation)).collect();
        out.line(2, format!("aanwezig: {}", names.join(", ")));
    }
    if let AdoptionCheck::Verified = a.check {
        out.line(2, "ondertekening gecontroleerd");
    }
    out.blank();
    out.line(0, "Nog niet vastgesteld");
    if adopted.not_adopted.is_empty() {
        out.line(2, "niets: het plan is zoals vastgesteld");
    }
    for item in &adopted.not_adopted {
        let change = match item.change.as_str() {
            "added" => "nieuw",
            "removed" => "verwijderd",
            _ => "gewijzigd",
        };
        out.line(2, format!("{}: {change}", item.label));
    }
    out.blank();
    out.line(0, "Het plan zoals vastgesteld");
    out.line(0, plan_view_text(&adopted.view));
    out.finish()
}

pub fn trend_text(trend: &[DomainTrend]) -> String {
    let mut out = Lines::default();
    if trend.is_empty() {
        out.line(0, "Nog geen ZRM-scores voor dit gezinslid.");
    }
    for domain in trend {
        let points: Vec<String> = domain.points.iter().map(|p| format!("{} {}", p.date, p.score)).collect();
        out.line(0, format!("{}: {}  ({})", domain.label, points.join(" → "), domain.direction.label()));
    }
    out.finish()
}

pub fn migration_text(report: &OwnerMigration) -> String {
    let mut out = Lines::default();
    out.line(0, format!("{} actie(s) hebben nu een deelnemer als uitvoerder.", report.migrated.len()));
    for (action, text) in &report.unresolved {
        out.line(2, format!("{action}: {text:?} is geen (unieke) deelnemer; kies de uitvoerder zelf"));
    }
    out.finish()
}
