//! The device object a host holds: the core's [`SharedDevice`] (the core's device behind a
//! mutex, with syncs that hold it only between network exchanges).
//!
//! The core's device takes `&mut self` (one writer, invariant 5), so every call locks it.
//! Calls that talk to the server (enrol, sync, sharing) are `async`: they run on a thread of
//! their own and the host awaits a oneshot, so a Kotlin coroutine or Swift task is suspended,
//! not blocked, and the library needs no async runtime. They hold the device only for their
//! short local steps, never while the network is used: a read or an edit made while a sync
//! waits on a poor link goes ahead at once, and the edit is pushed by that sync's next round
//! or by the next sync. Local calls (edits, reads) are synchronous and durable when they
//! return; a phone app makes them off its main thread all the same (e.g. `Dispatchers.IO`).
//!
//! **Closing.** [`Device::close`] takes the core device out of the mutex and drops it, which
//! closes the store and releases its lock: the directory can be opened again at once, here or
//! in another process. It waits for a call that holds the device to finish (an edit, or a
//! sync's current step) rather than break into it: the mutex exists so that no call is cut
//! off halfway. A call that starts (or a background call that resumes) after that finds the
//! device gone and fails with [`ApiError::Closed`]. Dropping the object closes it the same way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use eenplan_core::sync::SharedDevice;

use eenplan_core::CoreError;
use eenplan_core::Device as CoreDevice;
use eenplan_core::audience::Audience;
use eenplan_core::ids::{EntityId, PlanId};
use eenplan_core::plan::{
    ActionStatus, Compartment, Conflict, EscalationLevel, GoalStatus, NewAction, NewGoal, NewMember,
    NewParticipant, NoteKind, Phase, PlanView, Role,
};
use eenplan_core::sync::{DeviceStatus, Enrolment, Platform, ShareOutcome};
use eenplan_protocol::api::{EnrolmentLink, ServerUrl};
use eenplan_protocol::membership::Grondslag;
use futures_channel::oneshot;

use crate::error::{ApiError, CallbackError};
use crate::keystore::{HostKeyStore, KeyStore};
use crate::log;
use crate::types::{
    ActionUpdate, DeviceState, MemberUpdate, PlanListEntry, Resolution, SyncSummary, text_count,
};

/// What the host hears without asking. Called on a background thread: post to the UI
/// thread from here. An exception thrown here is caught and logged ([`crate::LogSink`]); the
/// sync's result stands.
#[uniffi::export(with_foreign)]
pub trait DeviceListener: Send + Sync {
    /// A sync changed these plans or brought them to this device: re-read them.
    fn plans_changed(&self, plan_ids: Vec<PlanId>) -> Result<(), CallbackError>;
    /// An administrator revoked this device: it can no longer sync. `wiped` says whether
    /// the device has destroyed its key material, so that nothing on it can be read any more.
    fn device_revoked(&self, wiped: bool) -> Result<(), CallbackError>;
}

/// Tells the listener something; what it throws is logged, never passed on.
fn tell(what: &str, call: impl FnOnce() -> Result<(), CallbackError>) {
    if let Err(e) = call() {
        log::warn(&format!("the app's DeviceListener.{what} threw; eenplan carries on: {e}"));
    }
}

/// One eenplan device: its encrypted store in a directory of the app's private storage, its
/// keys, and its plans.
#[derive(uniffi::Object)]
pub struct Device {
    /// Closed by [`Device::close`]; calls then fail with `Closed`.
    core: Arc<SharedDevice>,
    listener: Mutex<Option<Arc<dyn DeviceListener>>>,
    data_dir: PathBuf,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("data_dir", &self.data_dir).finish_non_exhaustive()
    }
}

/// Whether `data_dir` holds a device, without unlocking anything: [`device_state`] is
/// [`DeviceState::Present`].
#[uniffi::export]
pub fn device_exists(data_dir: String) -> bool {
    device_state(data_dir) == DeviceState::Present
}

