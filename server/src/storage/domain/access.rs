//! What a user may do and read, remembered per user while nothing it depends on changes.
//!
//! Every sync that uploads something to check reads the user's access first
//! ([`Storage::user_access`]): the user and organisation, the policy, the levels of the
//! user's plans and every document the user reads. On PostgreSQL that read was a sixth of
//! the database's CPU per push (`load_bench` profile, 2026-12-06: 0.20 ms of 1.18 ms), while
//! its answer is almost always the one of the push before. Every sync answer read most of
//! it again, with the grant positions, the documents without a key and the rotations.
//!
//! The part that does not name the pushed documents ([`AccessCore`]) depends on the user's
//! participations with their grant positions, the levels of their plans, the user's role,
//! the commitments and queued rotations of the plans' documents, whether a plan has a chain,
//! the policy and its access rows. Every change of all but the last two bumps the user's
//! key-share version in the same transaction (the schema's triggers,
//! [`ReadRows::key_share_version`]; SQLite's migrations 18 and 19, PostgreSQL's 5 and 7); the
//! policy's access rows change only with the policy's version, which grows with every new
//! policy. A core read in one snapshot together with both versions (the [`AccessStamp`]) is
//! therefore exact for every later read that finds the same two versions: such a read asks
//! only for the stamp and the pushed documents' epochs ([`ReadRows::access_stamp`], one small
//! statement where the whole access is a large one), and the core is taken from here. The
//! user's name and organisation do not change once stored (no write path changes them); a
//! path that did would have to bump the version.
//!
//! A sync answer takes the readable documents with their grant positions, the documents
//! without a key, the rotations asked for and the policy from the same core ([`core_in`]):
//! it reads the stamp with the facts that change with every sync ([`ReadRows::sync_facts`]),
//! so a core served from here costs it no read at all. On PostgreSQL the answer's facts with
//! those reads cost 0.35–1.45 ms per execution, without them 0.10–0.16 ms.
//!
//! The triggers find the users a plan's change concerns through the plan's participants;
//! that is complete because write transactions run one after another (the log head's lock on
//! PostgreSQL, the single writer of SQLite), so no participant is added beside the change
//! unseen.
//!
//! A version only grows, so a core from an older read, stored after a newer one, is never
//! served for the newer state: its stamp differs. Several server processes each keep their
//! own; the versions come from the shared database. A database that loses committed
//! transactions under running servers (a standby promoted while behind, a restore from a
//! backup) can reach a version again with other rows: a core is therefore served for at
//! most [`MAX_AGE`] after its read, both caches are emptied when a PostgreSQL connection
//! breaks or a new one opens (a failover breaks every one), and the README tells operators to
//! restart the servers after a failover or a restore.
//!
//! [`Storage::user_access`]: crate::storage::Storage::user_access
//! [`ReadRows::key_share_version`]: crate::storage::backend::ReadRows::key_share_version
//! [`ReadRows::access_stamp`]: crate::storage::backend::ReadRows::access_stamp
//! [`ReadRows::sync_facts`]: crate::storage::backend::ReadRows::sync_facts

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use eenplan_protocol::DocumentId;

use super::session_reads::SessionAsk;
use super::tally::Tally;
use crate::storage::backend::{AccessRead, Backend, ReadRows, SessionRead, StampRead, read_statement};
use crate::storage::{
    DeviceId, PlanId, PolicyRecord, Result, SessionStamp, StorageError, SyncSession, User, UserAccess, UserId,
};

/// The most users remembered; a region has a few thousand. Only authenticated devices reach
/// the cache, and when it is full it starts again empty, so no peer can grow it without end.
/// The policy is shared by every core read under its version, so a core holds about 40
/// bytes per readable document, 50 per plan, and 20 per document without a key or with a
/// rotation waiting.
const MAX_USERS: usize = 8_192;

/// How long a core is served after the read that brought it, at most: the bound on what a
/// version reached again after lost commits could serve (see the module docs). A device
/// that pushes every few seconds then reads its core once a minute.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(60);

