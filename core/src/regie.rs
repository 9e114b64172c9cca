//! Regie per plan: who holds it, who takes part and at which escalation level, read from the
//! plan's verified membership chain (`eenplan_protocol::membership`); and the regisseur's
//! acts (hand over, escalate, de-escalate, remove), checked against that chain here and
//! queued for a sync to sign and post. Nothing here waits on the network.

use eenplan_protocol::membership::{Change, Grondslag, LEVELS, Participant, Roster, SignedBy};
use serde::{Deserialize, Serialize};

use crate::audit::{Access, AuditAction};
use crate::device::Device;
use crate::error::CoreError;
use crate::ids::{EntityId, PlanId};
use crate::plan::EscalationLevel;
use crate::sync::Intent;

/// A participant as the plan's chain names them (from their certificate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanParticipant {
    pub user_id: i64,
    pub name: String,
    pub organisation: String,
    pub role: String,
    /// From the participant's own contact card in the plan, written by one of their devices.
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

impl From<&Participant> for PlanParticipant {
    fn from(p: &Participant) -> Self {
        PlanParticipant {
            user_id: p.user_id,
            name: p.name.clone(),
            organisation: p.organisation.clone(),
            role: p.role.clone(),
            phone: None,
            email: None,
        }
    }
}

/// One step of the chain, in words people read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipStep {
    pub seq: u32,
    pub at_ms: i64,
    /// Who signed it: a participant's name, or "beheerder NAME".
    pub by: String,
    /// The act's stable code: create, add, remove, handover, accept, escalate, deescalate.
    pub act: String,
    /// What happened, in Dutch.
    pub text: String,
    /// For an escalation or de-escalation: the level it moved to.
    pub level: Option<String>,
    /// For an escalation: the legal ground's code.
    pub grondslag: Option<String>,
    /// The step in the plan's `basis` document that holds the reason.
    pub step: Option<EntityId>,
}

/// Who takes part in a plan and who holds regie, as its signed chain says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub regisseur: PlanParticipant,
    /// A warm handover: offered regie, not accepted yet. Both are shown until then.
    pub offered_to: Option<PlanParticipant>,
    pub level: String,
    pub participants: Vec<PlanParticipant>,
    pub steps: Vec<MembershipStep>,
}

impl Device {
    /// The plan's membership as its verified chain says; `None` while the device holds no
    /// chain for it (a plan not registered with the server yet, or one an older device
    /// registered).
    pub fn membership(&self, plan: &PlanId) -> Result<Option<Membership>, CoreError> {
        Ok(self.roster(plan)?.map(|roster| membership_of(&roster)))
    }

    /// Writes this device's user's contact details into the plan, for the other participants.
    pub fn set_own_contact(
        &mut self,
        plan: &PlanId,
        phone: Option<&str>,
        email: Option<&str>,
    ) -> Result<(), CoreError> {
        self.audited(Access::on(AuditAction::Change, *plan), |d| {
            d.set_own_contact_recorded(plan, phone, email)
        })
    }

    fn set_own_contact_recorded(
        &mut self,
        plan: &PlanId,
        phone: Option<&str>,
        email: Option<&str>,
    ) -> Result<(), CoreError> {
        let user = self.own_user_id()?.ok_or_else(|| {
            CoreError::NotAllowed(
                "dit apparaat is nog niet aangemeld: er is geen gebruiker om gegevens van te tonen".into(),
            )
        })?;
        self.edit(plan, |p| p.set_contact(user, phone, email))
    }

    /// Fills in the participants' contact details from their own cards: a card counts only
    /// when a device of that very user wrote it (by the certificate this device holds).
    pub(crate) fn fill_contacts(
        &self,
        membership: &mut Membership,
        cards: &[crate::plan::view::ContactCard],
    ) -> Result<(), CoreError> {
        for participant in membership.participants.iter_mut() {
            for card in cards.iter().filter(|c| c.user_id == participant.user_id) {
                let Ok(device) = card.written_by.parse::<crate::ids::DeviceId>() else { continue };
                if self
                    .known_device(device.as_bytes())?
                    .is_some_and(|body| body.user_id == participant.user_id)
                {
                    participant.phone = card.phone.clone();
                    participant.email = card.email.clone();
                }
            }
        }
        Ok(())
    }

    /// This device's user id, from its certificate.
    pub fn own_user_id(&self) -> Result<Option<i64>, CoreError> {
        Ok(self.own_body()?.map(|b| b.user_id))
    }

