//! Who will read what a worker writes, and where a note goes when its author names no
//! compartment.
//!
//! Not knowing who reads a note is what makes professionals choose "niet delen" (DESIGN §3).
//! So before a note is saved, the worker sees the plan's participants whose role the sharing
//! policy lets read the chosen compartment; and a note whose author names no compartment goes
//! to the most closed compartment the author's role may write, never to `basis` (which every
//! participant reads, school and housing corporation included) unless the role writes nothing
//! else.
//!
//! Everything here is local: the policy is the root-signed one the device holds, the
//! participants are the plan's own list. No call waits on the network.

use std::collections::BTreeSet;

use eenplan_protocol::policy::{BASE_LEVEL, LEVELS, Policy};
use serde::{Deserialize, Serialize};

use crate::audit::{Access, AuditAction};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::PlanId;
use crate::plan::Compartment;

/// The compartment a note goes to on a device that knows no role yet (not enrolled): care
/// information is what a note about a family most often is, and `zorg` is closed to school
/// and housing corporation under every policy shipped.
pub const NOTE_COMPARTMENT_WITHOUT_ROLE: Compartment = Compartment::Zorg;

/// One participant who can read a compartment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reader {
    pub name: String,
    pub organisation: String,
    pub role: String,
}

/// Who can read a compartment of a plan now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "shared", rename_all = "snake_case")]
pub enum Audience {
    /// The device is not enrolled: nothing it writes leaves it.
    ThisDeviceOnly,
    /// The device is enrolled but holds no sharing policy yet (before its first sync), so it
    /// cannot say; the app should say so rather than guess.
    PolicyNotYetKnown,
    /// The plan's participants whose role reads the compartment (at the plan's escalation
    /// level), by name, and every role the policy lets read it there. The roles are the
    /// encryption boundary (only their devices get the key, and the network's escrow key,
    /// kept for recovery). With `signed`, the names come from the plan's signed membership
    /// chain, which every device checks: exactly who gets the key. Without it (a plan the
    /// device holds no chain for yet), they are the plan's own list of participants, which
    /// any writer of `basis` can edit: show them as "according to the plan".
    Readers { readers: Vec<Reader>, roles: Vec<String>, signed: bool },
}

impl Device {
    /// Who can read `compartment` of `plan` now: the plan's participants whose role the
    /// policy this device holds lets read it.
    pub fn audience(&mut self, plan: &PlanId, compartment: Compartment) -> Result<Audience, CoreError> {
        self.audited(Access::on(AuditAction::Read, *plan).object("audience").compartment(compartment), |d| {
            d.audience_recorded(plan, compartment)
        })
    }

    fn audience_recorded(&mut self, plan: &PlanId, compartment: Compartment) -> Result<Audience, CoreError> {
        if !self.has_server()? {
            return Ok(Audience::ThisDeviceOnly);
        }
        let Some(policy) = self.stored_policy()? else { return Ok(Audience::PolicyNotYetKnown) };
        let index = compartment as u8;
        let (mut readers, level, signed): (Vec<Reader>, String, bool) = match self.membership(plan)? {
            Some(membership) => {
                let readers = membership
                    .participants
                    .into_iter()
                    .filter(|p| policy.may_read_at(&p.role, index, &membership.level))
                    .map(|p| Reader { name: p.name, organisation: p.organisation, role: p.role })
                    .collect();
                (readers, membership.level, true)
            }
            None => {
                let readers = self
                    .read(plan)?
                    .participants
                    .into_iter()
                    .filter(|p| policy.may_read(&p.role, index))
                    .map(|p| Reader { name: p.name, organisation: p.organisation, role: p.role })
                    .collect();
                (readers, BASE_LEVEL.to_owned(), false)
            }
        };
        readers.sort_by(|a, b| (&a.name, &a.organisation).cmp(&(&b.name, &b.organisation)));
        let roles = policy.roles_reading_at(index, &level).into_iter().map(str::to_owned).collect();
        Ok(Audience::Readers { readers, roles, signed })
    }

    /// Where a note goes when its author names no compartment: see [`note_compartment_for`].
    pub fn default_note_compartment(&self) -> Result<Compartment, CoreError> {
        let (Some(policy), Some(role)) = (self.stored_policy()?, self.own_certified_role()?) else {
            return Ok(NOTE_COMPARTMENT_WITHOUT_ROLE);
        };
        Ok(note_compartment_for(&policy, &role))
    }
}

/// The compartment other than `basis` that `role` may write and the fewest roles read (the
/// first in [`Compartment::ALL`] order on a tie); `basis` only for a role that writes nothing
/// else. A wijkteam note goes to `zorg`, a police note to `justitie`.
///
/// A note stays where it was written when the plan escalates, so its readers are counted
/// over every level: each role that reads the compartment at some level. The compartments
/// the role writes are taken at the first level (in [`LEVELS`] order) at which it writes
/// beyond `basis`: the base level for most roles, the Zorg- en Veiligheidshuis for its own
/// roles, which take part in a plan only once it is escalated there.
pub fn note_compartment_for(policy: &Policy, role: &str) -> Compartment {
    LEVELS
        .into_iter()
        .find_map(|level| closed_note_compartment(policy, role, level))
        .unwrap_or(Compartment::Basis)
}

