//! The device: the one entry point a host (phone app, desktop CLI) talks to.
//!
//! It unlocks the store with the host's [`KeyStore`], keeps open plans in memory and turns
//! every typed edit into one durable transaction before returning. A call that returned `Ok`
//! is on disk: killing the process at any later instant loses nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use automerge::ReadDoc;
use serde::Serialize;

use crate::audit::{Access, AuditAction, AuditState};
use crate::clock::{Clock, ClockReading, DeviceClock, SystemClock};
use crate::error::CoreError;
use crate::identity::DeviceIdentity;
use crate::ids::{DeviceId, PlanId};
use crate::keystore::{KeyStore, KeyStoreError};
use crate::lease::{self, LeaseRecord};
use crate::plan::{self, Compartment, Conflict, Plan, PlanError, PlanView};
use crate::store::{OpenStoreError, PlanHeader, Store, StoreError};
use crate::transfer::{self, ImportReport};
use crate::wipe::{self, OpenOptions, WipeReason};

/// What reads computed from an open plan, kept until the plan changes.
#[derive(Debug, Default)]
struct ReadCache {
    views: HashMap<PlanId, PlanView>,
    conflicts: HashMap<PlanId, Vec<Conflict>>,
    /// The organisation of each plan's regisseur by its verified chain, for the access log's
    /// `on_behalf_of` (`None`: no chain held). Dropped with the view when the chain changes.
    regisseur_orgs: HashMap<PlanId, Option<String>>,
}

impl ReadCache {
    fn remove(&mut self, plan: &PlanId) {
        self.views.remove(plan);
        self.conflicts.remove(plan);
        self.regisseur_orgs.remove(plan);
    }

    fn clear(&mut self) {
        self.views.clear();
        self.conflicts.clear();
        self.regisseur_orgs.clear();
    }
}

/// A plan in the device's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    pub id: PlanId,
    pub family: String,
}

/// One row of the plan list: a plan, or a damaged entry that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PlanListEntry {
    Ok(PlanSummary),
    Damaged { detail: String },
}

/// A device's core.
pub struct Device {
    /// The data directory: the store and the small plaintext files of `wipe`.
    dir: PathBuf,
    store: Store,
    identity: DeviceIdentity,
    /// The host's clock anchored to the server's and never running back ([`crate::clock`]):
    /// what edits are stamped with and the lease is measured by.
    clock: Arc<DeviceClock>,
    open_plans: HashMap<PlanId, Plan>,
    /// Materialised views and conflicts of open plans, dropped whenever the plan changes: a
    /// screen (or the agenda across every plan) that re-reads an unchanged plan gets it
    /// without walking the documents again.
    views: ReadCache,
    /// The sync session token and its expiry (ms). In memory only: a token is a bearer
    /// credential and must not outlive the process on disk.
    pub(crate) session: Option<(String, i64)>,
    /// The host's keystore, when the host handed it over ([`Device::with_keystore`]): the
    /// offline lease re-binds the data key with it, and a wipe destroys its key.
    keystore: Option<Arc<dyn KeyStore>>,
    /// The lease as read at open and as renewed since.
    lease: LeaseRecord,
    /// Set once the device is wiped (its id, which the identity no longer gives).
    wiped: Option<DeviceId>,
    /// The access log's head and the entry point being served ([`crate::audit`]).
    audit: AuditState,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.identity.device_id())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

fn map_open(e: OpenStoreError) -> CoreError {
    match e {
        OpenStoreError::KeyStore(k) => CoreError::KeyStore(k),
        OpenStoreError::Store(s) => CoreError::Store(s),
        OpenStoreError::Missing(_) => CoreError::NotInitialised,
        OpenStoreError::Exists(_) => CoreError::AlreadyInitialised,
        OpenStoreError::Wiped(_) => CoreError::Wiped,
    }
}