    /// Offers regie to a participant; they hold it once they accept.
    pub fn hand_over_regie(&mut self, plan: &PlanId, to: &str) -> Result<(), CoreError> {
        self.audited(Access::on(AuditAction::ParticipantChange, *plan).object("handover"), |d| {
            d.hand_over_regie_recorded(plan, to)
        })
    }

    fn hand_over_regie_recorded(&mut self, plan: &PlanId, to: &str) -> Result<(), CoreError> {
        let roster = self.roster_as_regisseur(plan)?;
        let to_id = participant_named(&roster, to)?;
        if to_id == roster.state().regisseur {
            return Err(CoreError::NotAllowed("u heeft de regie al".into()));
        }
        self.queue_intent(plan, Intent::Handover { to: to.trim().to_owned() })
    }

    /// Accepts regie offered to this device's user.
    pub fn accept_regie(&mut self, plan: &PlanId) -> Result<(), CoreError> {
        self.audited(Access::on(AuditAction::ParticipantChange, *plan).object("accept"), |d| {
            d.accept_regie_recorded(plan)
        })
    }

    fn accept_regie_recorded(&mut self, plan: &PlanId) -> Result<(), CoreError> {
        let roster = self.held_roster(plan)?;
        if roster.state().offered != self.own_user_id()? {
            return Err(CoreError::NotAllowed("de regie van dit plan is u niet aangeboden".into()));
        }
        self.queue_intent(plan, Intent::Accept)
    }

    /// Escalates the case: records the step and its reason in the plan (the reason is plan
    /// content, sealed), and queues the signed step that adds the participants named and
    /// offers regie to `regie`.
    pub fn escalate_case(
        &mut self,
        plan: &PlanId,
        level: EscalationLevel,
        reason: &str,
        grondslag: Grondslag,
        regie: Option<&str>,
        add: &[String],
    ) -> Result<(), CoreError> {
        self.audited(Access::on(AuditAction::ParticipantChange, *plan).object("escalate"), |d| {
            d.escalate_case_recorded(plan, level, reason, grondslag, regie, add)
        })
    }

    fn escalate_case_recorded(
        &mut self,
        plan: &PlanId,
        level: EscalationLevel,
        reason: &str,
        grondslag: Grondslag,
        regie: Option<&str>,
        add: &[String],
    ) -> Result<(), CoreError> {
        let roster = self.roster_as_regisseur(plan)?;
        if roster.state().level == level.as_str() {
            return Err(CoreError::NotAllowed(format!("het plan staat al op niveau {}", level.as_str())));
        }
        let name_of = |named: &str| named.rsplit_once(':').map_or(named, |(name, _)| name).trim().to_owned();
        if let Some(regie) = regie
            && !add.iter().any(|a| name_of(a) == name_of(regie))
        {
            participant_named(&roster, regie)?;
        }
        let step = self.edit(plan, |p| p.escalate(level, None, reason))?;
        self.queue_intent(
            plan,
            Intent::Escalate {
                level: level.as_str().to_owned(),
                grondslag,
                step: u64::from_be_bytes(*step.as_bytes()),
                regie: regie.map(|r| r.trim().to_owned()),
                add: add.iter().map(|a| a.trim().to_owned()).collect(),
            },
        )
    }

    /// De-escalates: regie goes to `regie` at once, and the participants that escalations
    /// above `level` added leave (their devices get nothing new, and what they could read
    /// moves to a new key).
    pub fn deescalate_case(
        &mut self,
        plan: &PlanId,
        level: EscalationLevel,
        regie: &str,
        reason: &str,
    ) -> Result<(), CoreError> {
        self.audited(Access::on(AuditAction::ParticipantChange, *plan).object("deescalate"), |d| {
            d.deescalate_case_recorded(plan, level, regie, reason)
        })
    }

    fn deescalate_case_recorded(
        &mut self,
        plan: &PlanId,
        level: EscalationLevel,
        regie: &str,
        reason: &str,
    ) -> Result<(), CoreError> {
        let roster = self.roster_as_regisseur(plan)?;
        if roster.state().level == level.as_str() {
            return Err(CoreError::NotAllowed(format!("het plan staat al op niveau {}", level.as_str())));
        }
        let regie_id = participant_named(&roster, regie)?;
        let leaving: Vec<String> = added_above(&roster, level.as_str())
            .into_iter()
            .filter(|user| *user != regie_id)
            .map(|user| user.to_string())
            .collect();
        // The step needs words; when none are given, say what happened.
        let reason = match reason.trim() {
            "" => format!(
                "Afgeschaald naar {}; regie bij {}",
                level.as_str(),
                participant_label(&roster, regie_id)
            ),
            given => given.to_owned(),
        };
        let step = self.edit(plan, |p| p.escalate(level, None, &reason))?;
        self.queue_intent(
            plan,
            Intent::Deescalate {
                level: level.as_str().to_owned(),
                step: u64::from_be_bytes(*step.as_bytes()),
                regie: regie_id.to_string(),
                remove: leaving,
            },
        )
    }