/// What `data_dir` holds (nothing, a device, a wiped device), without unlocking anything.
#[uniffi::export]
pub fn device_state(data_dir: String) -> DeviceState {
    let dir = Path::new(&data_dir);
    if CoreDevice::is_wiped(dir) {
        let marker = CoreDevice::wipe_marker(dir);
        DeviceState::Wiped {
            reason: marker.as_ref().map(|m| m.reason),
            wiped_at_ms: marker.as_ref().map(|m| m.wiped_at_ms),
        }
    } else if CoreDevice::exists(dir) {
        DeviceState::Present
    } else {
        DeviceState::Absent
    }
}

/// A poisoned lock means a call panicked halfway through; the device's memory may not match
/// its disk any more, so every later call refuses until the host opens the device again.
fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, ApiError> {
    mutex
        .lock()
        .map_err(|_| ApiError::internal("an earlier call failed inside eenplan; open the device again"))
}

/// The data directory the host named; an empty one is a mistake, not a place.
fn data_dir(text: &str) -> Result<PathBuf, ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid("no data directory was given"));
    }
    Ok(PathBuf::from(text))
}

/// What a background call does after it, off the device's lock.
#[derive(Clone, Copy)]
enum AfterCall {
    Nothing,
    /// The server answered: send the reports of earlier wipes of this directory.
    SendKeptWipeReports,
}

impl Device {
    fn new(core: CoreDevice, data_dir: PathBuf) -> Arc<Device> {
        Arc::new(Device { core: Arc::new(SharedDevice::new(core)), listener: Mutex::new(None), data_dir })
    }

    fn opened(
        dir: &str,
        keystore: Arc<dyn KeyStore>,
        open: fn(&Path, &dyn eenplan_core::keystore::KeyStore) -> Result<CoreDevice, CoreError>,
    ) -> Result<Arc<Device>, ApiError> {
        let dir = data_dir(dir)?;
        let host = Arc::new(HostKeyStore(keystore));
        let core = open(&dir, host.as_ref())?.with_keystore(host);
        Ok(Device::new(core, dir))
    }

    /// Runs one core call on the locked device.
    pub(crate) fn with<T>(
        &self,
        call: impl FnOnce(&mut CoreDevice) -> Result<T, CoreError>,
    ) -> Result<T, ApiError> {
        Ok(self.core.with(call)?)
    }

    /// Runs a network call of the core on its own thread and resolves with its result.
    /// The listener hears of it after the device is unlocked: `announce` on success, and a
    /// revocation whatever the call was. A host that stops awaiting (a cancelled coroutine)
    /// does not stop the call: what it wrote is durable all the same.
    /// Queues an act on a plan's signed membership and syncs, on the network thread.
    async fn membership_act(
        &self,
        queue: impl FnOnce(&mut CoreDevice) -> Result<(), CoreError> + Send + 'static,
    ) -> Result<ShareOutcome, ApiError> {
        self.in_background(move |d| d.act_on_membership(queue), quiet, AfterCall::Nothing).await
    }

    async fn in_background<T: Send + 'static>(
        &self,
        call: impl FnOnce(&SharedDevice) -> Result<T, CoreError> + Send + 'static,
        announce: fn(&dyn DeviceListener, &T),
        after: AfterCall,
    ) -> Result<T, ApiError> {
        let core = Arc::clone(&self.core);
        let listener = lock(&self.listener)?.clone();
        let dir = self.data_dir.clone();
        let (answer, answered) = oneshot::channel();
        std::thread::Builder::new()
            .name("eenplan-network".into())
            .spawn(move || {
                let result = call(&core).map_err(ApiError::from);
                if result.is_ok()
                    && let AfterCall::SendKeptWipeReports = after
                    && let Err(e) = CoreDevice::send_previous_wipe_reports(&dir)
                {
                    log::warn(&format!("an earlier wipe's report could not be sent yet: {e}"));
                }
                if let Some(listener) = listener {
                    match &result {
                        Ok(value) => announce(listener.as_ref(), value),
                        Err(ApiError::Revoked { .. }) => {
                            tell("device_revoked", || listener.device_revoked(false))
                        }
                        Err(ApiError::Wiped { .. }) => {
                            tell("device_revoked", || listener.device_revoked(true))
                        }
                        Err(_) => {}
                    }
                }
                // Err only when the host stopped awaiting; there is nobody left to tell.
                let _ = answer.send(result);
            })
            .map_err(|e| ApiError::internal(format!("cannot start a thread: {e}")))?;
        answered
            .await
            .unwrap_or_else(|_| Err(ApiError::internal("a background call ended without an answer")))
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.close();
    }
}

