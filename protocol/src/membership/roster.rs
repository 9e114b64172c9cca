//! The chain folded into who takes part now: the rules of who may sign what, written once for
//! the server and every device.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    Act, CertificateChain, Erasure, Grondslag, MAX_ADDED, MAX_ENTRIES, MAX_PARTICIPANTS, MembershipError,
    SignedBy, SignedEntry, is_level, verify_signer,
};
use crate::certificate::DeviceBody;

/// A participant, as the certificate that named them says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub user_id: i64,
    pub name: String,
    pub organisation: String,
    /// The certified role when they were added: the policy reads it.
    pub role: String,
    /// The entry that added them.
    pub since_seq: u32,
}

impl Participant {
    fn of(body: &DeviceBody, seq: u32) -> Participant {
        Participant {
            user_id: body.user_id,
            name: body.user_name.clone(),
            organisation: body.organisation.clone(),
            role: body.role.clone(),
            since_seq: seq,
        }
    }
}

/// Who takes part and who holds regie after some entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterState {
    pub regisseur: i64,
    /// A warm handover: offered, not yet accepted. Both are shown until then.
    pub offered: Option<i64>,
    pub level: String,
    pub participants: BTreeMap<i64, Participant>,
    /// When the plan was closed (the closing entry's time); nothing follows a close.
    #[serde(default)]
    pub closed_at_ms: Option<i64>,
}

impl RosterState {
    pub fn participant(&self, user: i64) -> Option<&Participant> {
        self.participants.get(&user)
    }

    /// The participant a device certificate speaks for: its user, and only if the
    /// certificate names the organisation that user takes part for. User ids are the
    /// network's, but an organisation's administrator certifies devices of its own
    /// organisation only: a certificate it signed with another organisation's user id must
    /// not count as that user.
    pub fn participant_certified(&self, device: &DeviceBody) -> Option<&Participant> {
        self.participant(device.user_id).filter(|p| p.organisation == device.organisation)
    }

    /// The users whose role reads at this state's level, by `reads(role, level)`.
    pub fn readers(&self, reads: &dyn Fn(&str, &str) -> bool) -> BTreeSet<i64> {
        self.participants.values().filter(|p| reads(&p.role, &self.level)).map(|p| p.user_id).collect()
    }
}

/// One verified entry, with the certificates it named already resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub seq: u32,
    pub at_ms: i64,
    pub by: SignedBy,
    pub change: Change,
}

/// What a verified entry changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    Create(Participant),
    Add(Participant),
    Remove(i64),
    Handover(i64),
    Accept(i64),
    Escalate { level: String, grondslag: Grondslag, step: u64, add: Vec<Participant>, regie: Option<i64> },
    Deescalate { level: String, step: u64, regie: i64, remove: Vec<i64> },
    Close { at_ms: i64 },
    Erase(Erasure),
}

impl Change {
    /// The act's stable code, for logs, counters and apps.
    pub fn code(&self) -> &'static str {
        match self {
            Change::Create(_) => "create",
            Change::Add(_) => "add",
            Change::Remove(_) => "remove",
            Change::Handover(_) => "handover",
            Change::Accept(_) => "accept",
            Change::Escalate { .. } => "escalate",
            Change::Deescalate { .. } => "deescalate",
            Change::Close { .. } => "close",
            Change::Erase(_) => "erase",
        }
    }
}

/// A plan's verified chain: its steps and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    plan: [u8; 16],
    head: [u8; 32],
    steps: Vec<Step>,
    state: RosterState,
}

impl Roster {
    /// A chain from its first entry, which must create the plan on a participant's device.
    pub fn start(
        signed: &SignedEntry,
        root: &[u8; 32],
        revoked_before: &dyn Fn(&DeviceBody, i64) -> bool,
    ) -> Result<Roster, MembershipError> {
        let (entry, by, body) = verify_signer(signed, root, revoked_before)?;
        let (Act::Create, Some(body), 1) = (&entry.act, body, entry.seq) else {
            return Err(MembershipError::NotFirst);
        };
        if entry.prev.0 != [0; 32] {
            return Err(MembershipError::Fork(1));
        }
        let creator = Participant::of(&body, 1);
        let state = RosterState {
            regisseur: creator.user_id,
            offered: None,
            level: super::LEVELS[0].to_owned(),
            participants: BTreeMap::from([(creator.user_id, creator.clone())]),
            closed_at_ms: None,
        };
        let step = Step { seq: 1, at_ms: entry.at_ms, by, change: Change::Create(creator) };
        Ok(Roster { plan: entry.plan.0, head: signed.hash(), steps: vec![step], state })
    }