    /// Removes a participant: their devices get nothing new from the sync that posts it, and
    /// the compartments they could read move to a new key made by a remaining reader.
    pub fn remove_participant(&mut self, plan: &PlanId, user: &str) -> Result<(), CoreError> {
        self.audited(Access::on(AuditAction::ParticipantChange, *plan).object("remove"), |d| {
            d.remove_participant_recorded(plan, user)
        })
    }

    fn remove_participant_recorded(&mut self, plan: &PlanId, user: &str) -> Result<(), CoreError> {
        let roster = self.roster_as_regisseur(plan)?;
        let user_id = participant_named(&roster, user)?;
        if user_id == roster.state().regisseur {
            return Err(CoreError::NotAllowed(
                "de regisseur kan niet uit het plan worden gehaald; draag eerst de regie over".into(),
            ));
        }
        self.queue_intent(plan, Intent::Remove { user: user_id.to_string() })
    }

    /// Settles a conflict: the regisseur's task (DESIGN §7). In a plan whose chain this
    /// device holds, only the regisseur's device settles; before the first sync, the plan's
    /// creator (who will hold regie) may. Others' devices see the conflict and leave it.
    pub fn settle_conflict(
        &mut self,
        plan: &PlanId,
        conflict: &str,
        resolution: crate::plan::Resolution,
    ) -> Result<(), CoreError> {
        let mut access = Access::on(AuditAction::Settle, *plan);
        access.object = crate::audit::conflict_entity(conflict);
        self.audited_as(access, AuditAction::Settle, |d| {
            d.require_regie(plan)?;
            d.edit(plan, |p| p.resolve_conflict(conflict, resolution))
        })
    }

    /// Refuses a regisseur's act on the plan's own content (settling a conflict, choosing
    /// what the family's copy holds) unless this device's user holds regie by the chain. A
    /// plan whose chain this device does not hold yet is its creator's, before its first
    /// sync: allowed.
    pub(crate) fn require_regie(&self, plan: &PlanId) -> Result<(), CoreError> {
        if self.roster(plan)?.is_some() {
            self.roster_as_regisseur(plan)?;
        }
        Ok(())
    }

    pub(crate) fn held_roster(&self, plan: &PlanId) -> Result<Roster, CoreError> {
        self.roster(plan)?.ok_or_else(|| {
            CoreError::NotAllowed(
                "de deelnemerslijst van dit plan is nog niet van de server ontvangen; synchroniseer eerst"
                    .into(),
            )
        })
    }

    pub(crate) fn roster_as_regisseur(&self, plan: &PlanId) -> Result<Roster, CoreError> {
        let roster = self.held_roster(plan)?;
        if Some(roster.state().regisseur) != self.own_user_id()? {
            let holder = roster.state().participant(roster.state().regisseur).map(|p| p.name.clone());
            return Err(CoreError::NotAllowed(format!(
                "alleen de regisseur van dit plan ({}) kan dit doen",
                holder.unwrap_or_default()
            )));
        }
        Ok(roster)
    }
}

/// The participant `name` names: exactly by name, or by user id. One rule for the checks
/// before an act is queued and for signing it.
pub(crate) fn participant_named(roster: &Roster, name: &str) -> Result<i64, CoreError> {
    let name = name.trim();
    let state = roster.state();
    let by_name: Vec<i64> =
        state.participants.values().filter(|p| p.name == name).map(|p| p.user_id).collect();
    match (by_name.as_slice(), name.parse::<i64>()) {
        ([one], _) => Ok(*one),
        ([], Ok(id)) if state.participant(id).is_some() => Ok(id),
        ([_, _, ..], _) => {
            Err(CoreError::NotAllowed(format!("meer dan één deelnemer heet {name:?}; geef het nummer")))
        }
        _ => Err(CoreError::NotAllowed(format!("{name:?} neemt niet deel aan dit plan"))),
    }
}

fn participant_label(roster: &Roster, user: i64) -> String {
    roster.state().participant(user).map_or_else(|| format!("gebruiker {user}"), |p| p.name.clone())
}