/// The compartment other than `basis` that `role` may write at `level` and the fewest roles
/// read at any level, if the role writes one there.
fn closed_note_compartment(policy: &Policy, role: &str, level: &str) -> Option<Compartment> {
    let readers_of = |c: Compartment| {
        let roles: BTreeSet<&str> =
            LEVELS.into_iter().flat_map(|l| policy.roles_reading_at(c as u8, l)).collect();
        roles.len()
    };
    Compartment::ALL
        .into_iter()
        .filter(|c| {
            let index = *c as u8;
            *c != Compartment::Basis
                && policy.may_write_at(role, index, level)
                && policy.may_read_at(role, index, level)
        })
        .min_by_key(|c| readers_of(*c))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use eenplan_protocol::policy::Access;

    use super::*;

    fn policy(rows: &[(&str, &[&str])]) -> Policy {
        let roles: BTreeMap<String, Access> = rows
            .iter()
            .map(|(role, write)| {
                let write: Vec<String> = write.iter().map(|c| c.to_string()).collect();
                let mut read = write.clone();
                if !read.iter().any(|c| c == "basis") {
                    read.push("basis".into());
                }
                (role.to_string(), Access { read, write })
            })
            .collect();
        Policy { version: 1, roles, levels: BTreeMap::new(), retention: None }
    }

    fn region() -> Policy {
        policy(&[
            ("wijkteam", &["basis", "zorg", "veiligheid"]),
            ("ggz", &["basis", "zorg"]),
            ("veilig_thuis", &["basis", "zorg", "veiligheid"]),
            ("politie", &["basis", "veiligheid", "justitie"]),
            ("om", &["basis", "justitie"]),
            ("raad_kinderbescherming", &["basis", "veiligheid"]),
            ("school", &["basis"]),
        ])
    }

    #[test]
    fn a_wijkteam_note_goes_to_the_closed_compartment_its_role_writes_not_to_basis() {
        // zorg is read by three roles, veiligheid by four.
        assert_eq!(note_compartment_for(&region(), "wijkteam"), Compartment::Zorg);
    }

    #[test]
    fn a_police_note_goes_to_justitie_which_the_fewest_read() {
        assert_eq!(note_compartment_for(&region(), "politie"), Compartment::Justitie);
    }

    /// `region()` with the Veiligheidshuis: its roles read only basis (or nothing) below the
    /// ZVH level, and more there.
    fn region_with_zvh() -> Policy {
        let mut p = region();
        let zvh_rows = policy(&[
            ("zvh_procesregisseur", &["basis", "zorg", "veiligheid", "justitie"]),
            ("zvh_medewerker", &["basis", "veiligheid"]),
        ]);
        p.levels.insert("zorg_en_veiligheidshuis".into(), zvh_rows.roles);
        p.roles.insert("zvh_procesregisseur".into(), Access { read: vec!["basis".into()], write: vec![] });
        p.roles.insert("zvh_medewerker".into(), Access::default());
        p
    }

    #[test]
    fn a_veiligheidshuis_note_goes_where_its_role_writes_once_escalated_with_the_fewest_readers() {
        let p = region_with_zvh();
        // At the ZVH (where the most read) justitie is read by three roles, zorg by four,
        // veiligheid by six.
        let readers = |c| p.roles_reading_at(c, "zorg_en_veiligheidshuis").len();
        assert_eq!((readers(3), readers(1), readers(2)), (3, 4, 6));
        assert_eq!(note_compartment_for(&p, "zvh_procesregisseur"), Compartment::Justitie);
        assert_eq!(note_compartment_for(&p, "zvh_medewerker"), Compartment::Veiligheid);
        // The other roles' notes go where they went before.
        assert_eq!(note_compartment_for(&p, "wijkteam"), Compartment::Zorg);
        assert_eq!(note_compartment_for(&p, "school"), Compartment::Basis);
    }

    #[test]
    fn readers_a_note_gains_when_the_plan_escalates_count_so_a_tie_at_the_base_level_is_broken() {
        // Police: at the base level veiligheid and justitie are read by three roles each; at
        // the ZVH veiligheid gains two readers and justitie one.
        let mut p = region();
        p.roles.remove("wijkteam");
        p.levels = region_with_zvh().levels;
        p.roles.insert(
            "reclassering".into(),
            Access { read: vec!["basis".into(), "justitie".into()], write: vec![] },
        );
        let base = |c| p.roles_reading_at(c, BASE_LEVEL).len();
        assert_eq!((base(2), base(3)), (3, 3), "a tie at the base level");
        assert_eq!(note_compartment_for(&p, "politie"), Compartment::Justitie);
    }

    #[test]
    fn a_role_that_writes_only_basis_writes_its_notes_there_and_an_unknown_role_too() {
        assert_eq!(note_compartment_for(&region(), "school"), Compartment::Basis);
        assert_eq!(note_compartment_for(&region(), "not_in_the_policy"), Compartment::Basis);
    }
}