    /// Verifies the next entry and applies it. Nothing changes when it is refused.
    pub fn apply(
        &mut self,
        signed: &SignedEntry,
        root: &[u8; 32],
        revoked_before: &dyn Fn(&DeviceBody, i64) -> bool,
    ) -> Result<(), MembershipError> {
        let claimed = signed.claimed()?;
        if claimed.plan.0 != self.plan {
            return Err(MembershipError::OtherPlan);
        }
        if claimed.seq != self.seq() + 1 {
            return Err(MembershipError::OutOfOrder { held: self.seq(), got: claimed.seq });
        }
        if claimed.prev.0 != self.head {
            return Err(MembershipError::Fork(claimed.seq));
        }
        if claimed.seq > MAX_ENTRIES {
            return Err(MembershipError::TooMany);
        }
        let (entry, by, body) = verify_signer(signed, root, revoked_before)?;
        // A device acts as a participant only under the organisation that participant takes
        // part for (see [`RosterState::participant_certified`]).
        if let Some(body) = &body
            && self.state.participant(body.user_id).is_some()
            && self.state.participant_certified(body).is_none()
        {
            return Err(MembershipError::ForeignCertificate {
                user: body.user_id,
                organisation: body.organisation.clone(),
            });
        }
        let change = self.judge(&entry.act, &by, entry.seq, entry.at_ms, root)?;
        let mut state = self.state.clone();
        fold(&mut state, &change);
        if state.participants.len() > MAX_PARTICIPANTS {
            return Err(MembershipError::TooMany);
        }
        self.state = state;
        self.steps.push(Step { seq: entry.seq, at_ms: entry.at_ms, by, change });
        self.head = signed.hash();
        Ok(())
    }

    /// For an organisation's administrator: the participant an act touches (the one removed;
    /// for a handover or close, the regisseur who is gone) must be of its organisation.
    fn check_admin_scope(&self, act: &Act, by: &SignedBy) -> Result<(), MembershipError> {
        let SignedBy::Admin { organisation: Some(own), .. } = by else { return Ok(()) };
        let touched = match act {
            Act::Remove(gone) => *gone,
            Act::Handover(_) | Act::Close => self.state.regisseur,
            // Whatever else an administrator signs is refused by the rules below.
            _ => return Ok(()),
        };
        match self.state.participant(touched) {
            Some(p) if &p.organisation == own => Ok(()),
            _ => Err(MembershipError::OutOfScope(own.clone())),
        }
    }

