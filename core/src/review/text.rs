//! Events as Dutch sentences (without who: the device adds the person). Titles and names are
//! as they are now; a status, phase or score is the value the change set.

use std::collections::HashMap;

use super::events::{Event, cut};
use crate::ids::EntityId;
use crate::plan::vocab::{self, ActionStatus, EscalationLevel, GoalStatus, NoteKind, Phase};
use crate::plan::{Compartment, PlanView};

/// The current names and titles a sentence refers to, from the plan's read model.
#[derive(Debug, Default)]
pub(super) struct Names {
    goals: HashMap<String, (String, String)>,
    actions: HashMap<String, String>,
    members: HashMap<String, String>,
    participants: HashMap<String, String>,
    /// Per note (compartment, id): its kind, and whether it is a copy.
    notes: HashMap<(Compartment, String), (String, bool)>,
}

impl Names {
    pub fn of(view: &PlanView) -> Names {
        Names {
            goals: view
                .goals
                .iter()
                .map(|g| (g.id.to_string(), (g.title.clone(), g.domain.clone())))
                .collect(),
            actions: view.actions.iter().map(|a| (a.id.to_string(), a.title.clone())).collect(),
            members: view.members.iter().map(|m| (m.id.to_string(), m.name.clone())).collect(),
            participants: view.participants.iter().map(|p| (p.id.to_string(), p.name.clone())).collect(),
            notes: view
                .notes
                .iter()
                .map(|n| ((n.compartment, n.id.to_string()), (n.kind.clone(), n.copied_from.is_some())))
                .collect(),
        }
    }

    fn goal(&self, id: &str) -> String {
        self.goals
            .get(id)
            .map_or_else(|| "een doel".to_owned(), |(title, _)| format!("doel ‘{}’", cut(title)))
    }

    fn action(&self, id: &str) -> String {
        self.actions.get(id).map_or_else(|| "een actie".to_owned(), |t| format!("actie ‘{}’", cut(t)))
    }

    fn member(&self, id: &str) -> String {
        self.members.get(id).map_or_else(|| "een gezinslid".to_owned(), |n| cut(n))
    }

    fn participant(&self, id: &str) -> String {
        self.participants.get(id).map_or_else(|| "een deelnemer".to_owned(), |n| cut(n))
    }
}

/// A line before it is collapsed: what it says, what it is about (lines about the same
/// subject by the same writer in a row collapse), and whether it takes in later typing into
/// the entity it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sentence {
    pub subject: String,
    pub text: String,
    pub entity: Option<EntityId>,
    /// An entity created: typing into its texts right after adds to this line.
    pub created: bool,
    /// Typing into a text.
    pub typing: bool,
}

fn sentence(subject: String, text: String, entity: Option<&str>) -> Sentence {
    let entity = entity.and_then(|e| e.parse().ok());
    Sentence { subject, text, entity, created: false, typing: false }
}

