//! Adopting the plan (*vaststellen*): the regisseur and the family agree on the plan as it
//! stands, and the regisseur's device signs the heads of every compartment it holds as
//! version N, with the date, who was present and the family's agreement. The record travels
//! inside the `basis` document; every participant's device checks it against the signer's
//! root-verified certificate and the plan's membership chain, so no participant and no
//! server can adopt a plan in the regisseur's name or move an adoption to other content.
//!
//! The adopted version can be read as it was (the documents forked at the signed heads), and
//! what changed since is "nog niet vastgesteld".

use automerge::{ChangeHash, ReadDoc};
use ed25519_dalek::Signer as _;
use eenplan_protocol::membership::Roster;
use serde::{Deserialize, Serialize};

use crate::audit::{Access, AuditAction};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::{DeviceId, EntityId, PlanId};
use crate::plan::cycle::StoredAdoption;
use crate::plan::view::PlanView;
use crate::plan::{Compartment, PlanError};
use crate::regie::{PlanParticipant, participant_named};

mod since;

pub use since::{NotAdopted, not_adopted};

const SIGNATURE_LABEL: &[u8] = b"eenplan/adoption/v1\0";

/// What the signature covers: every field of the record, and the plan it belongs to (a
/// record copied into another plan does not verify there).
#[derive(Serialize)]
struct Signed<'a> {
    plan: [u8; 16],
    version: u32,
    date: &'a str,
    at_ms: i64,
    with_family: &'a str,
    present: &'a [i64],
    heads: Vec<(&'static str, Vec<[u8; 32]>)>,
    membership_seq: u32,
    signer: &'a str,
}

/// The bytes an adoption's signature covers (public so that tests can play a participant who
/// signs a record with their own key).
pub fn signed_bytes(plan: PlanId, record: &StoredAdoption) -> Vec<u8> {
    let body = Signed {
        plan: *plan.as_bytes(),
        version: record.version,
        date: &record.date,
        at_ms: record.at_ms,
        with_family: &record.with_family,
        present: &record.present,
        heads: record.heads.iter().map(|(c, hs)| (c.as_str(), hs.iter().map(|h| h.0).collect())).collect(),
        membership_seq: record.membership_seq,
        signer: &record.signer,
    };
    let mut out = SIGNATURE_LABEL.to_vec();
    // Writing CBOR into a Vec fails only on out-of-memory.
    let _ = ciborium::into_writer(&body, &mut out);
    out
}

/// An adoption as this device judged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoption {
    pub id: EntityId,
    pub version: u32,
    /// YYYY-MM-DD.
    pub date: String,
    pub at_ms: i64,
    pub with_family: String,
    /// The regisseur who signed, as the chain named them then (when known).
    pub signed_by: Option<PlanParticipant>,
    pub present: Vec<PlanParticipant>,
    pub compartments: Vec<Compartment>,
    pub check: AdoptionCheck,
}

/// Whether an adoption holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AdoptionCheck {
    /// Signed by the device of the plan's regisseur at that time, over content this device
    /// holds (or that an erasure re-sealed since: [`CoreError::AdoptedVersionResealed`]).
    Verified,
    /// Cannot be checked yet (a certificate, the chain or adopted changes have not arrived);
    /// a sync brings them.
    Pending { reason: String },
    /// Forged or altered: it is not an adoption.
    Refused { reason: String },
}

/// An adopted version, read as it was, with what changed since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptedPlan {
    pub adoption: Adoption,
    /// The plan as adopted (only the compartments both the adoption and this device hold).
    pub view: PlanView,
    /// What changed since: "nog niet vastgesteld".
    pub not_adopted: Vec<NotAdopted>,
}

impl Device {
    /// Adopts the plan as it stands as the next version, discussed with the family
    /// (`with_family`: their agreement, in the regisseur's words) in the presence of the
    /// participants `present` names. Only the regisseur, by the signed chain.
    /// Recorded as `Adopt`, in the transaction of the record's edit.
    pub fn adopt(&mut self, plan: &PlanId, with_family: &str, present: &[String]) -> Result<u32, CoreError> {
        let access = Access::on(AuditAction::Adopt, *plan);
        self.audited_as(access, AuditAction::Adopt, |d| d.adopt_recorded(plan, with_family, present))
    }