    /// Whether `by` may make `act` now, and what it changes.
    fn judge(
        &self,
        act: &Act,
        by: &SignedBy,
        seq: u32,
        at_ms: i64,
        root: &[u8; 32],
    ) -> Result<Change, MembershipError> {
        let state = &self.state;
        let user = match by {
            SignedBy::Device { user, .. } => Some(*user),
            SignedBy::Admin { .. } => None,
        };
        // An organisation's administrator acts only on its own organisation's participants.
        self.check_admin_scope(act, by)?;
        let regisseur = user == Some(state.regisseur);
        let admin = user.is_none();
        let require = |allowed: bool| if allowed { Ok(()) } else { Err(MembershipError::NotRegisseur) };
        // An erasure changes no membership, and an AVG request may come during the retention
        // period of a closed plan.
        if state.closed_at_ms.is_some() && !matches!(act, Act::Erase(_)) {
            return Err(MembershipError::Closed);
        }
        match act {
            Act::Erase(erasure) => {
                require(regisseur)?;
                if self.erasure().is_some_and(|(_, last)| erasure.epoch <= last.epoch) || erasure.epoch < 2 {
                    return Err(MembershipError::StaleErasure);
                }
                Ok(Change::Erase(*erasure))
            }
            Act::Close => {
                require(regisseur || admin)?;
                // Retention runs from the close: one dated before the chain's last step
                // would shorten it (and a backdated close would let a plan be erased early).
                let last = self.steps.last().map_or(i64::MIN, |s| s.at_ms);
                if at_ms < last {
                    return Err(MembershipError::Backdated);
                }
                Ok(Change::Close { at_ms })
            }
            Act::Create => Err(MembershipError::NotFirst),
            Act::Add(chain) => {
                require(regisseur)?;
                Ok(Change::Add(self.newcomer(chain, seq, at_ms, root)?))
            }
            Act::Remove(gone) => {
                require(regisseur || admin)?;
                self.require_participant(*gone)?;
                if *gone == state.regisseur {
                    return Err(MembershipError::RegisseurLeaves);
                }
                Ok(Change::Remove(*gone))
            }
            Act::Handover(to) => {
                require(regisseur || admin)?;
                self.require_participant(*to)?;
                Ok(Change::Handover(*to))
            }
            Act::Accept => match (state.offered, user) {
                (Some(offered), Some(user)) if offered == user => Ok(Change::Accept(user)),
                _ => Err(MembershipError::NotOffered),
            },
            Act::Escalate(escalation) => {
                require(regisseur)?;
                self.new_level(&escalation.level)?;
                if escalation.add.len() > MAX_ADDED {
                    return Err(MembershipError::TooMany);
                }
                let mut add = Vec::new();
                for chain in &escalation.add {
                    let newcomer = self.newcomer(chain, seq, at_ms, root)?;
                    if add.iter().any(|p: &Participant| p.user_id == newcomer.user_id) {
                        return Err(MembershipError::AlreadyParticipant(newcomer.user_id));
                    }
                    add.push(newcomer);
                }
                if let Some(regie) = escalation.regie
                    && state.participant(regie).is_none()
                    && !add.iter().any(|p| p.user_id == regie)
                {
                    return Err(MembershipError::NotParticipant(regie));
                }
                Ok(Change::Escalate {
                    level: escalation.level.clone(),
                    grondslag: escalation.grondslag,
                    step: escalation.step,
                    add,
                    regie: escalation.regie.filter(|r| *r != state.regisseur),
                })
            }
            Act::Deescalate(deescalation) => {
                require(regisseur)?;
                self.new_level(&deescalation.level)?;
                if deescalation.remove.len() > MAX_ADDED {
                    return Err(MembershipError::TooMany);
                }
                self.require_participant(deescalation.regie)?;
                let mut remove: Vec<i64> = Vec::new();
                for gone in &deescalation.remove {
                    self.require_participant(*gone)?;
                    if *gone == deescalation.regie {
                        return Err(MembershipError::RegisseurLeaves);
                    }
                    if !remove.contains(gone) {
                        remove.push(*gone);
                    }
                }
                Ok(Change::Deescalate {
                    level: deescalation.level.clone(),
                    step: deescalation.step,
                    regie: deescalation.regie,
                    remove,
                })
            }
        }
    }

    fn newcomer(
        &self,
        chain: &CertificateChain,
        seq: u32,
        at_ms: i64,
        root: &[u8; 32],
    ) -> Result<Participant, MembershipError> {
        let body = chain.verify(root, at_ms)?;
        if self.state.participant(body.user_id).is_some() {
            return Err(MembershipError::AlreadyParticipant(body.user_id));
        }
        Ok(Participant::of(&body, seq))
    }

    fn require_participant(&self, user: i64) -> Result<(), MembershipError> {
        match self.state.participant(user) {
            Some(_) => Ok(()),
            None => Err(MembershipError::NotParticipant(user)),
        }
    }

    fn new_level(&self, level: &str) -> Result<(), MembershipError> {
        if !is_level(level) {
            return Err(MembershipError::UnknownLevel(level.to_owned()));
        }
        if level == self.state.level {
            return Err(MembershipError::SameLevel(level.to_owned()));
        }
        Ok(())
    }

