//! Where an automerge object sits in the plan's document layout (`plan.rs`): the collection,
//! the entity and the field it belongs to. Built once per review by walking the current
//! document, and extended with the objects that the reviewed changes made (an object made and
//! later replaced, such as a rewritten contact card, is no longer in the document).

use std::collections::HashMap;

use automerge::{ActorId, Automerge, ObjId, ObjType, ROOT, ReadDoc, ValueRef};

use crate::plan::vocab::MAX_NESTING;

/// An object, as a change names it: the counter and actor of the operation that made it.
pub(super) type ObjKey = (u64, ActorId);

/// Collections whose keys are entity ids and whose values are entity maps.
pub(super) const ENTITY_COLLECTIONS: [&str; 7] =
    ["members", "participants", "goals", "actions", "agreements", "notes", "safety_items"];

/// A place in the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Place {
    Root,
    /// A map of entities (`goals`, `notes`, …), or `scores`.
    Collection(&'static str),
    Entity {
        collection: &'static str,
        id: String,
    },
    /// An object inside an entity: the `Text` of a note, a goal's description.
    Field {
        collection: &'static str,
        id: String,
        field: String,
    },
    Escalations,
    /// An escalation step, or an object inside one.
    Step,
    Domains,
    /// An object at another root key (a contact card, an evaluation, …), or inside one.
    RootObject(String),
}

/// The key under which an object sits in its parent.
#[derive(Debug, Clone, Copy)]
pub(super) enum Slot<'a> {
    Key(&'a str),
    Seq,
}

/// The place of an object made at `slot` of an object at `parent`.
pub(super) fn child(parent: &Place, slot: Slot<'_>) -> Place {
    match (parent, slot) {
        (Place::Root, Slot::Key(key)) => top_level(key),
        (Place::Collection(collection), Slot::Key(id)) => Place::Entity { collection, id: id.to_owned() },
        (Place::Entity { collection, id }, Slot::Key(field)) => {
            Place::Field { collection, id: id.clone(), field: field.to_owned() }
        }
        (Place::Field { .. }, _) | (Place::Collection(_) | Place::Entity { .. }, Slot::Seq) => parent.clone(),
        (Place::Escalations | Place::Step, _) => Place::Step,
        (Place::Domains, _) => Place::Domains,
        (Place::RootObject(key), _) => Place::RootObject(key.clone()),
        (Place::Root, Slot::Seq) => Place::RootObject(String::new()),
    }
}

fn top_level(key: &str) -> Place {
    if let Some(collection) = ENTITY_COLLECTIONS.iter().find(|c| **c == key) {
        return Place::Collection(collection);
    }
    match key {
        "scores" => Place::Collection("scores"),
        "escalations" => Place::Escalations,
        "domains" => Place::Domains,
        other => Place::RootObject(other.to_owned()),
    }
}

/// Every object of a document by its [`ObjKey`].
#[derive(Debug, Default)]
pub(super) struct Places(HashMap<ObjKey, Place>);

impl Places {
    /// Walks the document's current objects (to the layout's nesting limit).
    pub fn walk(doc: &Automerge) -> Places {
        let mut places = Places::default();
        places.walk_object(doc, &ROOT, &Place::Root, 0);
        places
    }

    fn walk_object(&mut self, doc: &Automerge, obj: &ObjId, place: &Place, depth: usize) {
        if depth >= MAX_NESTING {
            return;
        }
        let mut children = Vec::new();
        match doc.object_type(obj) {
            Ok(ObjType::Map | ObjType::Table) => {
                for item in doc.map_range(obj, ..) {
                    if let ValueRef::Object(_) = item.value {
                        children.push((child(place, Slot::Key(&item.key)), item.id()));
                    }
                }
            }
            Ok(ObjType::List) => {
                for item in doc.list_range(obj, ..) {
                    if let ValueRef::Object(_) = item.value {
                        children.push((child(place, Slot::Seq), item.id()));
                    }
                }
            }
            // Text holds no objects the layout uses.
            Ok(ObjType::Text) | Err(_) => {}
        }
        for (child_place, id) in children {
            if let ObjId::Id(counter, actor, _) = &id {
                self.0.insert((*counter, actor.clone()), child_place.clone());
            }
            self.walk_object(doc, &id, &child_place, depth + 1);
        }
    }

    pub fn get(&self, key: &ObjKey) -> Option<&Place> {
        self.0.get(key)
    }

    pub fn insert(&mut self, key: ObjKey, place: Place) {
        self.0.insert(key, place);
    }
}