fn ensure_dir(dir: &Path) -> Result<(), CoreError> {
    let io = |source| CoreError::Io { path: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

impl Device {
    /// Whether `dir` holds a device, without unlocking anything (so hosts can offer `init`
    /// instead of asking for a passphrase).
    pub fn exists(dir: &Path) -> bool {
        dir.join(crate::store::DB_FILE).exists()
    }

    fn assemble(dir: &Path, store: Store, identity: DeviceIdentity) -> Result<Device, CoreError> {
        let lease = lease::load(&store)?;
        let audit = AuditState::load(&store)?;
        let clock = Arc::new(DeviceClock::new(Arc::new(SystemClock), lease.clock_reading()));
        Ok(Device {
            dir: dir.to_path_buf(),
            store,
            identity,
            clock,
            open_plans: HashMap::new(),
            views: ReadCache::default(),
            session: None,
            keystore: None,
            lease,
            wiped: None,
            audit,
        })
    }

    /// Creates a device in `dir`: a new data key wrapped by `keystore`, new identity keys and
    /// so a new device id, which an administrator approves like any new device. Refused with
    /// [`CoreError::AlreadyInitialised`] when `dir` holds a live device.
    ///
    /// In a directory whose device was wiped, `init` starts this new device in its place (the
    /// old one's data is gone for good): it completes an interrupted wipe, destroys the
    /// platform key if the wipe could not, and keeps the wipe's unsent report for
    /// [`Device::send_previous_wipe_reports`] (`wipe/previous.rs`). [`Device::open`] and
    /// [`Device::open_or_init`] keep answering [`CoreError::Wiped`] until then, so that a host
    /// always learns of a wipe before it offers to set the device up again.
    pub fn init(dir: &Path, keystore: &dyn KeyStore) -> Result<Device, CoreError> {
        wipe::make_room_for_new_device(dir, keystore)?;
        ensure_dir(dir)?;
        let (store, identity) = Store::create(dir, keystore).map_err(map_open)?;
        Device::assemble(dir, store, identity)
    }

    /// Opens the device in `dir`, with the default [`OpenOptions`].
    pub fn open(dir: &Path, keystore: &dyn KeyStore) -> Result<Device, CoreError> {
        Device::open_with(dir, keystore, &OpenOptions::default())
    }

    /// Opens the device in `dir`. A wrong passphrase or keystore key is counted:
    /// [`CoreError::WrongUnlock`] says how many attempts are left, and the attempt that
    /// reaches `options.max_failed_unlocks` wipes the device and returns
    /// [`CoreError::Wiped`]. A successful open resets the count. A platform key the keystore
    /// reports gone for good ([`KeyStoreError::Invalidated`]) is not counted: nothing can open
    /// the data any more, so the device is wiped ([`WipeReason::KeyInvalidated`]) and the
    /// host hears [`CoreError::Wiped`], after which [`Device::init`] starts a new device.
    pub fn open_with(
        dir: &Path,
        keystore: &dyn KeyStore,
        options: &OpenOptions,
    ) -> Result<Device, CoreError> {
        wipe::refuse_if_wiped(dir, keystore)?;
        match Store::open(dir, keystore) {
            Ok((store, identity)) => {
                wipe::reset_failed_unlocks(dir)?;
                let mut device = Device::assemble(dir, store, identity)?;
                // Plans past their grace period go before anything reads them.
                device.retire_expired_plans()?;
                Ok(device)
            }
            Err(OpenStoreError::KeyStore(KeyStoreError::WrongKey)) => {
                Err(wipe::record_failed_unlock(dir, keystore, options))
            }
            Err(OpenStoreError::KeyStore(KeyStoreError::Invalidated(_))) => {
                Err(match wipe::wipe_unopened(dir, WipeReason::KeyInvalidated, keystore) {
                    Ok(()) => CoreError::Wiped,
                    Err(e) => e,
                })
            }
            Err(OpenStoreError::Wiped(record)) => Err(wipe::complete_interrupted(dir, &record, keystore)),
            Err(e) => Err(map_open(e)),
        }
    }

    /// Opens the device in `dir`, or creates one when there is none. A wiped device is not
    /// "none": this answers [`CoreError::Wiped`], and [`Device::init`] starts a new device.
    pub fn open_or_init(dir: &Path, keystore: &dyn KeyStore) -> Result<Device, CoreError> {
        match Device::open(dir, keystore) {
            Err(CoreError::NotInitialised) => Device::init(dir, keystore),
            other => other,
        }
    }

    /// Replaces the host clock (tests, simulations). The device clock starts at the new host
    /// clock's time, or at the reading the lease persisted if that is later: a clock set back
    /// does not bring an expired lease back. Plans opened afterwards use it.
    pub fn with_clock(mut self, host: Arc<dyn Clock>) -> Self {
        let host_ms = host.now_ms();
        let device_ms =
            self.lease.clock_reading().map_or(host_ms, |persisted| persisted.device_ms.max(host_ms));
        let reading = DeviceClock::reading_at(host.as_ref(), device_ms);
        self.clock = Arc::new(DeviceClock::new(host, Some(reading)));
        self.open_plans.clear();
        self.views.clear();
        self
    }

    /// Hands the device the host's keystore, for the calls that need it after opening: the
    /// offline lease re-binds the data key with [`KeyStore::bind_to_lease`], and a wipe calls
    /// [`KeyStore::destroy`]. Without it neither happens (the passphrase keystore needs
    /// neither), and a wipe leaves the platform key to the next `open`/`init`, which destroys it.
    pub fn with_keystore(mut self, keystore: Arc<dyn KeyStore>) -> Self {
        self.keystore = Some(keystore);
        self
    }

    pub fn device_id(&self) -> DeviceId {
        self.wiped.unwrap_or_else(|| self.identity.device_id())
    }

    /// `Err(Wiped)` once this device has been wiped. Every public operation starts with it;
    /// the sync layer's entry points too.
    pub(crate) fn ensure_not_wiped(&self) -> Result<(), CoreError> {
        match self.wiped {
            Some(_) => Err(CoreError::Wiped),
            None => Ok(()),
        }
    }

    /// What a plan-content operation checks first: not wiped, and the offline lease not run
    /// out. Internal paths the sync layer uses to merge (`loaded_plan`, `take_plan_or_new`,
    /// [`Device::plan_entries`]) do not check the lease: a sync is what unlocks the device.
    pub(crate) fn plan_gate(&mut self) -> Result<(), CoreError> {
        self.ensure_not_wiped()?;
        self.check_lease_mut()
    }

    /// The directory the device lives in.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn keystore(&self) -> Option<Arc<dyn KeyStore>> {
        self.keystore.clone()
    }

    pub(crate) fn lease_record(&self) -> LeaseRecord {
        self.lease
    }

    pub(crate) fn set_lease_record(&mut self, record: LeaseRecord) {
        self.lease = record;
    }

    /// The device clock and the host clock now, for persisting.
    pub(crate) fn clock_reading(&self) -> ClockReading {
        self.clock.reading()
    }

    /// Sets the device clock to the server's time (a session's answer).
    pub(crate) fn anchor_clock(&self, server_ms: i64) {
        self.clock.anchor(server_ms);
    }

    /// After the store was shredded: drops every plaintext and private key this process holds
    /// (plans, views, the session token, the identity) and marks the device wiped.
    pub(crate) fn forget_everything(&mut self) {
        self.wiped = Some(self.identity.device_id());
        self.open_plans.clear();
        self.views.clear();
        self.session = None;
        self.audit = AuditState::default();
        // The real keys are zeroised as they drop; the stand-in only keeps the type whole.
        self.identity = DeviceIdentity::generate();
    }

    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    pub fn store_path(&self) -> PathBuf {
        self.store.path().to_path_buf()
    }

    /// Re-wraps the data key for a new passphrase or keystore key; no plan data is rewritten.
    pub fn change_keystore(&mut self, current: &dyn KeyStore, new: &dyn KeyStore) -> Result<(), CoreError> {
        self.ensure_not_wiped()?;
        self.store.rewrap(current, new).map_err(map_open)
    }

    /// Creates a plan with the default (ZRM-2017) life domains.
    pub fn create_plan(&mut self, family: &str) -> Result<PlanId, CoreError> {
        self.create_plan_with_domains(family, None)
    }

    /// Creates a plan; `domains` replaces the default domain set when given.
    pub fn create_plan_with_domains(
        &mut self,
        family: &str,
        domains: Option<Vec<String>>,
    ) -> Result<PlanId, CoreError> {
        self.audited(Access::of(AuditAction::Create), |d| d.create_plan_recorded(family, domains))
    }

    /// [`Device::create_plan_with_domains`]; its `Create` event is in the plan's first
    /// transaction.
    fn create_plan_recorded(
        &mut self,
        family: &str,
        domains: Option<Vec<String>>,
    ) -> Result<PlanId, CoreError> {
        self.plan_gate()?;
        let id = PlanId::random();
        let mut plan = Plan::create(id, self.device_id(), family, domains, self.clock.clone())?;
        // The creator lays out and keys the compartments its role may read (all of them on a
        // device that has no sharing policy yet); the first device of a role that may read
        // another compartment does that one (see `sync`).
        let held = self.compartments_own_role_reads()?.unwrap_or(Compartment::ALL.to_vec());
        for compartment in Compartment::ALL {
            if !held.contains(&compartment) {
                plan.drop_compartment(compartment);
            }
        }
        let changes = plan.changes_since(&Default::default());
        let header = PlanHeader { plan: id, family: plan.view()?.family };
        // The sync layer hands the keys to the other participants' devices, sealed to each.
        let keys: Vec<(Compartment, crate::crypto::SecretKey)> =
            held.into_iter().map(|c| (c, crate::crypto::SecretKey::generate())).collect();
        let prepared = self.prepare_events(&[Access::on(AuditAction::Create, id)])?;
        self.store.write(|w| {
            w.append_changes(&plan, Some(&header), &changes, true)?;
            for (compartment, key) in &keys {
                w.put_doc_key(id, *compartment, crate::sync::FIRST_EPOCH, key.as_bytes())?;
            }
            crate::audit::write_prepared(w, &prepared)
        })?;
        self.audit_committed(prepared);
        self.open_plans.insert(id, plan);
        Ok(id)
    }

    /// Every plan on the device. A damaged entry is listed as such; the others still open.
    /// Families' names are plan content: locked like the plans once the lease ran out.
    pub fn list_plans(&self) -> Result<Vec<PlanListEntry>, CoreError> {
        self.ensure_not_wiped()?;
        self.check_lease()?;
        self.plan_entries()
    }

    /// [`Device::list_plans`] without the lease check, for the sync layer.
    pub(crate) fn plan_entries(&self) -> Result<Vec<PlanListEntry>, CoreError> {
        self.ensure_not_wiped()?;
        let mut out: Vec<PlanListEntry> = self
            .store
            .list_plans()?
            .into_iter()
            .map(|entry| match entry {
                Ok(h) => PlanListEntry::Ok(PlanSummary { id: h.plan, family: h.family }),
                Err(e) => PlanListEntry::Damaged { detail: e.to_string() },
            })
            .collect();
        out.sort_by(|a, b| match (a, b) {
            (PlanListEntry::Ok(a), PlanListEntry::Ok(b)) => (&a.family, a.id).cmp(&(&b.family, b.id)),
            (PlanListEntry::Ok(_), _) => std::cmp::Ordering::Less,
            (_, PlanListEntry::Ok(_)) => std::cmp::Ordering::Greater,
            (PlanListEntry::Damaged { detail: a }, PlanListEntry::Damaged { detail: b }) => a.cmp(b),
        });
        Ok(out)
    }

    /// The plan whose id is `text` or starts with it (at least 4 characters), as in git.
    pub fn find_plan(&self, text: &str) -> Result<PlanId, CoreError> {
        self.ensure_not_wiped()?;
        self.check_lease()?;
        if let Ok(id) = text.parse::<PlanId>() {
            return Ok(id);
        }
        let text: String = text.trim().to_ascii_lowercase().chars().take(40).collect();
        if text.chars().count() < 4 {
            return Err(CoreError::PlanPrefixTooShort(text));
        }
        let matches: Vec<PlanId> = self
            .list_plans()?
            .into_iter()
            .filter_map(|e| match e {
                PlanListEntry::Ok(s) if s.id.to_string().starts_with(&text) => Some(s.id),
                _ => None,
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(CoreError::NoMatchingPlan(text)),
            _ => Err(CoreError::AmbiguousPlan(text)),
        }
    }

    fn plan(&mut self, id: PlanId) -> Result<&mut Plan, CoreError> {
        self.ensure_not_wiped()?;
        if !self.open_plans.contains_key(&id) {
            if !self.store.has_plan(id)? {
                return Err(CoreError::UnknownPlan(id));
            }
            let stored = self.store.load_plan(id)?;
            let mut plan = Plan::from_documents(id, self.device_id(), stored.docs, self.clock.clone())
                .map_err(|e| StoreError::CorruptPlan { plan: id, what: e.to_string() })?;
            self.vouch_erasure(&mut plan)?;
            self.open_plans.insert(id, plan);
        }
        self.open_plans.get_mut(&id).ok_or(CoreError::UnknownPlan(id))
    }

    pub(crate) fn audit_state(&mut self) -> &mut AuditState {
        &mut self.audit
    }

    pub(crate) fn audit_state_ref(&self) -> &AuditState {
        &self.audit
    }

    /// The organisation of the plan's regisseur by its verified chain (`None` without one).
    pub(crate) fn regisseur_organisation(&mut self, plan: &PlanId) -> Result<Option<String>, CoreError> {
        if let Some(known) = self.views.regisseur_orgs.get(plan) {
            return Ok(known.clone());
        }
        let organisation = match self.views.views.get(plan) {
            Some(view) => view.membership.as_ref().map(|m| m.regisseur.organisation.clone()),
            None => self.roster(plan)?.and_then(|roster| {
                let state = roster.state();
                state.participant(state.regisseur).map(|p| p.organisation.clone())
            }),
        };
        self.views.regisseur_orgs.insert(*plan, organisation.clone());
        Ok(organisation)
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A plan already in memory, without loading it.
    pub(crate) fn open_plan_ref(&self, id: &PlanId) -> Option<&Plan> {
        self.open_plans.get(id)
    }

    pub(crate) fn loaded_plan(&mut self, id: PlanId) -> Result<&Plan, CoreError> {
        Ok(self.plan(id)?)
    }

    /// Takes a plan out of memory to change it (an empty one when the device does not hold
    /// it yet); [`Device::put_back_plan`] returns it once its changes are durable.
    pub(crate) fn take_plan_or_new(&mut self, id: PlanId) -> Result<Plan, CoreError> {
        self.ensure_not_wiped()?;
        self.views.remove(&id);
        if self.store.has_plan(id)? {
            self.plan(id)?;
            return self.open_plans.remove(&id).ok_or(CoreError::UnknownPlan(id));
        }
        Ok(Plan::from_documents(id, self.device_id(), Vec::new(), self.clock.clone())?)
    }

    /// Drops a plan's cached read model: what it shows changed outside its documents (its
    /// membership chain).
    pub(crate) fn forget_view(&mut self, plan: &PlanId) {
        self.views.remove(plan);
    }

    pub(crate) fn put_back_plan(&mut self, plan: Plan) {
        self.views.remove(&plan.id());
        self.open_plans.insert(plan.id(), plan);
    }

    /// Loads a plan (if needed) so that later reads are instant.
    pub fn open_plan(&mut self, id: &PlanId) -> Result<(), CoreError> {
        self.plan_gate()?;
        self.plan(*id).map(|_| ())
    }

    /// Drops a plan from memory; the next access reads it from disk again.
    pub fn close_plan(&mut self, id: &PlanId) {
        self.open_plans.remove(id);
        self.views.remove(id);
    }

    /// Drops every cached read model: what it names people by has changed (a certificate
    /// arrived).
    pub(crate) fn forget_views(&mut self) {
        self.views.clear();
    }

    /// The plan's read model. Recorded in the access log (`Read`), also when it comes from
    /// the cache.
    pub fn read(&mut self, id: &PlanId) -> Result<PlanView, CoreError> {
        self.audited(Access::on(AuditAction::Read, *id), |d| d.view_of(id))
    }

    /// [`Device::read`] without an event of its own: for entry points that record their own.
    /// A plan not in memory is shown from its kept read model when that is current
    /// ([`crate::read_model`]); what the documents do not say is added here either way.
    pub(crate) fn view_of(&mut self, id: &PlanId) -> Result<PlanView, CoreError> {
        self.plan_gate()?;
        if let Some(view) = self.views.views.get(id) {
            return Ok(view.clone());
        }
        if self.open_plan_ref(id).is_none() && !self.store.has_plan(*id)? {
            return Err(CoreError::UnknownPlan(*id));
        }
        let mut view = self.documents_view(id)?;
        view.people = self.people_in(&view)?;
        view.membership = self.membership(id)?;
        if let Some(membership) = view.membership.as_mut() {
            view.escalation_level = membership.level.clone();
            self.fill_contacts(membership, &view.contacts)?;
        }
        crate::cycle::resolve_owners(&mut view);
        self.views.views.insert(*id, view.clone());
        Ok(view)
    }

    /// Registers that hold concurrent values, each value with who wrote it.
    pub fn conflicts(&mut self, id: &PlanId) -> Result<Vec<Conflict>, CoreError> {
        self.audited(Access::on(AuditAction::Read, *id).object("conflicts"), |d| d.conflicts_of(id))
    }

    fn conflicts_of(&mut self, id: &PlanId) -> Result<Vec<Conflict>, CoreError> {
        self.plan_gate()?;
        if let Some(conflicts) = self.views.conflicts.get(id) {
            return Ok(conflicts.clone());
        }
        let mut conflicts = self.plan(*id)?.conflicts()?;
        self.name_conflict_authors(&mut conflicts)?;
        self.views.conflicts.insert(*id, conflicts.clone());
        Ok(conflicts)
    }

    /// Runs a typed edit and makes it durable before returning.
    ///
    /// The edit's changes are appended (sealed) to the store in one transaction, with the
    /// access log's `Change` event of each compartment it changed ([`crate::audit`]). If
    /// anything fails, the in-memory plan is discarded so that memory never runs ahead of the
    /// disk, and no event of the edit exists.
    pub fn edit<T>(
        &mut self,
        id: &PlanId,
        f: impl FnOnce(&mut Plan) -> Result<T, PlanError>,
    ) -> Result<T, CoreError> {
        self.audited(Access::on(AuditAction::Change, *id), |d| d.edit_recorded(id, f))
    }

    fn edit_recorded<T>(
        &mut self,
        id: &PlanId,
        f: impl FnOnce(&mut Plan) -> Result<T, PlanError>,
    ) -> Result<T, CoreError> {
        self.plan_gate()?;
        self.refuse_if_closed(id)?;
        self.plan(*id)?;
        let plan = self.open_plans.get_mut(id).ok_or(CoreError::UnknownPlan(*id))?;
        let before = plan.heads();
        let family_before = family_of(plan);
        let result = f(plan);
        let changes = plan.changes_since(&before);
        if changes.is_empty() {
            return Ok(result?);
        }
        let family = family_of(plan);
        self.views.remove(id);
        let persisted = match &result {
            Ok(_) => {
                let header = (family != family_before)
                    .then(|| family.map(|family| PlanHeader { plan: *id, family }))
                    .flatten();
                self.persist_edit(id, header.as_ref(), &changes)
            }
            // A failed edit that still wrote something (a multi-step closure): drop it all.
            Err(_) => Ok(()),
        };
        if persisted.is_err() || result.is_err() {
            self.open_plans.remove(id);
        }
        persisted?;
        Ok(result?)
    }

    /// One durable transaction: an edit's changes and its events.
    fn persist_edit(
        &mut self,
        id: &PlanId,
        header: Option<&PlanHeader>,
        changes: &[(Compartment, Vec<Vec<u8>>)],
    ) -> Result<(), CoreError> {
        let changed: Vec<Compartment> = changes.iter().map(|(c, _)| *c).collect();
        let prepared = self.prepare_events(&self.edit_accesses(*id, &changed))?;
        let Device { store, open_plans, .. } = self;
        let plan = open_plans.get(id).ok_or(CoreError::UnknownPlan(*id))?;
        store.write(|w| {
            w.append_changes(plan, header, changes, true)?;
            crate::audit::write_prepared(w, &prepared)
        })?;
        self.audit_committed(prepared);
        Ok(())
    }

    /// Number of changes written here that await a push.
    pub fn pending_changes(&self) -> Result<u64, CoreError> {
        self.ensure_not_wiped()?;
        Ok(self.store.pending_outbox()?)
    }

    /// Bytes the store occupies on disk (database and WAL).
    pub fn disk_usage(&self) -> u64 {
        self.store.disk_usage()
    }

    /// Folds every document of a plan into a fresh snapshot now, and gives the space the
    /// folded rows took back to the file system.
    pub fn compact_plan(&mut self, id: &PlanId) -> Result<(), CoreError> {
        self.plan_gate()?;
        let held = self.plan(*id)?.held_compartments();
        for compartment in held {
            let plan = self.open_plans.get(id).ok_or(CoreError::UnknownPlan(*id))?;
            let doc = plan.doc(compartment)?;
            self.store.compact(*id, compartment, doc)?;
        }
        Ok(self.store.reclaim_space()?)
    }

    /// The whole plan (every held compartment) as a sealed transfer file.
    pub fn export_changes(&mut self, id: &PlanId, passphrase: &str) -> Result<Vec<u8>, CoreError> {
        self.audited(Access::on(AuditAction::Export, *id), |d| d.export_of(id, passphrase))
    }

    fn export_of(&mut self, id: &PlanId, passphrase: &str) -> Result<Vec<u8>, CoreError> {
        self.plan_gate()?;
        let plan = self.plan(*id)?;
        let docs = plan
            .held_compartments()
            .into_iter()
            .map(|c| Ok((c, plan.doc(c)?.save())))
            .collect::<Result<Vec<_>, PlanError>>()?;
        Ok(transfer::seal(*id, docs, passphrase)?)
    }

    /// Merges a transfer file into this device: the plan is created if new, and only changes
    /// not yet held are stored. The file is verified in full before anything is written.
    /// Recorded as `Import` of the plan, in the transaction that stores what it brought.
    pub fn import_changes(&mut self, file: &[u8], passphrase: &str) -> Result<ImportReport, CoreError> {
        self.audited(Access::of(AuditAction::Import), |d| d.import_recorded(file, passphrase))
    }

    fn import_recorded(&mut self, file: &[u8], passphrase: &str) -> Result<ImportReport, CoreError> {
        self.plan_gate()?;
        let contents = transfer::open(file, passphrase)?;
        let id = contents.plan;
        let known = self.store.has_plan(id)?;
        if known {
            self.refuse_if_closed(&id)?;
        }
        let mut incoming = Vec::new();
        for (compartment, saved) in contents.docs {
            let doc = plan::load_received(&saved, compartment, id)
                .map_err(|e| transfer::TransferError::Document { compartment, detail: e.to_string() })?;
            incoming.push((compartment, doc));
        }
        if !incoming.iter().any(|(c, _)| *c == Compartment::Basis) && !known {
            return Err(transfer::TransferError::MissingBasis.into());
        }
        // A basis from before a member's erasure would bring the erased history back.
        for (compartment, doc) in &incoming {
            if known && self.predates_erasure(&id, *compartment, doc.doc())? {
                return Err(transfer::TransferError::Document {
                    compartment: *compartment,
                    detail: "het stamt van vóór het wissen van persoonsgegevens uit dit plan".into(),
                }
                .into());
            }
        }
        let (mut merged, before) = if known {
            let plan = self.plan(id)?;
            let before = plan.heads();
            // Merge into copies first: a document that merges but no longer materialises
            // must not reach the plan in memory or on disk.
            let mut docs = Vec::new();
            for compartment in plan.held_compartments() {
                docs.push((compartment, plan.doc(compartment)?.clone()));
            }
            (Plan::from_documents(id, self.device_id(), docs, self.clock.clone())?, before)
        } else {
            (Plan::from_documents(id, self.device_id(), Vec::new(), self.clock.clone())?, Default::default())
        };
        for (compartment, doc) in incoming {
            merged
                .merge_received(compartment, doc)
                .map_err(|e| transfer::TransferError::Document { compartment, detail: e.to_string() })?;
        }
        let view = merged.view()?;
        let changes = merged.changes_since(&before);
        let report = ImportReport {
            plan: id,
            family: view.family.clone(),
            new_plan: !known,
            changes: changes.iter().map(|(_, c)| c.len()).sum(),
        };
        let prepared = self.prepare_events(&[Access::on(AuditAction::Import, id)])?;
        self.store.write(|w| {
            if !changes.is_empty() {
                let header = PlanHeader { plan: id, family: view.family };
                w.append_changes(&merged, Some(&header), &changes, false)?;
            }
            crate::audit::write_prepared(w, &prepared)
        })?;
        self.audit_committed(prepared);
        self.views.remove(&id);
        self.open_plans.insert(id, merged);
        Ok(report)
    }
}

fn family_of(plan: &Plan) -> Option<String> {
    let doc = plan.doc(Compartment::Basis).ok()?;
    match doc.get(automerge::ROOT, "family").ok()?? {
        (automerge::Value::Scalar(s), _) => s.as_str().map(str::to_owned),
        _ => None,
    }
}