/// The participants still on the plan whom escalations to a level above `level` added.
fn added_above(roster: &Roster, level: &str) -> Vec<i64> {
    let rank = |l: &str| LEVELS.iter().position(|x| *x == l).unwrap_or(0);
    let mut users = Vec::new();
    for step in roster.steps() {
        if let Change::Escalate { level: up, add, .. } = &step.change
            && rank(up) > rank(level)
        {
            users.extend(add.iter().map(|p| p.user_id).filter(|u| roster.state().participant(*u).is_some()));
        }
    }
    users.sort_unstable();
    users.dedup();
    users
}

fn membership_of(roster: &Roster) -> Membership {
    let state = roster.state();
    let named = |user: i64| -> PlanParticipant {
        let steps = roster.steps();
        state
            .participant(user)
            .map(PlanParticipant::from)
            .or_else(|| {
                // Someone who left: their name from the entry that added them.
                steps.iter().find_map(|s| match &s.change {
                    Change::Create(p) | Change::Add(p) if p.user_id == user => Some(PlanParticipant::from(p)),
                    Change::Escalate { add, .. } => {
                        add.iter().find(|p| p.user_id == user).map(PlanParticipant::from)
                    }
                    _ => None,
                })
            })
            .unwrap_or(PlanParticipant {
                user_id: user,
                name: format!("gebruiker {user}"),
                organisation: String::new(),
                role: String::new(),
                phone: None,
                email: None,
            })
    };
    let steps = roster
        .steps()
        .iter()
        .map(|step| {
            let by = match &step.by {
                SignedBy::Device { user, .. } => named(*user).name,
                SignedBy::Admin { name, .. } => format!("beheerder {name}"),
            };
            let (text, level, grondslag, id) = describe(&step.change, &named);
            MembershipStep {
                seq: step.seq,
                at_ms: step.at_ms,
                by,
                act: step.change.code().to_owned(),
                text,
                level,
                grondslag,
                step: id.map(|id| EntityId::from_bytes(id.to_be_bytes())),
            }
        })
        .collect();
    Membership {
        regisseur: named(state.regisseur),
        offered_to: state.offered.map(named),
        level: state.level.clone(),
        participants: state.participants.values().map(PlanParticipant::from).collect(),
        steps,
    }
}

type Described = (String, Option<String>, Option<String>, Option<u64>);

/// An escalation level as people say it.
fn level_label(level: &str) -> &str {
    match level {
        "regulier" => "regulier",
        "lokaal" => "lokaal (wijkteam)",
        "zorg_en_veiligheidshuis" => "het Zorg- en Veiligheidshuis",
        other => other,
    }
}

fn describe(change: &Change, named: &dyn Fn(i64) -> PlanParticipant) -> Described {
    let who = |p: &PlanParticipant| format!("{} ({})", p.name, p.organisation);
    let names = |users: &mut dyn Iterator<Item = PlanParticipant>| {
        users.map(|p| who(&p)).collect::<Vec<_>>().join(", ")
    };
    match change {
        Change::Create(p) => (format!("plan aangemaakt; regie bij {}", who(&p.into())), None, None, None),
        Change::Add(p) => (format!("{} neemt deel", who(&p.into())), None, None, None),
        Change::Remove(user) => (format!("{} neemt niet meer deel", who(&named(*user))), None, None, None),
        Change::Handover(user) => (format!("regie aangeboden aan {}", who(&named(*user))), None, None, None),
        Change::Accept(user) => (format!("{} heeft de regie aanvaard", who(&named(*user))), None, None, None),
        Change::Escalate { level, grondslag, step, add, regie } => {
            let mut text =
                format!("opgeschaald naar {} (grondslag: {})", level_label(level), grondslag.label());
            if !add.is_empty() {
                text.push_str(&format!("; erbij: {}", names(&mut add.iter().map(PlanParticipant::from))));
            }
            if let Some(regie) = regie {
                text.push_str(&format!("; regie aangeboden aan {}", who(&named(*regie))));
            }
            (text, Some(level.clone()), Some(grondslag.as_str().to_owned()), Some(*step))
        }
        Change::Deescalate { level, step, regie, remove } => {
            let mut text =
                format!("afgeschaald naar {}; regie bij {}", level_label(level), who(&named(*regie)));
            if !remove.is_empty() {
                text.push_str(&format!("; vertrokken: {}", names(&mut remove.iter().map(|u| named(*u)))));
            }
            (text, Some(level.clone()), None, Some(*step))
        }
        Change::Close { .. } => ("plan afgesloten; de bewaartermijn loopt".to_owned(), None, None, None),
        Change::Erase(_) => (
            "persoonsgegevens van een gezinslid gewist (AVG); de geschiedenis van het basisdeel is vervangen"
                .to_owned(),
            None,
            None,
            None,
        ),
    }
}