/// Whether what was read at `read_at` may still be served at `now` ([`MAX_AGE`]).
pub(super) fn young(read_at: Instant, now: Instant) -> bool {
    now.saturating_duration_since(read_at) < MAX_AGE
}

/// What a core was read under: the user's key-share version and the policy's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AccessStamp {
    pub key_shares: i64,
    pub policy: Option<u32>,
}

/// The part of a user's access that holds while its [`AccessStamp`] stands: what a push's
/// checks read ([`UserAccess`]) and what a sync answer reads of the user beside the log
/// ([`super::answer`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccessCore {
    pub user: User,
    pub organisation: String,
    pub policy: Option<Arc<PolicyRecord>>,
    pub plan_levels: Vec<(PlanId, String)>,
    /// [`ReadRows::readable`]: each document the user reads, with its grant position.
    pub readable: Vec<(DocumentId, u64)>,
    /// [`ReadRows::unminted_documents`].
    pub unminted: Vec<DocumentId>,
    /// [`ReadRows::chartered_rotations_for`], each with its [`ReadRows::current_epoch`].
    pub rotations: Vec<(DocumentId, u32)>,
}

/// A remembered core: the stamp it was read under, and when.
type Kept = (AccessStamp, Instant, Arc<AccessCore>);

/// The cores of one server process, by user, and the policy they share.
#[derive(Debug, Default)]
pub(crate) struct AccessCache {
    cores: Mutex<HashMap<UserId, Kept>>,
    policy: Mutex<Option<Arc<PolicyRecord>>>,
    tally: Tally,
}

impl AccessCache {
    pub(crate) fn new() -> AccessCache {
        AccessCache::default()
    }

    /// The core of `user` and its stamp, unless it is older than [`MAX_AGE`] at `now`.
    fn get(&self, user: UserId, now: Instant) -> Option<(AccessStamp, Arc<AccessCore>)> {
        let cores = self.cores.lock().unwrap_or_else(PoisonError::into_inner);
        cores
            .get(&user)
            .filter(|(_, read_at, _)| young(*read_at, now))
            .map(|(stamp, _, core)| (*stamp, Arc::clone(core)))
    }

    /// The core of `user` whatever its stamp and age: a guess of what the user reads, for
    /// reads asked for ahead (`domain::answer`), never served as the user's access. With it,
    /// whether it is young enough at `now` to be served if its stamp still holds.
    pub(super) fn remembered_core(&self, user: UserId, now: Instant) -> Option<(Arc<AccessCore>, bool)> {
        let cores = self.cores.lock().unwrap_or_else(PoisonError::into_inner);
        cores.get(&user).map(|(_, read_at, core)| (Arc::clone(core), young(*read_at, now)))
    }

    fn put(&self, user: UserId, stamp: AccessStamp, read_at: Instant, core: Arc<AccessCore>) {
        let mut cores = self.cores.lock().unwrap_or_else(PoisonError::into_inner);
        if cores.len() >= MAX_USERS && !cores.contains_key(&user) {
            cores.clear();
        }
        cores.insert(user, (stamp, read_at, core));
    }

    /// Keeps `core`, read at `read_at` under `stamp`, with the policy shared, and returns it.
    fn keep(
        &self,
        user: UserId,
        stamp: AccessStamp,
        read_at: Instant,
        mut core: AccessCore,
    ) -> Arc<AccessCore> {
        core.policy = core.policy.map(|policy| self.shared(policy));
        let core = Arc::new(core);
        self.put(user, stamp, read_at, Arc::clone(&core));
        core
    }

    /// `read`, or the equal policy kept already: one copy of the signed policy for all.
    fn shared(&self, read: Arc<PolicyRecord>) -> Arc<PolicyRecord> {
        let mut kept = self.policy.lock().unwrap_or_else(PoisonError::into_inner);
        match kept.as_ref() {
            Some(policy) if **policy == *read => Arc::clone(policy),
            _ => {
                *kept = Some(Arc::clone(&read));
                read
            }
        }
    }

