//! The device object a host holds: the core's [`eenplan_core::Device`] behind a mutex.
//!
//! The core's device takes `&mut self` (one writer, invariant 5), so every call locks it.
//! Calls that talk to the server (enrol, sync, sharing) are `async`: they run on a thread of
//! their own and the host awaits a oneshot, so a Kotlin coroutine or Swift task is suspended,
//! not blocked, and the library needs no async runtime. Local calls (edits, reads) are
//! synchronous and durable when they return; while a sync holds the device they wait for it,
//! so a phone app makes them off its main thread (e.g. `Dispatchers.IO`).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use eenplan_core::CoreError;
use eenplan_core::Device as CoreDevice;
use eenplan_core::ids::{EntityId, PlanId};
use eenplan_core::plan::{
    ActionStatus, ActionUpdate, Compartment, Conflict, GoalStatus, NewAction, NewGoal, NewMember, NoteKind,
    Phase, PlanView, Role,
};
use eenplan_core::sync::{DeviceStatus, Enrolment};
use futures_channel::oneshot;

use crate::error::ApiError;
use crate::keystore::{HostKeyStore, KeyStore};
use crate::types::{PlanListEntry, Resolution, SyncSummary};

/// What the host hears without asking. Called on a background thread: post to the UI
/// thread from here.
#[uniffi::export(with_foreign)]
pub trait DeviceListener: Send + Sync {
    /// A sync changed these plans or brought them to this device: re-read them.
    fn plans_changed(&self, plan_ids: Vec<PlanId>);
    /// An administrator revoked this device: it can no longer sync. `wiped` says whether
    /// the device has destroyed its key material, so that nothing on it can be read any more.
    fn device_revoked(&self, wiped: bool);
}

/// One eenplan device: its encrypted store in a directory of the app's private storage, its
/// keys, and its plans.
#[derive(uniffi::Object)]
pub struct Device {
    core: Arc<Mutex<CoreDevice>>,
    listener: Mutex<Option<Arc<dyn DeviceListener>>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("core", &self.core).finish_non_exhaustive()
    }
}

/// Whether `data_dir` holds a device, without unlocking anything (to offer set-up instead).
#[uniffi::export]
pub fn device_exists(data_dir: String) -> bool {
    CoreDevice::exists(Path::new(&data_dir))
}

/// A poisoned lock means a call panicked halfway through; the device's memory may not match
/// its disk any more, so every later call refuses until the host opens the device again.
fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, ApiError> {
    mutex.lock().map_err(|_| {
        ApiError::Internal("an earlier call failed inside eenplan; open the device again".into())
    })
}

impl Device {
    fn new(core: CoreDevice) -> Arc<Device> {
        Arc::new(Device { core: Arc::new(Mutex::new(core)), listener: Mutex::new(None) })
    }

    /// Runs one core call on the locked device.
    fn with<T>(&self, call: impl FnOnce(&mut CoreDevice) -> Result<T, CoreError>) -> Result<T, ApiError> {
        Ok(call(&mut *lock(&self.core)?)?)
    }

    /// Runs a blocking core call (network) on its own thread and resolves with its result.
    /// The listener hears of it after the device is unlocked: `announce` on success, and a
    /// revocation whatever the call was. A host that stops awaiting (a cancelled coroutine)
    /// does not stop the call: what it wrote is durable all the same.
    async fn in_background<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut CoreDevice) -> Result<T, CoreError> + Send + 'static,
        announce: fn(&dyn DeviceListener, &T),
    ) -> Result<T, ApiError> {
        let core = Arc::clone(&self.core);
        let listener = lock(&self.listener)?.clone();
        let (answer, answered) = oneshot::channel();
        std::thread::Builder::new()
            .name("eenplan-network".into())
            .spawn(move || {
                let result = lock(&core).and_then(|mut device| Ok(call(&mut device)?));
                if let Some(listener) = listener {
                    match &result {
                        Ok(value) => announce(listener.as_ref(), value),
                        Err(ApiError::Revoked(_)) => listener.device_revoked(false),
                        Err(ApiError::Wiped(_)) => listener.device_revoked(true),
                        Err(_) => {}
                    }
                }
                // Err only when the host stopped awaiting; there is nobody left to tell.
                let _ = answer.send(result);
            })
            .map_err(|e| ApiError::Internal(format!("cannot start a thread: {e}")))?;
        answered
            .await
            .unwrap_or_else(|_| Err(ApiError::Internal("a background call ended without an answer".into())))
    }
}

fn quiet<T>(_: &dyn DeviceListener, _: &T) {}

#[uniffi::export]
impl Device {
    /// Creates a device in `data_dir`: new keys and a new encrypted store whose data key
    /// `keystore` wraps. Fails if the directory already holds one.
    #[uniffi::constructor]
    pub fn init(data_dir: String, keystore: Arc<dyn KeyStore>) -> Result<Arc<Device>, ApiError> {
        let host = Arc::new(HostKeyStore(keystore));
        Ok(Device::new(CoreDevice::init(Path::new(&data_dir), host.as_ref())?.with_keystore(host)))
    }

    /// Opens the device in `data_dir`, unlocking its store with `keystore`.
    #[uniffi::constructor]
    pub fn open(data_dir: String, keystore: Arc<dyn KeyStore>) -> Result<Arc<Device>, ApiError> {
        let host = Arc::new(HostKeyStore(keystore));
        Ok(Device::new(CoreDevice::open(Path::new(&data_dir), host.as_ref())?.with_keystore(host)))
    }

