//! "zichtbaar voor: …": who can read a compartment, in the worker's words.

use eenplan_core::audience::{Audience, Reader};
use eenplan_core::plan::{Compartment, Role};

/// One line for the console: the compartment and who can read it.
pub fn audience_text(compartment: Compartment, audience: &Audience) -> String {
    let who = match audience {
        Audience::ThisDeviceOnly => "alleen dit apparaat (nog niet aangemeld bij een server)".to_owned(),
        Audience::PolicyNotYetKnown => {
            "nog onbekend: synchroniseer eerst, dan staat het deelbeleid op dit apparaat".to_owned()
        }
        Audience::Readers { readers, roles, signed } => {
            let people = if readers.is_empty() {
                "geen van de deelnemers".to_owned()
            } else {
                readers.iter().map(reader_text).collect::<Vec<_>>().join(", ")
            };
            // Signed: exactly who gets the key. Otherwise the plan's own list, which anyone
            // writing the plan could change.
            let source = if *signed { "volgens de getekende deelnemerslijst" } else { "volgens het plan" };
            format!(
                "{people} ({source}); rollen: {}; en de herstelsleutel van de beheerder",
                roles.iter().map(|r| Role::label_of(r)).collect::<Vec<_>>().join(", ")
            )
        }
    };
    format!("{}: zichtbaar voor: {who}", compartment.label())
}

fn reader_text(reader: &Reader) -> String {
    format!("{} ({}, {})", reader.name, reader.organisation, Role::label_of(&reader.role))
}
