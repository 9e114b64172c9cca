//! People, not device ids: the name, organisation and role behind a device that wrote
//! something, from root-verified certificates this device already holds (its own, and the
//! authors' it fetched to judge their bundles). Nothing here waits on the network; a device
//! whose certificate is not held yet stays a device id until a sync brings it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::error::CoreError;
use crate::ids::DeviceId;
use crate::plan::conflicts::Conflict;
use crate::plan::view::PlanView;

/// Who is behind a device, as an administrator certified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The device, as hex (what [`crate::plan::view::Note::author`] names).
    pub device: String,
    pub name: String,
    pub organisation: String,
    pub role: String,
}

impl Device {
    /// The person behind `device`, when this device holds its verified certificate.
    pub fn person(&self, device: &DeviceId) -> Result<Option<Person>, CoreError> {
        Ok(self.known_device(device.as_bytes())?.map(|body| Person {
            device: device.to_string(),
            name: body.user_name,
            organisation: body.organisation,
            role: body.role,
        }))
    }

    /// The people behind every device the view names (authors of notes and agreements, who
    /// recorded each escalation step), as far as they are known.
    pub(crate) fn people_in(&self, view: &PlanView) -> Result<Vec<Person>, CoreError> {
        let named: BTreeSet<&str> = view
            .notes
            .iter()
            .map(|n| n.author.as_str())
            .chain(view.agreements.iter().map(|a| a.author.as_str()))
            .chain(view.escalations.iter().map(|s| s.by.as_str()))
            .chain(view.notes.iter().filter_map(|n| n.copied_from.as_ref().map(|o| o.author.as_str())))
            .collect();
        let mut people = Vec::new();
        for device in named {
            // A name that is not a device id (a document written by an older version) names
            // nobody.
            let Ok(device) = device.parse::<DeviceId>() else { continue };
            people.extend(self.person(&device)?);
        }
        Ok(people)
    }

    /// Fills in who wrote each of the conflicts' values.
    pub(crate) fn name_conflict_authors(&self, conflicts: &mut [Conflict]) -> Result<(), CoreError> {
        for value in conflicts.iter_mut().flat_map(|c| c.values.iter_mut()) {
            if let Some(author) = &value.author {
                value.author_person = self.person(author)?;
            }
        }
        Ok(())
    }
}