/// The sentence of one event in `compartment`.
pub(super) fn sentence_of(event: &Event, compartment: Compartment, names: &Names) -> Sentence {
    let c = compartment.as_str();
    match event {
        Event::PlanCreated if compartment == Compartment::Basis => {
            sentence(format!("{c}/"), "maakte het plan aan".into(), None)
        }
        Event::PlanCreated => {
            sentence(format!("{c}/"), format!("legde het compartiment {} aan", compartment.label()), None)
        }
        Event::Created { collection, id } => Sentence {
            created: true,
            ..sentence(
                format!("{c}/{collection}/{id}"),
                created(collection, id, compartment, names),
                Some(id),
            )
        },
        Event::Removed { collection, id } => sentence(
            format!("{c}/{collection}/{id}"),
            format!("verwijderde {}", thing(collection, id, compartment, names)),
            Some(id),
        ),
        Event::FieldSet { collection, id, field, value } => sentence(
            format!("{c}/{collection}/{id}/{field}"),
            field_set(collection, id, field, value.as_deref(), names),
            Some(id),
        ),
        Event::FieldText { collection, id, field } => Sentence {
            typing: true,
            ..sentence(
                format!("{c}/{collection}/{id}/{field}"),
                typed(collection, id, field, compartment, names),
                Some(id),
            )
        },
        Event::Score { key, value } => {
            sentence(format!("{c}/scores/{key}"), score(key, value.as_deref(), names), None)
        }
        Event::StepAdded { level } => {
            let level = level.as_deref().map(EscalationLevel::label_of).map(|l| format!(" naar {}", cut(&l)));
            sentence(
                format!("{c}/escalations"),
                format!("legde een escalatie vast{}", level.unwrap_or_default()),
                None,
            )
        }
        Event::StepChanged => sentence(format!("{c}/escalations"), "wijzigde een escalatiestap".into(), None),
        Event::Domains => sentence(format!("{c}/domains"), "wijzigde de levensdomeinen".into(), None),
        Event::Root { key, value } => {
            sentence(format!("{c}/{key}"), root(key, value.as_deref(), names), None)
        }
        Event::Unplaced => {
            sentence(format!("{c}/?"), "wijzigde een onderdeel dat niet meer in het plan staat".into(), None)
        }
        Event::Other(path) => sentence(format!("{c}/{path}"), format!("wijzigde {}", cut(path)), None),
    }
}

/// "doel ‘Schulden op orde’", "een notitie", … .
fn thing(collection: &str, id: &str, compartment: Compartment, names: &Names) -> String {
    match collection {
        "goals" => names.goal(id),
        "actions" => names.action(id),
        "members" => format!("gezinslid {}", names.member(id)),
        "participants" => format!("deelnemer {}", names.participant(id)),
        "agreements" => "een afspraak".into(),
        "notes" => format!("een notitie ({})", compartment.label()),
        "safety_items" => "een onderdeel van het veiligheidsplan".into(),
        other => format!("{}/{}", cut(other), cut(id)),
    }
}

fn created(collection: &str, id: &str, compartment: Compartment, names: &Names) -> String {
    match collection {
        "goals" => match names.goals.get(id) {
            Some((_, domain)) => {
                format!("voegde {} toe ({})", names.goal(id), cut(&vocab::domain_label(domain)))
            }
            None => "voegde een doel toe".into(),
        },
        "actions" => format!("voegde {} toe", names.action(id)),
        "members" => format!("voegde gezinslid {} toe", names.member(id)),
        "participants" => format!("voegde deelnemer {} toe", names.participant(id)),
        "agreements" => "legde een afspraak vast".into(),
        "notes" => match names.notes.get(&(compartment, id.to_owned())) {
            Some((_, true)) => format!("kopieerde een notitie naar {}", compartment.label()),
            Some((kind, false)) if kind == NoteKind::HomeVisit.as_str() => {
                format!("schreef een verslag van een huisbezoek ({})", compartment.label())
            }
            _ => format!("schreef een notitie ({})", compartment.label()),
        },
        "safety_items" => "voegde een onderdeel aan het veiligheidsplan toe".into(),
        other => format!("voegde {}/{} toe", cut(other), cut(id)),
    }
}

fn typed(collection: &str, id: &str, field: &str, compartment: Compartment, names: &Names) -> String {
    match (collection, field) {
        ("notes", "text") => format!("schreef in notitie ({})", compartment.label()),
        ("goals", "description") => format!("schreef in de beschrijving van {}", names.goal(id)),
        ("agreements", "text") => "schreef in een afspraak".into(),
        ("safety_items", "danger_statement") => {
            "schreef in de gevarenomschrijving van het veiligheidsplan".into()
        }
        ("safety_items", "safety_goal") => "schreef in een veiligheidsdoel van het veiligheidsplan".into(),
        _ => format!("wijzigde {} ({})", thing(collection, id, compartment, names), cut(field)),
    }
}

