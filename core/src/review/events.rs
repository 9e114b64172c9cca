//! What one change did, in the layout's terms: each operation's object mapped to its place
//! ([`super::places`]) and turned into an [`Event`]. Operations inside an object the same
//! change made (the fields of a new goal, the text of a new note) belong to the event that made
//! it, so adding a goal is one event, not five.

use std::collections::HashMap;

use automerge::ExpandedChange;
use automerge::legacy::{Key, ObjectId, OpType};

use super::places::{ObjKey, Place, Places, Slot, child};

/// One thing a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Event {
    /// The document's layout was written (the plan or a compartment began).
    PlanCreated,
    Created {
        collection: &'static str,
        id: String,
    },
    Removed {
        collection: &'static str,
        id: String,
    },
    /// A register of an entity set (`value`: what this change set; `None` for cleared).
    FieldSet {
        collection: &'static str,
        id: String,
        field: String,
        value: Option<String>,
    },
    /// A text of an entity typed in (or replaced).
    FieldText {
        collection: &'static str,
        id: String,
        field: String,
    },
    Score {
        key: String,
        value: Option<String>,
    },
    StepAdded {
        level: Option<String>,
    },
    StepChanged,
    Domains,
    /// A root key set or an object at a root key (`value` for scalars).
    Root {
        key: String,
        value: Option<String>,
    },
    /// An object this review cannot place (made before the mark and gone since).
    Unplaced,
    /// A place the layout does not have: its path.
    Other(String),
}

/// The events of one change, in the order of its operations. A change that wrote the layout
/// is that and nothing else.
pub(super) fn events_of(change: &ExpandedChange, places: &mut Places) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    // Objects this change made, and the event each belongs to.
    let mut fresh: HashMap<ObjKey, usize> = HashMap::new();
    let start = change.start_op.get();
    for (i, op) in change.operations.iter().enumerate() {
        let made_key: ObjKey = (start.saturating_add(i as u64), change.actor_id.clone());
        let parent_key = match &op.obj {
            ObjectId::Root => None,
            ObjectId::Id(id) => Some((id.counter(), id.actor().clone())),
        };
        let slot = match &op.key {
            Key::Map(key) => Slot::Key(key.as_str()),
            Key::Seq(_) => Slot::Seq,
        };
        if let Some(&owner) = parent_key.as_ref().and_then(|k| fresh.get(k)) {
            inside_fresh(&mut events[owner], slot, &op.action);
            if let (OpType::Make(_), Some(parent)) =
                (&op.action, parent_key.as_ref().and_then(|k| places.get(k)))
            {
                let place = child(parent, slot);
                places.insert(made_key.clone(), place);
                fresh.insert(made_key, owner);
            }
            continue;
        }
        let parent = match &parent_key {
            None => Some(Place::Root),
            Some(key) => places.get(key).cloned(),
        };
        let Some(parent) = parent else {
            events.push(Event::Unplaced);
            continue;
        };
        if let OpType::Make(_) = op.action {
            let place = child(&parent, slot);
            events.push(made(&parent, &place));
            places.insert(made_key.clone(), place);
            fresh.insert(made_key, events.len() - 1);
        } else {
            events.push(event_on(&parent, slot, &op.action));
        }
    }
    if events.contains(&Event::PlanCreated) {
        return vec![Event::PlanCreated];
    }
    events
}

/// An operation inside an object the same change made: only an escalation step's level is
/// taken (the line names it).
fn inside_fresh(owner: &mut Event, slot: Slot<'_>, action: &OpType) {
    if let (Event::StepAdded { level }, Slot::Key("level"), OpType::Put(value)) = (owner, slot, action) {
        *level = shown(value);
    }
}

/// The event of making an object at `place` (in `parent`).
fn made(parent: &Place, place: &Place) -> Event {
    match (parent, place) {
        (Place::Collection(_), Place::Entity { collection, id }) => {
            Event::Created { collection, id: id.clone() }
        }
        (_, Place::Field { collection, id, field }) => {
            Event::FieldText { collection, id: id.clone(), field: field.clone() }
        }
        (Place::Escalations, Place::Step) => Event::StepAdded { level: None },
        (_, Place::Step) => Event::StepChanged,
        (_, Place::Domains) => Event::Domains,
        (_, Place::RootObject(key)) => Event::Root { key: key.clone(), value: None },
        (Place::Root, Place::Collection(_) | Place::Escalations) => Event::PlanCreated,
        (_, other) => Event::Other(format!("{other:?}")),
    }
}

/// The event of setting, deleting or typing at `slot` of an object at `parent`.
fn event_on(parent: &Place, slot: Slot<'_>, action: &OpType) -> Event {
    let value = match action {
        OpType::Put(value) => shown(value),
        OpType::Increment(n) => Some(n.to_string()),
        _ => None,
    };
    match (parent, slot) {
        (Place::Root, Slot::Key("schema" | "plan_id")) => Event::PlanCreated,
        (Place::Root, Slot::Key(key)) => Event::Root { key: key.to_owned(), value },
        (Place::Collection("scores"), Slot::Key(key)) => Event::Score { key: key.to_owned(), value },
        (Place::Collection(collection), Slot::Key(id)) if matches!(action, OpType::Delete) => {
            Event::Removed { collection, id: id.to_owned() }
        }
        (Place::Entity { collection, id }, Slot::Key(field)) => {
            Event::FieldSet { collection, id: id.clone(), field: field.to_owned(), value }
        }
        (Place::Field { collection, id, field }, _) => {
            Event::FieldText { collection, id: id.clone(), field: field.clone() }
        }
        (Place::Escalations | Place::Step, _) => Event::StepChanged,
        (Place::Domains, _) => Event::Domains,
        (Place::RootObject(key), _) => Event::Root { key: key.clone(), value: None },
        (place, Slot::Key(key)) => Event::Other(format!("{}/{key}", path_of(place))),
        (place, Slot::Seq) => Event::Other(path_of(place)),
    }
}

/// A place as a path, for what the layout does not have.
fn path_of(place: &Place) -> String {
    match place {
        Place::Root => String::new(),
        Place::Collection(c) => (*c).to_owned(),
        Place::Entity { collection, id } => format!("{collection}/{id}"),
        Place::Field { collection, id, field } => format!("{collection}/{id}/{field}"),
        Place::Escalations | Place::Step => "escalations".into(),
        Place::Domains => "domains".into(),
        Place::RootObject(key) => key.clone(),
    }
}

/// A scalar as a line shows it (`None` for null); long values are cut.
fn shown(value: &automerge::ScalarValue) -> Option<String> {
    use automerge::ScalarValue as S;
    let text = match value {
        S::Str(s) => s.to_string(),
        S::Int(n) | S::Timestamp(n) => n.to_string(),
        S::Uint(n) => n.to_string(),
        S::F64(n) => n.to_string(),
        S::Boolean(b) => if *b { "ja" } else { "nee" }.to_owned(),
        S::Null => return None,
        S::Bytes(_) | S::Counter(_) | S::Unknown { .. } => "…".to_owned(),
    };
    Some(cut(&text))
}

/// At most 80 characters of untrusted text.
pub(super) fn cut(text: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = text.chars().take(MAX).collect();
    if text.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}