fn quiet<T>(_: &dyn DeviceListener, _: &T) {}

#[uniffi::export]
impl Device {
    /// Creates a device in `data_dir`: new keys (so a new device id) and a new encrypted
    /// store whose data key `keystore` wraps. Refused (`Invalid`) when the directory holds a
    /// device. In a directory whose device was wiped, this sets up a new device in its place:
    /// the old one's data is gone for good, and the new one is enrolled with a new code. (The
    /// old device's wipe report, if it could not be sent, is kept and sent after the new
    /// device's first successful enrolment or sync.)
    #[uniffi::constructor]
    pub fn init(data_dir: String, keystore: Arc<dyn KeyStore>) -> Result<Arc<Device>, ApiError> {
        Device::opened(&data_dir, keystore, CoreDevice::init)
    }

    /// Opens the device in `data_dir`, unlocking its store with `keystore`. `Busy` at once
    /// while another `Device` object has it open; `Wiped` for a wiped device.
    #[uniffi::constructor]
    pub fn open(data_dir: String, keystore: Arc<dyn KeyStore>) -> Result<Arc<Device>, ApiError> {
        Device::opened(&data_dir, keystore, CoreDevice::open)
    }

    /// Opens the device in `data_dir`, creating it when the directory holds none. A wiped
    /// device answers `Wiped` (the app tells the user, then calls [`Device::init`]).
    #[uniffi::constructor]
    pub fn open_or_init(data_dir: String, keystore: Arc<dyn KeyStore>) -> Result<Arc<Device>, ApiError> {
        Device::opened(&data_dir, keystore, CoreDevice::open_or_init)
    }