    fn forget(&self, user: UserId) {
        self.cores.lock().unwrap_or_else(PoisonError::into_inner).remove(&user);
    }

    /// How often a core was served, and how often the access was read again.
    pub(crate) fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Forgets every core: the database may no longer be the one they were read from.
    pub(crate) fn clear(&self) {
        self.cores.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// How many users have a core remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.cores.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// [`Storage::user_access`]: with the core the backend's cache holds for `user`, only the
/// stamp and the epochs are read, in one small statement, and the core is served while the
/// stamp is the one it was read under; otherwise (or when it moved) the whole access is
/// read, in one statement of its own whose core, stamp and epochs agree.
///
/// [`Storage::user_access`]: crate::storage::Storage::user_access
pub(super) fn user_access<B: Backend + ?Sized>(
    backend: &B,
    user: UserId,
    documents: &[DocumentId],
) -> Result<Option<UserAccess>> {
    super::known_compartments(documents.iter().copied())?;
    let now = Instant::now();
    if backend.accesses().get(user, now).is_none() {
        return read_whole(backend, user, documents, now);
    }
    let read = read_statement(backend, |rows| rows.access_stamp(user, documents))?;
    by_stamp(backend, user, read, documents, now)
}

/// [`Storage::sync_session`]: the device, its user and the user's stamp with the epochs
/// of `documents`, in one statement where a round trip costs; with the sessions of other
/// syncs waiting at the same time where the backend reads them in groups
/// ([`Backend::session_reads`]).
///
/// [`Storage::sync_session`]: crate::storage::Storage::sync_session
pub(super) fn sync_session<B: Backend + ?Sized>(
    backend: &B,
    device: DeviceId,
    documents: &[DocumentId],
) -> Result<Option<SyncSession>> {
    super::known_compartments(documents.iter().copied())?;
    match backend.session_reads() {
        // A sync naming many documents reads alone, so that it cannot slow a group.
        Some(reads) if documents.len() <= MAX_DOCUMENTS_GROUPED => reads.read(
            SessionAsk { device, documents: documents.to_vec() },
            |asks| sync_sessions(backend, asks),
            |ask| session_alone(backend, ask.device, &ask.documents),
        ),
        _ => session_alone(backend, device, documents),
    }
}

/// The most documents a sync's session read names and still joins a group
/// ([`super::SessionReads`]): a sync pushes to a few; one that names more (up to a request's
/// bound, a thousand and more) reads alone, so that a device in bad faith cannot make every
/// group it joins look up a thousand epochs.
const MAX_DOCUMENTS_GROUPED: usize = 64;

/// [`Storage::sync_sessions`]: each ask's session, in one statement where a round trip
/// costs.
///
/// [`Storage::sync_sessions`]: crate::storage::Storage::sync_sessions
pub(super) fn sync_sessions<B: Backend + ?Sized>(
    backend: &B,
    asks: &[SessionAsk],
) -> Result<Vec<Option<SyncSession>>> {
    super::known_compartments(asks.iter().flat_map(|ask| ask.documents.iter().copied()))?;
    let reads = read_statement(backend, |rows| rows.sync_sessions(asks))?;
    if reads.len() != asks.len() {
        return Err(StorageError::Backend(format!("{} sessions read for {} asks", reads.len(), asks.len())));
    }
    Ok(reads
        .into_iter()
        .zip(asks)
        .map(|(read, ask)| read.map(|read| session_of(read, &ask.documents)))
        .collect())
}

/// The session of `device` with the epochs of `documents`, in a statement of its own.
fn session_alone<B: Backend + ?Sized>(
    backend: &B,
    device: DeviceId,
    documents: &[DocumentId],
) -> Result<Option<SyncSession>> {
    let read = read_statement(backend, |rows| rows.sync_session(device, documents))?;
    Ok(read.map(|read| session_of(read, documents)))
}

fn session_of(SessionRead { device, user, stamp }: SessionRead, documents: &[DocumentId]) -> SyncSession {
    let stamp = SessionStamp { user: device.user, read: stamp, documents: documents.to_vec() };
    SyncSession { device, user, stamp }
}

/// [`Storage::session_access`]: [`user_access`] by the stamp read with the session, so that
/// a remembered core costs no read at all.
///
/// [`Storage::session_access`]: crate::storage::Storage::session_access
pub(super) fn session_access<B: Backend + ?Sized>(
    backend: &B,
    SessionStamp { user, read, documents }: &SessionStamp,
) -> Result<Option<UserAccess>> {
    by_stamp(backend, *user, read.clone(), documents, Instant::now())
}

/// The access of `user` by the stamp `read` with the epochs of `documents`: the remembered
/// core while it was read under that stamp, the whole access read now otherwise; `None`
/// (and the user forgotten) when the stamp found no such user.
fn by_stamp<B: Backend + ?Sized>(
    backend: &B,
    user: UserId,
    read: Option<StampRead>,
    documents: &[DocumentId],
    now: Instant,
) -> Result<Option<UserAccess>> {
    let cache = backend.accesses();
    let Some(StampRead { stamp, epochs }) = read else {
        cache.forget(user);
        return Ok(None);
    };
    if let Some((kept, core)) = cache.get(user, now)
        && kept == stamp
    {
        cache.tally.served();
        return Ok(Some(served(&core, epochs)));
    }
    read_whole(backend, user, documents, now)
}

/// The whole access of `user`, read in one statement of its own and remembered under the
/// stamp read with it.
fn read_whole<B: Backend + ?Sized>(
    backend: &B,
    user: UserId,
    documents: &[DocumentId],
    now: Instant,
) -> Result<Option<UserAccess>> {
    let cache = backend.accesses();
    cache.tally.read();
    let Some(AccessRead { stamp, core, epochs }) =
        read_statement(backend, |rows| rows.user_access(user, documents))?
    else {
        cache.forget(user);
        return Ok(None);
    };
    Ok(Some(served(&cache.keep(user, stamp, now, core), epochs)))
}

/// The core of `user` as of the transaction of `rows`, in which the user's stamp is `stamp`
/// (`None` when it was not read: the whole core is read then). A sync answer reads the stamp
/// with its other facts, so a core served from the cache costs it no read at all; otherwise
/// the core is read in the answer's own transaction, which keeps the answer's reads of one
/// commit. `None` for an unknown user. With it, whether it was served; the caller counts
/// that once its read is kept ([`Tally::count`]): a read run again must not count twice.
pub(super) fn core_in(
    rows: &dyn ReadRows,
    cache: &AccessCache,
    user: UserId,
    stamp: Option<AccessStamp>,
) -> Result<(Option<Arc<AccessCore>>, bool)> {
    let now = Instant::now();
    if let (Some(stamp), Some((kept, core))) = (stamp, cache.get(user, now))
        && kept == stamp
    {
        return Ok((Some(core), true));
    }
    let Some(AccessRead { stamp, core, .. }) = rows.user_access(user, &[])? else {
        cache.forget(user);
        return Ok((None, false));
    };
    Ok((Some(cache.keep(user, stamp, now, core)), false))
}

/// The access of `core` with those of `epochs` whose documents it reads.
fn served(core: &AccessCore, epochs: Vec<(DocumentId, u32)>) -> UserAccess {
    let reads: HashSet<&DocumentId> = core.readable.iter().map(|(document, _)| document).collect();
    UserAccess {
        user: core.user.clone(),
        organisation: core.organisation.clone(),
        policy: core.policy.clone(),
        plan_levels: core.plan_levels.clone(),
        readable: core.readable.iter().map(|(document, _)| *document).collect(),
        epochs: epochs.into_iter().filter(|(document, _)| reads.contains(document)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(name: &str) -> Arc<AccessCore> {
        Arc::new(AccessCore {
            user: User {
                id: UserId(1),
                org: crate::storage::OrgId(1),
                name: name.into(),
                role: "wijkteam".into(),
            },
            organisation: "Wijkteam Noord".into(),
            policy: None,
            plan_levels: Vec::new(),
            readable: vec![(DocumentId { plan: [7; 16], compartment: 1 }, 1)],
            unminted: Vec::new(),
            rotations: Vec::new(),
        })
    }

    #[test]
    fn a_core_is_kept_with_the_stamp_it_was_read_under_and_replaced_by_a_newer_read() {
        let cache = AccessCache::new();
        let now = Instant::now();
        let named =
            |kept: Option<(AccessStamp, Arc<AccessCore>)>| kept.map(|(s, c)| (s, c.user.name.clone()));
        let stamp = AccessStamp { key_shares: 5, policy: Some(2) };
        cache.put(UserId(1), stamp, now, core("Ann"));
        assert_eq!(named(cache.get(UserId(1), now)), Some((stamp, "Ann".into())));
        let newer = AccessStamp { key_shares: 6, ..stamp };
        cache.put(UserId(1), newer, now, core("Anna"));
        assert_eq!(named(cache.get(UserId(1), now)), Some((newer, "Anna".into())));
        assert!(cache.get(UserId(2), now).is_none(), "another user");
        cache.forget(UserId(1));
        assert!(cache.get(UserId(1), now).is_none(), "a user found unknown is forgotten");
    }

    #[test]
    fn a_core_is_not_served_once_it_is_older_than_its_maximum_age() {
        let cache = AccessCache::new();
        let read_at = Instant::now();
        cache.put(UserId(1), AccessStamp { key_shares: 5, policy: Some(2) }, read_at, core("Ann"));
        assert!(cache.get(UserId(1), read_at + MAX_AGE - Duration::from_millis(1)).is_some());
        assert!(cache.get(UserId(1), read_at + MAX_AGE).is_none());
        // Still a guess of what Ann reads, no longer one the answer may be served from.
        let young = |at| cache.remembered_core(UserId(1), at).map(|(_, young)| young);
        assert_eq!(young(read_at + MAX_AGE - Duration::from_millis(1)), Some(true));
        assert_eq!(young(read_at + MAX_AGE), Some(false));
        assert_eq!(cache.remembered_core(UserId(2), read_at).map(|(_, young)| young), None);
    }

    #[test]
    fn cores_read_under_one_policy_share_one_copy_of_it() {
        let cache = AccessCache::new();
        let record = |byte: u8| {
            let policy = eenplan_protocol::policy::Policy { version: u32::from(byte), ..Default::default() };
            Arc::new(PolicyRecord { signed: vec![byte; 1_000], policy: Arc::new(policy) })
        };
        let first = cache.shared(record(2));
        let second = cache.shared(record(2));
        assert!(Arc::ptr_eq(&first, &second), "an equal policy read again is the kept one");
        let newer = cache.shared(record(3));
        assert_eq!(newer.signed, vec![3; 1_000]);
        assert!(Arc::ptr_eq(&newer, &cache.shared(record(3))));
    }

    #[test]
    fn a_full_cache_starts_again_empty_rather_than_growing() {
        let cache = AccessCache::new();
        let (stamp, now) = (AccessStamp { key_shares: 0, policy: None }, Instant::now());
        for user in 0..MAX_USERS {
            cache.put(UserId(i64::try_from(user).unwrap()), stamp, now, core("Ann"));
        }
        assert_eq!(cache.len(), MAX_USERS);
        cache.put(UserId(0), stamp, now, core("Ann"));
        assert_eq!(cache.len(), MAX_USERS, "a user already kept does not empty it");
        cache.put(UserId(-1), stamp, now, core("Ann"));
        assert_eq!(cache.len(), 1);
    }
}