fn field_set(collection: &str, id: &str, field: &str, value: Option<&str>, names: &Names) -> String {
    let v = value.map(cut);
    match (collection, field, v) {
        ("goals", "status", Some(v)) => {
            format!("zette de status van {} op {}", names.goal(id), GoalStatus::label_of(&v))
        }
        ("goals", "title", _) => format!("wijzigde de titel van {}", names.goal(id)),
        ("goals", "domain", Some(v)) => format!("zette {} onder {}", names.goal(id), vocab::domain_label(&v)),
        ("actions", "status", Some(v)) => {
            format!("zette de status van {} op {}", names.action(id), ActionStatus::label_of(&v))
        }
        ("actions", "title", _) => format!("wijzigde de titel van {}", names.action(id)),
        ("actions", "due", Some(v)) => format!("zette de einddatum van {} op {v}", names.action(id)),
        ("actions", "due", None) => format!("haalde de einddatum van {} weg", names.action(id)),
        ("actions", "owner_org", Some(v)) => format!("legde {} bij {v}", names.action(id)),
        ("actions", "owner_person", Some(v)) => format!("wees {} toe aan {v}", names.action(id)),
        ("actions", "owner_person" | "owner_user", None) => {
            format!("haalde de uitvoerder van {} weg", names.action(id))
        }
        ("actions", "owner_user", Some(_)) => format!("wees {} toe aan een deelnemer", names.action(id)),
        ("actions", "goal", Some(v)) => format!("koppelde {} aan {}", names.action(id), names.goal(&v)),
        ("members", "name", _) => format!("wijzigde de naam van gezinslid {}", names.member(id)),
        ("members", _, _) => format!("wijzigde de gegevens van gezinslid {}", names.member(id)),
        ("participants", _, _) => format!("wijzigde de gegevens van deelnemer {}", names.participant(id)),
        ("notes", _, _) => "wijzigde een notitie".into(),
        ("agreements", _, _) => "wijzigde een afspraak".into(),
        ("safety_items", _, _) => "wijzigde het veiligheidsplan".into(),
        (collection, field, _) => format!("wijzigde {}/{}/{}", cut(collection), cut(id), cut(field)),
    }
}

fn score(key: &str, value: Option<&str>, names: &Names) -> String {
    let mut parts = key.splitn(3, '|');
    let (Some(member), Some(domain), Some(date)) = (parts.next(), parts.next(), parts.next()) else {
        return format!("wijzigde scores/{}", cut(key));
    };
    let (who, domain, date) = (names.member(member), cut(&vocab::domain_label(domain)), cut(date));
    match value {
        Some(v) => format!("gaf {who} een ZRM-score {v} voor {domain} op {date}"),
        None => format!("haalde de ZRM-score van {who} voor {domain} op {date} weg"),
    }
}

/// Root keys of `basis` and the prefixes other features write there.
fn root(key: &str, value: Option<&str>, names: &Names) -> String {
    const PREFIXES: [(&str, &str); 5] = [
        ("contact_", "werkte contactgegevens bij"),
        ("evaluation_", "plande een evaluatie"),
        ("meeting_", "legde een casusoverleg vast"),
        ("adoption_", "stelde het plan vast"),
        ("family_copy_", "nam een onderdeel op in de kopie voor het gezin"),
    ];
    if let Some((_, text)) = PREFIXES.iter().find(|(prefix, _)| key.starts_with(prefix)) {
        return (*text).to_owned();
    }
    match (key, value) {
        ("family", Some(v)) => format!("wijzigde de gezinsnaam in ‘{v}’"),
        ("phase", Some(v)) => format!("wijzigde de fase in {}", Phase::label_of(v)),
        ("regisseur", Some(v)) => format!("wees {} aan als regisseur", names.participant(v)),
        (key, _) => format!("wijzigde {}", cut(key)),
    }
}