    pub fn plan(&self) -> [u8; 16] {
        self.plan
    }

    /// The position of the newest entry.
    pub fn seq(&self) -> u32 {
        self.steps.last().map_or(0, |s| s.seq)
    }

    /// The hash of the newest signed entry: the next entry's `prev`.
    pub fn head(&self) -> [u8; 32] {
        self.head
    }

    /// The newest erasure of the plan's `basis` and the position of its entry.
    pub fn erasure(&self) -> Option<(u32, &Erasure)> {
        self.steps.iter().rev().find_map(|s| match &s.change {
            Change::Erase(erasure) => Some((s.seq, erasure)),
            _ => None,
        })
    }

    /// Where the plan stands now.
    pub fn state(&self) -> &RosterState {
        &self.state
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Where the plan stood after entry `seq` (the newest state for a later `seq`).
    pub fn state_at(&self, seq: u32) -> RosterState {
        let mut steps = self.steps.iter().take_while(|s| s.seq <= seq.max(1));
        let Some(Step { change: Change::Create(creator), .. }) = steps.next() else {
            return self.state.clone();
        };
        let mut state = RosterState {
            regisseur: creator.user_id,
            offered: None,
            level: super::LEVELS[0].to_owned(),
            participants: BTreeMap::from([(creator.user_id, creator.clone())]),
            closed_at_ms: None,
        };
        for step in steps {
            fold(&mut state, &step.change);
        }
        state
    }

    /// The chain's position at time `at_ms` by its entries' own times: for a key whose maker
    /// named no position (an administrator's, or one made before the chain).
    pub fn seq_at_time(&self, at_ms: i64) -> u32 {
        self.steps.iter().take_while(|s| s.at_ms <= at_ms).last().map_or(1, |s| s.seq)
    }

    /// Every level the plan was at from entry `seq` on, the current one included: a write in
    /// an epoch made at `seq` was made at one of them.
    pub fn levels_since(&self, seq: u32) -> Vec<String> {
        let mut state = self.state_at(seq);
        let mut levels = vec![state.level.clone()];
        for step in self.steps.iter().filter(|s| s.seq > seq.max(1)) {
            fold(&mut state, &step.change);
            if !levels.contains(&state.level) {
                levels.push(state.level.clone());
            }
        }
        levels
    }

    /// Whether someone who could read (by `reads(role, level)`) at any state from entry `seq`
    /// on cannot read now: then a key made at `seq` must not carry new writes.
    pub fn lost_readers_since(&self, seq: u32, reads: &dyn Fn(&str, &str) -> bool) -> bool {
        let now = self.state.readers(reads);
        let mut state = self.state_at(seq);
        if !state.readers(reads).is_subset(&now) {
            return true;
        }
        for step in self.steps.iter().filter(|s| s.seq > seq.max(1)) {
            fold(&mut state, &step.change);
            if !state.readers(reads).is_subset(&now) {
                return true;
            }
        }
        false
    }
}

/// Applies a judged change.
fn fold(state: &mut RosterState, change: &Change) {
    match change {
        Change::Create(_) => {}
        Change::Add(participant) => {
            state.participants.insert(participant.user_id, participant.clone());
        }
        Change::Remove(gone) => {
            state.participants.remove(gone);
            if state.offered == Some(*gone) {
                state.offered = None;
            }
        }
        Change::Handover(to) => state.offered = Some(*to).filter(|to| *to != state.regisseur),
        Change::Accept(user) => {
            state.regisseur = *user;
            state.offered = None;
        }
        Change::Escalate { level, add, regie, .. } => {
            state.level = level.clone();
            for participant in add {
                state.participants.insert(participant.user_id, participant.clone());
            }
            state.offered = *regie;
        }
        Change::Deescalate { level, regie, remove, .. } => {
            state.level = level.clone();
            state.regisseur = *regie;
            state.offered = None;
            for gone in remove {
                state.participants.remove(gone);
            }
        }
        Change::Erase(_) => {}
        Change::Close { at_ms } => {
            state.closed_at_ms = Some(*at_ms);
            state.offered = None;
        }
    }
}