    /// Closes the device: its store is closed and the directory can be opened again at once.
    /// Idempotent. Waits for a call that holds the device to finish its step (see the module
    /// docs), so call it off the main thread. Every later call on this object fails with
    /// `Closed`. (Kotlin: `closeDevice()`, since `close()` there frees the object, which
    /// closes the device as well.)
    pub fn close(&self) {
        self.core.close();
        *self.listener.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// This device's id (hex), as administrators see it.
    pub fn device_id(&self) -> Result<String, ApiError> {
        self.with(|d| Ok(d.device_id().to_string()))
    }

    /// Sets (or with `None` removes) the listener for synced changes and revocation.
    pub fn set_listener(&self, listener: Option<Arc<dyn DeviceListener>>) -> Result<(), ApiError> {
        self.with(|_| Ok(()))?;
        *lock(&self.listener)? = listener;
        Ok(())
    }

    /// Enrolment, user, organisation and role, the lease, and the count of changes awaiting
    /// a push.
    pub fn status(&self) -> Result<DeviceStatus, ApiError> {
        self.with(|d| d.status())
    }

    /// Changes made here that the server has not acknowledged yet (the offline indicator).
    pub fn pending_changes(&self) -> Result<u64, ApiError> {
        self.with(|d| d.pending_changes())
    }

    /// Claims an enrolment code from the administrator at `server` (`https://host[:port]`;
    /// a malformed address is `Invalid`, with what is wrong), saying what the device is
    /// called (`name`, e.g. "Wim's Android": 1–64 printable characters, else `Invalid`) and
    /// its platform. The device then waits for approval; the first sync after it picks up
    /// its certificate.
    pub async fn enrol(
        &self,
        server: ServerUrl,
        code: String,
        name: String,
        platform: Platform,
    ) -> Result<Enrolment, ApiError> {
        self.in_background(
            move |d| d.enrol(server.as_str(), &code, &name, platform),
            quiet,
            AfterCall::SendKeptWipeReports,
        )
        .await
    }

    /// Enrols with what the phone scanned from the administrator's QR code (an
    /// `eenplan:enrol?server=…&code=…` link): the same as [`Device::enrol`] with the server
    /// and code it holds. Anything else scanned is `Invalid`, and nothing is stored.
    pub async fn enrol_scanned(
        &self,
        scanned: String,
        name: String,
        platform: Platform,
    ) -> Result<Enrolment, ApiError> {
        // Which part of the link is wrong does not help the person scanning: each refusal
        // asks for the administrator's QR code.
        let link = EnrolmentLink::parse(&scanned).map_err(|_| {
            ApiError::invalid("dit is geen aanmeldcode van eenplan: scan de QR-code die de beheerder toont")
        })?;
        self.enrol(link.server, link.code.to_string(), name, platform).await
    }

    /// Gives the device another name (1–64 printable characters, else `Invalid`); the
    /// administrator sees it after the next sync.
    pub fn rename(&self, name: String) -> Result<(), ApiError> {
        self.with(|d| d.rename(&name))
    }

    /// What the device calls itself, if it was named.
    pub fn device_name(&self) -> Result<Option<String>, ApiError> {
        self.with(|d| Ok(d.device_name()?.map(|(label, _)| label.as_str().to_owned())))
    }

    /// Pushes what this device wrote, carries out queued shares, and pulls what it may read,
    /// in one round trip (usually; a poor link gets smaller pages in more rounds, and what each
    /// round brought is kept if a later one fails). The device is not held while the network
    /// is used. The listener hears which plans changed.
    pub async fn sync(&self) -> Result<SyncSummary, ApiError> {
        self.in_background(
            |d| d.sync().map(SyncSummary::from),
            |listener, summary: &SyncSummary| {
                // A plan removed after its grace period changed too: the app drops it.
                let changed: Vec<PlanId> =
                    summary.plans_updated.iter().chain(&summary.retired_plans).copied().collect();
                if !changed.is_empty() {
                    tell("plans_changed", || listener.plans_changed(changed.clone()));
                }
            },
            AfterCall::SendKeptWipeReports,
        )
        .await
    }

    /// Gives another user (by name) a part in the plan with `role`. The share is queued on
    /// the device and carried out by a sync right away, which first registers a plan the
    /// server has not seen yet: `Done`. Without a connection it waits for the next sync:
    /// `Queued` (no error; [`DeviceStatus::queued_shares`] counts what waits). A name no user
    /// (or more than one) has is `NotFound`. This gives access; [`Device::add_participant`]
    /// records who takes part in the plan's own list.
    pub async fn share_plan(&self, plan: PlanId, user: String, role: Role) -> Result<ShareOutcome, ApiError> {
        self.in_background(move |d| d.share(&plan, &user, role.as_str()), quiet, AfterCall::Nothing).await
    }

    /// A new plan for the family, with the default (ZRM-2017) life domains.
    pub fn create_plan(&self, family: String) -> Result<PlanId, ApiError> {
        self.with(|d| d.create_plan(&family))
    }

    /// A new plan for the family with the region's own life domains instead of ZRM-2017's.
    pub fn create_plan_with_domains(&self, family: String, domains: Vec<String>) -> Result<PlanId, ApiError> {
        self.with(|d| d.create_plan_with_domains(&family, Some(domains)))
    }

    /// Every plan on the device, by family name; damaged entries are listed as such.
    pub fn list_plans(&self) -> Result<Vec<PlanListEntry>, ApiError> {
        self.with(|d| Ok(d.list_plans()?.into_iter().map(PlanListEntry::from).collect()))
    }

    /// The plan whose id is `text` or starts with it (at least 4 characters).
    pub fn find_plan(&self, text: String) -> Result<PlanId, ApiError> {
        self.with(|d| d.find_plan(&text))
    }

    /// Everything in the plan that this device may read.
    pub fn read_plan(&self, plan: PlanId) -> Result<PlanView, ApiError> {
        self.with(|d| d.read(&plan))
    }

    /// Who can read `compartment` of `plan` now, for the note editor's "zichtbaar voor: …"
    /// before saving. Local: it never waits on the network.
    pub fn audience(&self, plan: PlanId, compartment: Compartment) -> Result<Audience, ApiError> {
        self.with(|d| d.audience(&plan, compartment))
    }

    /// The compartment the note editor's picker starts on: the most closed one this user's
    /// role may write (a wijkteam note goes to `zorg`), `basis` only for a role that writes
    /// nothing else.
    pub fn default_note_compartment(&self) -> Result<Compartment, ApiError> {
        self.with(|d| d.default_note_compartment())
    }

    /// Fields that hold concurrent values, for the regisseur to settle.
    pub fn conflicts(&self, plan: PlanId) -> Result<Vec<Conflict>, ApiError> {
        self.with(|d| d.conflicts(&plan))
    }

    /// Settles a conflict (named by [`Conflict::id`]) with one of its values or a new one.
    /// The regisseur's task: another participant's device gets [`ApiError::Invalid`].
    pub fn settle_conflict(
        &self,
        plan: PlanId,
        conflict: String,
        resolution: Resolution,
    ) -> Result<(), ApiError> {
        let resolution = resolution.try_into()?;
        self.with(|d| d.settle_conflict(&plan, &conflict, resolution))
    }

    pub fn set_family_name(&self, plan: PlanId, name: String) -> Result<(), ApiError> {
        self.with(|d| d.edit(&plan, |p| p.set_family_name(&name)))
    }

    pub fn set_phase(&self, plan: PlanId, phase: Phase) -> Result<(), ApiError> {
        self.with(|d| d.edit(&plan, |p| p.set_phase(phase)))
    }

    /// Records someone who takes part in the plan (name, organisation, role) in the plan's
    /// own list ([`PlanView::participants`]); returns the entry's id, which
    /// [`Device::set_regisseur`] and [`Device::escalate`] name.
    pub fn add_participant(&self, plan: PlanId, participant: NewParticipant) -> Result<EntityId, ApiError> {
        self.with(|d| d.edit(&plan, |p| p.add_participant(participant)))
    }

    /// Writes this phone's user's contact details into the plan: the other participants see
    /// them beside the name ([`PlanParticipant::phone`], [`PlanParticipant::email`]).
    pub fn set_own_contact(
        &self,
        plan: PlanId,
        phone: Option<String>,
        email: Option<String>,
    ) -> Result<(), ApiError> {
        self.with(|d| d.set_own_contact(&plan, phone.as_deref(), email.as_deref()))
    }

    /// Copies a note into another compartment, to pass it to a partner whose role reads that
    /// one; the copy shows where it came from ([`Note::copied_from`]). Show
    /// [`Device::audience`] of `to` first.
    pub fn copy_note(
        &self,
        plan: PlanId,
        from: Compartment,
        note: EntityId,
        to: Compartment,
    ) -> Result<EntityId, ApiError> {
        self.with(|d| d.edit(&plan, |p| p.copy_note(from, note, to)))
    }

    /// Offers regie of the plan to a participant (by name, as the plan's membership lists
    /// them); they hold it once they accept. Only the regisseur may ([`ApiError::Invalid`]
    /// otherwise, with the reason). Signed and sent by a sync: `Queued` offline.
    pub async fn hand_over_regie(&self, plan: PlanId, to: String) -> Result<ShareOutcome, ApiError> {
        self.membership_act(move |d| d.hand_over_regie(&plan, &to)).await
    }

    /// Accepts regie offered to this device's user ([`Membership::offered_to`]).
    pub async fn accept_regie(&self, plan: PlanId) -> Result<ShareOutcome, ApiError> {
        self.membership_act(move |d| d.accept_regie(&plan)).await
    }

    /// Escalates the case (the regisseur): the step and its reason go into the plan; the
    /// signed step adds the participants named in `add` ("Naam" or "Naam:rol"; each needs an
    /// approved device) and offers regie to `regie`. Who may read what follows the level's
    /// sharing rules from then on.
    pub async fn escalate(
        &self,
        plan: PlanId,
        level: EscalationLevel,
        reason: String,
        grondslag: Grondslag,
        regie: Option<String>,
        add: Vec<String>,
    ) -> Result<ShareOutcome, ApiError> {
        self.membership_act(move |d| {
            d.escalate_case(&plan, level, &reason, grondslag, regie.as_deref(), &add)
        })
        .await
    }

    /// De-escalates (the regisseur): regie goes to `regie` at once and the participants the
    /// escalation added leave; what they could read moves to a new key.
    pub async fn deescalate(
        &self,
        plan: PlanId,
        level: EscalationLevel,
        regie: String,
        reason: String,
    ) -> Result<ShareOutcome, ApiError> {
        self.membership_act(move |d| d.deescalate_case(&plan, level, &regie, &reason)).await
    }

    /// Removes a participant (the regisseur): their devices get nothing new, and what they
    /// could read moves to a new key made by a remaining reader, with no administrator.
    pub async fn remove_participant(&self, plan: PlanId, user: String) -> Result<ShareOutcome, ApiError> {
        self.membership_act(move |d| d.remove_participant(&plan, &user)).await
    }

    /// Closes the plan (*afgesloten*, the regisseur): nothing in it changes any more, the
    /// retention period starts, and devices remove their copies after the grace period.
    /// Edits afterwards fail with `ApiError::PlanClosed`; reads go on until then.
    pub async fn close_case(&self, plan: PlanId) -> Result<ShareOutcome, ApiError> {
        self.membership_act(move |d| d.close_case(&plan)).await
    }

    /// Erases a family member's personal data from the plan on their request (AVG; the
    /// regisseur): the plan's basis is re-sealed without them and without its history, and
    /// the server deletes everything older. Queued, and done by the sync this starts
    /// (`ShareOutcome::Queued` offline, or while this device still pushes its own edits).
    /// The screen shows "dit wordt vastgelegd": the erasure is in the access log.
    pub async fn erase_member(&self, plan: PlanId, member: EntityId) -> Result<ShareOutcome, ApiError> {
        self.membership_act(move |d| d.erase_member(&plan, member).map(|_| ())).await
    }

    pub fn add_member(&self, plan: PlanId, member: NewMember) -> Result<EntityId, ApiError> {
        self.with(|d| d.edit(&plan, |p| p.add_member(member)))
    }

    /// Changes a family member's fields; those left `None` stay as they are.
    pub fn update_member(
        &self,
        plan: PlanId,
        member: EntityId,
        update: MemberUpdate,
    ) -> Result<(), ApiError> {
        self.with(|d| d.edit(&plan, |p| p.update_member(member, update.into())))
    }

    /// A goal in one of the plan's life domains ([`PlanView::domains`]).
    pub fn add_goal(&self, plan: PlanId, domain: String, title: String) -> Result<EntityId, ApiError> {
        self.with(|d| d.edit(&plan, |p| p.add_goal(NewGoal { domain, title })))
    }

    pub fn set_goal_status(&self, plan: PlanId, goal: EntityId, status: GoalStatus) -> Result<(), ApiError> {
        self.with(|d| d.edit(&plan, |p| p.set_goal_status(goal, status)))
    }

    pub fn set_goal_title(&self, plan: PlanId, goal: EntityId, title: String) -> Result<(), ApiError> {
        self.with(|d| d.edit(&plan, |p| p.set_goal_title(goal, &title)))
    }

    /// The ZRM score (1–5) of a member in a domain on a date (YYYY-MM-DD).
    pub fn set_score(
        &self,
        plan: PlanId,
        member: EntityId,
        domain: String,
        date: String,
        score: i64,
    ) -> Result<(), ApiError> {
        self.with(|d| d.edit(&plan, |p| p.set_score(member, &domain, &date, score)))
    }

    pub fn add_action(&self, plan: PlanId, action: NewAction) -> Result<EntityId, ApiError> {
        self.with(|d| d.edit(&plan, |p| p.add_action(action)))
    }

    /// Changes an action's fields (owner included); those left `None` stay as they are.
    pub fn update_action(
        &self,
        plan: PlanId,
        action: EntityId,
        update: ActionUpdate,
    ) -> Result<(), ApiError> {
        self.with(|d| d.edit(&plan, |p| p.update_action(action, update.into())))
    }

    pub fn set_action_status(
        &self,
        plan: PlanId,
        action: EntityId,
        status: ActionStatus,
    ) -> Result<(), ApiError> {
        self.update_action(plan, action, ActionUpdate { status: Some(status), ..ActionUpdate::default() })
    }

    /// Sets the action's due date (YYYY-MM-DD), or clears it with `None`.
    pub fn set_action_due(
        &self,
        plan: PlanId,
        action: EntityId,
        due: Option<String>,
    ) -> Result<(), ApiError> {
        let due = Some(
            due.map_or(crate::types::FieldChange::Clear, |value| crate::types::FieldChange::Set { value }),
        );
        self.update_action(plan, action, ActionUpdate { due, ..ActionUpdate::default() })
    }

    pub fn set_action_title(&self, plan: PlanId, action: EntityId, title: String) -> Result<(), ApiError> {
        self.update_action(plan, action, ActionUpdate { title: Some(title), ..ActionUpdate::default() })
    }

    /// An agreement (afspraak) made with the family.
    pub fn add_agreement(&self, plan: PlanId, text: String) -> Result<EntityId, ApiError> {
        self.with(|d| d.edit(&plan, |p| p.add_agreement(&text)))
    }

    /// A note: home-visit notes go in `Basis`, specialist notes in their compartment.
    pub fn add_note(
        &self,
        plan: PlanId,
        compartment: Compartment,
        kind: NoteKind,
        text: String,
    ) -> Result<EntityId, ApiError> {
        self.with(|d| d.edit(&plan, |p| p.add_note(compartment, kind, &text)))
    }

    /// Types into a note: replaces `delete` UTF-16 code units at UTF-16 offset `position`
    /// (a Kotlin `String` index, a Swift `utf16` offset) with `insert`. Others typing in the
    /// same note at the same time merge. A negative position or length is `Invalid`.
    pub fn edit_note(
        &self,
        plan: PlanId,
        compartment: Compartment,
        note: EntityId,
        position: i32,
        delete: i32,
        insert: String,
    ) -> Result<(), ApiError> {
        let (position, delete) = (text_count("position", position)?, text_count("length to delete", delete)?);
        self.with(|d| d.edit(&plan, |p| p.edit_note_text_utf16(compartment, note, position, delete, &insert)))
    }

    /// A line of the safety plan (veiligheid): a danger statement and the safety goal that
    /// answers it ([`PlanView::safety_items`]).
    pub fn add_safety_item(
        &self,
        plan: PlanId,
        danger_statement: String,
        safety_goal: String,
    ) -> Result<EntityId, ApiError> {
        self.with(|d| d.edit(&plan, |p| p.add_safety_item(&danger_statement, &safety_goal)))
    }
}