    fn adopt_recorded(
        &mut self,
        plan: &PlanId,
        with_family: &str,
        present: &[String],
    ) -> Result<u32, CoreError> {
        let roster = self.roster_as_regisseur(plan)?;
        let present =
            present.iter().map(|name| participant_named(&roster, name)).collect::<Result<_, _>>()?;
        // Only verified records count: a participant's own record, pending or refused, with
        // a high number does not move the count.
        let verified = self.adoptions(plan)?.into_iter().filter(|a| a.check == AdoptionCheck::Verified);
        let version = verified
            .map(|a| a.version)
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| CoreError::NotAllowed("dit plan heeft geen versienummers meer over".into()))?;
        let now = self.now_ms();
        let heads = self.plan_heads(plan)?;
        let mut record = StoredAdoption {
            id: EntityId::random(),
            version,
            date: crate::calendar::dutch_date_string(now),
            at_ms: now,
            with_family: with_family.trim().to_owned(),
            present,
            heads,
            membership_seq: roster.seq(),
            signer: self.device_id().to_string(),
            signature: Vec::new(),
            written_by: String::new(),
            resealed: false,
        };
        record.signature =
            self.identity().signing_key().sign(&signed_bytes(*plan, &record)).to_bytes().to_vec();
        self.edit(plan, |p| p.add_adoption(&record))?;
        Ok(version)
    }

    /// Every adoption record in the plan, oldest version first, each as this device judged it.
    pub fn adoptions(&mut self, plan: &PlanId) -> Result<Vec<Adoption>, CoreError> {
        self.audited(Access::on(AuditAction::Read, *plan).object("adoptions"), |d| d.adoptions_judged(plan))
    }

    fn adoptions_judged(&mut self, plan: &PlanId) -> Result<Vec<Adoption>, CoreError> {
        Ok(self.judged(plan)?.into_iter().map(|(_, adoption)| adoption).collect())
    }

    /// Each record with its judgement: what is read as adopted is the record that was judged,
    /// never another one looked up again.
    fn judged(&mut self, plan: &PlanId) -> Result<Vec<(StoredAdoption, Adoption)>, CoreError> {
        let records = self.adoption_records(plan)?;
        let roster = self.roster(plan)?;
        records
            .into_iter()
            .map(|record| {
                let adoption = self.judge(plan, &record, roster.as_ref())?;
                Ok((record, adoption))
            })
            .collect()
    }

    /// The adoption records as the plan holds them, unchecked.
    pub fn adoption_records(&mut self, plan: &PlanId) -> Result<Vec<StoredAdoption>, CoreError> {
        self.audited(Access::on(AuditAction::Read, *plan).object("adoptions"), |d| {
            d.view_of(plan)?;
            Ok(d.loaded_plan(*plan)?.adoption_records()?)
        })
    }

    /// The heads of every compartment this device holds of the plan: what an adoption signs.
    pub fn plan_heads(&mut self, plan: &PlanId) -> Result<Vec<(Compartment, Vec<ChangeHash>)>, CoreError> {
        Ok(self.loaded_plan(*plan)?.held_heads())
    }

    /// The newest verified adoption, if any.
    pub fn latest_adoption(&mut self, plan: &PlanId) -> Result<Option<Adoption>, CoreError> {
        Ok(self.adoptions(plan)?.into_iter().rfind(|a| a.check == AdoptionCheck::Verified))
    }

    /// A verified adopted version (`None`: the newest) as it was, and what changed since.
    pub fn adopted_plan(&mut self, plan: &PlanId, version: Option<u32>) -> Result<AdoptedPlan, CoreError> {
        self.audited(Access::on(AuditAction::Read, *plan).object("adopted"), |d| {
            d.find_adopted_plan(plan, version)?.ok_or_else(|| CoreError::NotAllowed(no_such_version(version)))
        })
    }

    /// The newest verified adopted version as it was, and what changed since; `None` when
    /// the plan has none, or when the newest was re-sealed by an erasure (what changed since it
    /// can no longer be told; the next adoption is shown again). The records are judged once.
    pub fn newest_adopted_plan(&mut self, plan: &PlanId) -> Result<Option<AdoptedPlan>, CoreError> {
        self.audited(Access::on(AuditAction::Read, *plan).object("adopted"), |d| {
            match d.find_adopted_plan(plan, None) {
                Err(CoreError::AdoptedVersionResealed { .. }) => Ok(None),
                found => found,
            }
        })
    }

    fn find_adopted_plan(
        &mut self,
        plan: &PlanId,
        version: Option<u32>,
    ) -> Result<Option<AdoptedPlan>, CoreError> {
        let Some((record, found)) = self
            .judged(plan)?
            .into_iter()
            .filter(|(_, a)| a.check == AdoptionCheck::Verified)
            .rfind(|(_, a)| version.is_none_or(|v| a.version == v))
        else {
            return Ok(None);
        };
        if record.resealed {
            return Err(CoreError::AdoptedVersionResealed { version: found.version });
        }
        let past = self.loaded_plan(*plan)?.at_heads(&record.heads)?.ok_or_else(|| {
            CoreError::NotAllowed("nog niet alle vastgestelde wijzigingen zijn ontvangen".into())
        })?;
        let mut view = past.view()?;
        view.people = self.people_in(&view)?;
        let now = self.read(plan)?;
        let not_adopted = not_adopted(&view, &now);
        Ok(Some(AdoptedPlan { adoption: found, view, not_adopted }))
    }

    fn judge(
        &self,
        plan: &PlanId,
        record: &StoredAdoption,
        roster: Option<&Roster>,
    ) -> Result<Adoption, CoreError> {
        let state = roster.map(|r| r.state_at(record.membership_seq));
        let named = |user: i64| state.as_ref().and_then(|s| s.participant(user)).map(PlanParticipant::from);
        let signer = record.signer.parse::<DeviceId>().ok();
        let body = match signer {
            Some(device) => self.known_device(device.as_bytes())?,
            None => None,
        };
        let check = self.check(plan, record, roster, body.as_ref())?;
        Ok(Adoption {
            id: record.id,
            version: record.version,
            date: record.date.clone(),
            at_ms: record.at_ms,
            with_family: record.with_family.clone(),
            signed_by: body.as_ref().and_then(|b| named(b.user_id)),
            present: record.present.iter().filter_map(|u| named(*u)).collect(),
            compartments: record.heads.iter().map(|(c, _)| *c).collect(),
            check,
        })
    }

    /// The checks, in the order that gives the most useful answer.
    fn check(
        &self,
        plan: &PlanId,
        record: &StoredAdoption,
        roster: Option<&Roster>,
        signer: Option<&eenplan_protocol::certificate::DeviceBody>,
    ) -> Result<AdoptionCheck, CoreError> {
        let refused = |reason: &str| Ok(AdoptionCheck::Refused { reason: reason.into() });
        let pending = |reason: &str| Ok(AdoptionCheck::Pending { reason: reason.into() });
        if record.signer.parse::<DeviceId>().is_err() || record.signature.len() != 64 {
            return refused("de ondertekening is onleesbaar");
        }
        let copied = record.written_by != record.signer;
        let Some(signer) = signer else {
            if copied {
                return refused("geschreven door een ander apparaat dan het ondertekenende");
            }
            return pending("het certificaat van de ondertekenaar is nog niet ontvangen");
        };
        if !signature_holds(*plan, record, &signer.signing_public) {
            return refused("de handtekening klopt niet bij de inhoud");
        }
        // A signed record copied by another participant: not the regisseur's act.
        if copied {
            return refused("geschreven door een ander apparaat dan het ondertekenende");
        }
        let Some(roster) = roster.filter(|r| r.seq() >= record.membership_seq) else {
            return pending("de deelnemerslijst waar de vaststelling naar verwijst is nog niet ontvangen");
        };
        let state = roster.state_at(record.membership_seq);
        if state.regisseur != signer.user_id {
            return refused("niet ondertekend door de regisseur van het plan");
        }
        if record.present.iter().any(|u| state.participant(*u).is_none()) {
            return refused("noemt aanwezigen die geen deelnemer waren");
        }
        if self.revoked_by(signer, record.at_ms)? {
            return refused("ondertekend met een ingetrokken apparaat");
        }
        if !self.holds_heads(plan, record)? {
            return pending("nog niet alle vastgestelde wijzigingen zijn ontvangen");
        }
        Ok(AdoptionCheck::Verified)
    }

    /// Whether every adopted head of a compartment this device holds is here. The `basis`
    /// heads of a record an erasure carried into a base never arrive: the base re-sealed
    /// them (the signature still covers them, and everything else is checked).
    fn holds_heads(&self, plan: &PlanId, record: &StoredAdoption) -> Result<bool, CoreError> {
        let Some(loaded) = self.open_plan_ref(plan) else { return Ok(false) };
        let heads = record.heads.iter().filter(|(c, _)| !(record.resealed && *c == Compartment::Basis));
        Ok(heads.into_iter().all(|(compartment, hashes)| match loaded.doc(*compartment) {
            Ok(doc) => hashes.iter().all(|h: &ChangeHash| doc.get_change_by_hash(h).is_some()),
            Err(PlanError::CompartmentNotHeld(_)) => true,
            Err(_) => false,
        }))
    }
}

fn signature_holds(plan: PlanId, record: &StoredAdoption, public: &[u8; 32]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public) else { return false };
    let Ok(signature) = <[u8; 64]>::try_from(record.signature.as_slice()) else { return false };
    key.verify_strict(&signed_bytes(plan, record), &ed25519_dalek::Signature::from_bytes(&signature)).is_ok()
}

fn no_such_version(version: Option<u32>) -> String {
    match version {
        Some(v) => format!("er is geen geldige vastgestelde versie {v} van dit plan"),
        None => "dit plan is nog niet vastgesteld".into(),
    }
}

#[cfg(test)]
mod tests;