    /// Opens the device in `data_dir`, creating it on first start.
    #[uniffi::constructor]
    pub fn open_or_init(data_dir: String, keystore: Arc<dyn KeyStore>) -> Result<Arc<Device>, ApiError> {
        let host = Arc::new(HostKeyStore(keystore));
        Ok(Device::new(CoreDevice::open_or_init(Path::new(&data_dir), host.as_ref())?.with_keystore(host)))
    }

    /// This device's id (hex), as administrators see it.
    pub fn device_id(&self) -> Result<String, ApiError> {
        self.with(|d| Ok(d.device_id().to_string()))
    }

    /// Sets (or with `None` removes) the listener for synced changes and revocation.
    pub fn set_listener(&self, listener: Option<Arc<dyn DeviceListener>>) -> Result<(), ApiError> {
        *lock(&self.listener)? = listener;
        Ok(())
    }

    /// Enrolment, user, organisation and role, and the count of changes awaiting a push.
    pub fn status(&self) -> Result<DeviceStatus, ApiError> {
        self.with(|d| d.status())
    }

    /// Changes made here that the server has not acknowledged yet (the offline indicator).
    pub fn pending_changes(&self) -> Result<u64, ApiError> {
        self.with(|d| d.pending_changes())
    }

    /// Claims an enrolment code from the administrator at `server` (an https:// URL). The
    /// device then waits for approval; the first sync after it picks up its certificate.
    pub async fn enrol(&self, server: String, code: String) -> Result<Enrolment, ApiError> {
        self.in_background(move |d| d.enrol(&server, &code), quiet).await
    }

    /// Pushes what this device wrote and pulls what it may read, in one round trip (usually).
    /// The listener hears which plans changed.
    pub async fn sync(&self) -> Result<SyncSummary, ApiError> {
        self.in_background(
            |d| d.sync().map(SyncSummary::from),
            |listener, summary: &SyncSummary| {
                if !summary.plans_updated.is_empty() {
                    listener.plans_changed(summary.plans_updated.clone());
                }
            },
        )
        .await
    }

    /// Gives another user (by name) a part in the plan with `role`; their devices get the
    /// plan at their next sync after a device holding it has synced.
    pub async fn share_plan(&self, plan: PlanId, user: String, role: Role) -> Result<(), ApiError> {
        self.in_background(move |d| d.add_participant(&plan, &user, role.as_str()).map(|_| ()), quiet).await
    }

    /// A new plan for the family, with the default (ZRM-2017) life domains.
    pub fn create_plan(&self, family: String) -> Result<PlanId, ApiError> {
        self.with(|d| d.create_plan(&family))
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

    /// Fields that hold concurrent values, for the regisseur to settle.
    pub fn conflicts(&self, plan: PlanId) -> Result<Vec<Conflict>, ApiError> {
        self.with(|d| d.conflicts(&plan))
    }

    /// Settles a conflict (named by [`Conflict::id`]) with one of its values or a new one.
    pub fn settle_conflict(
        &self,
        plan: PlanId,
        conflict: String,
        resolution: Resolution,
    ) -> Result<(), ApiError> {
        self.with(|d| d.edit(&plan, |p| p.resolve_conflict(&conflict, resolution.into())))
    }

    pub fn set_family_name(&self, plan: PlanId, name: String) -> Result<(), ApiError> {
        self.with(|d| d.edit(&plan, |p| p.set_family_name(&name)))
    }

    pub fn set_phase(&self, plan: PlanId, phase: Phase) -> Result<(), ApiError> {
        self.with(|d| d.edit(&plan, |p| p.set_phase(phase)))
    }

    pub fn add_member(&self, plan: PlanId, member: NewMember) -> Result<EntityId, ApiError> {
        self.with(|d| d.edit(&plan, |p| p.add_member(member)))
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

    pub fn set_action_status(
        &self,
        plan: PlanId,
        action: EntityId,
        status: ActionStatus,
    ) -> Result<(), ApiError> {
        let update = ActionUpdate { status: Some(status), ..ActionUpdate::default() };
        self.with(|d| d.edit(&plan, |p| p.update_action(action, update)))
    }

    /// Sets the action's due date (YYYY-MM-DD), or clears it with `None`.
    pub fn set_action_due(
        &self,
        plan: PlanId,
        action: EntityId,
        due: Option<String>,
    ) -> Result<(), ApiError> {
        let update = ActionUpdate { due: Some(due), ..ActionUpdate::default() };
        self.with(|d| d.edit(&plan, |p| p.update_action(action, update)))
    }

    pub fn set_action_title(&self, plan: PlanId, action: EntityId, title: String) -> Result<(), ApiError> {
        let update = ActionUpdate { title: Some(title), ..ActionUpdate::default() };
        self.with(|d| d.edit(&plan, |p| p.update_action(action, update)))
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
    /// same note at the same time merge.
    pub fn edit_note(
        &self,
        plan: PlanId,
        compartment: Compartment,
        note: EntityId,
        position: u32,
        delete: u32,
        insert: String,
    ) -> Result<(), ApiError> {
        let (position, delete) = (widen(position), widen(delete));
        self.with(|d| d.edit(&plan, |p| p.edit_note_text_utf16(compartment, note, position, delete, &insert)))
    }
}

/// A u32 from the host as an index; past `usize` (not on any platform eenplan runs on) it
/// saturates, which the core refuses as beyond the text.
fn widen(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
