//! A sync answer's reads, as of one commit: the membership page, the pull page, and the
//! facts the answer is built from (keys held and missing, snapshots due, policy, audit).
//! Read apart, a commit between two reads could pair a pull page with a membership page or
//! a key list of another moment; read together, they also cost one transaction, not a dozen,
//! and where the remembered state serves all but the facts, one statement ([`Guess`]).

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use eenplan_protocol::DocumentId;

use super::access::{self, AccessCache, AccessCore};
use super::key_shares::{self, HeldKeys, KeyShareCache, MissingKeys};
use super::log;
use super::tally::AnswerGuesses;
use crate::storage::backend::{AheadAsks, AheadReads, FactsQuery, FirstRead, ReadRows, SyncFacts};
use crate::storage::pull::ResumePoint;
use crate::storage::{
    AnswerQuery, AnswerReads, DeviceId, MembershipPage, PolicyRecord, PullBatch, PullRequest, Result,
    StorageError, TailStats, UserId, pull, whole_chains_page,
};

/// What [`read`] found: the answer's reads, and where a page that stopped inside a history
/// block resumes, which the caller stores in a write transaction.
pub(super) struct Read {
    pub reads: AnswerReads,
    pub resume: Option<ResumePoint>,
    /// The resume token the device presented ([`pull::Page::presented_token`]).
    pub presented_token: Option<u64>,
    /// Which reads asked for ahead the answer took ([`count_reads_ahead`], once the read is
    /// kept: a read run again must not count twice).
    pub ahead_used: AheadUsed,
    /// Which remembered reads the answer was served ([`count_remembered`], likewise once).
    pub remembered_used: RememberedUsed,
}

/// Which of the remembered reads an answer was served (`true`) or read again (`false`).
pub(super) struct RememberedUsed {
    access: bool,
    missing_keys: bool,
    /// `None` when the held keys were not needed (an answer that is not complete).
    held_keys: Option<bool>,
}

/// Where an answer took the reads it may make ahead from.
pub(super) struct AheadUsed {
    sources: pull::AheadSources,
    /// Whether the tails were read ahead; `None` when none were weighed.
    tails: Option<bool>,
}

/// The caches a sync answer reads through.
#[derive(Clone, Copy)]
pub(super) struct Caches<'a> {
    pub key_shares: &'a KeyShareCache,
    pub accesses: &'a AccessCache,
    /// How often the answer's guesses held.
    pub guesses: &'a AnswerGuesses,
}

/// After an answer that needed more than one statement, how many of the device's next
/// answers that would be tried as one run in a transaction at once. A device catching up
/// reads bundles on every page, and every try in one statement that fails costs the facts'
/// statement twice, where one that holds saves the transaction's two round trips. Every
/// miss waits alike, whatever asked for the second statement: a snapshot ask is repeated
/// on each complete answer until the snapshot arrives, so it is no one-off either.
const TRANSACTIONS_AFTER_AGAIN: u8 = 8;

/// The most devices remembered with answers in a transaction; when full, it starts again
/// empty, so no peer can grow it without end.
const MAX_DEVICES_IN_TRANSACTION: usize = 8_192;

/// What an answer guesses before it reads, from what this process remembers: the reads to
/// ask for ahead with its facts, and whether it will need no more than that one statement
/// ([`Backend::read_statement_first`]). A wrong guess costs reads, never a different answer.
///
/// [`Backend::read_statement_first`]: crate::storage::backend::Backend::read_statement_first
pub(super) struct Guess {
    pub asks: AheadAsks,
    pub one_statement: bool,
}

impl Guess {
    /// One statement suffices when the facts read ahead serve the whole answer: the user's
    /// access, the device's held keys and its missing-key list are remembered and young
    /// enough to be served (they are when their stamps still hold), the cursor is plain, no
    /// history page is asked for, and the device's answers did not lately need more. What
    /// the facts then show can still ask for a second statement: news to read, keys to
    /// deliver, snapshots to ask for.
    pub(super) fn of(caches: &Caches<'_>, request: &PullRequest) -> Guess {
        let now = Instant::now();
        let core = caches.accesses.remembered_core(request.user, now);
        let held = caches.key_shares.remembered_held(request.device, now);
        let servable = matches!((&core, &held), (Some((_, true)), Some((_, true))));
        let plain = pull::plain_cursor(request).is_some() && request.history.is_empty();
        let asks = asks_ahead(core.map(|(core, _)| core), held.map(|(held, _)| held), request);
        if !(servable && plain) {
            return Guess { asks, one_statement: false };
        }
        let one_statement = !waits_for_a_transaction(caches.guesses, request.device);
        Guess { asks, one_statement }
    }
}

/// A sync answer begun before its request's push is committed
/// ([`crate::storage::Storage::begin_answer`]): what it guessed, and where the backend reads
/// the answers' first statements in groups ([`Backend::groups_answer_facts`]) and the answer
/// is guessed to need no more, whom that statement reads for, for the group commit to read
/// it with its other requests' ([`crate::storage::Storage::read_answer_facts`]), and then
/// what it read.
///
/// [`Backend::groups_answer_facts`]: crate::storage::backend::Backend::groups_answer_facts
pub struct AnswerStart {
    pub(super) guess: Guess,
    pub(super) grouped: Option<FactsFor>,
    pub(super) facts: Option<SyncFacts>,
}

/// Whom an answer's first statement reads for: with the reads the guess asks for ahead,
/// everything its rows depend on ([`FactsQuery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FactsFor {
    user: crate::storage::UserId,
    device: DeviceId,
    membership_after: u64,
}

impl FactsFor {
    fn of(query: &AnswerQuery) -> FactsFor {
        FactsFor {
            user: query.pull.user,
            device: query.pull.device,
            membership_after: membership_cursor(query),
        }
    }
}

impl AnswerStart {
    pub(super) fn begin(caches: &Caches<'_>, query: &AnswerQuery, groups: bool) -> AnswerStart {
        let guess = Guess::of(caches, &query.pull);
        let grouped = (groups && guess.one_statement).then(|| FactsFor::of(query));
        AnswerStart { guess, grouped, facts: None }
    }

    /// The first statement a group should read for this answer, when it wants one.
    pub(super) fn facts_query(&self) -> Option<FactsQuery> {
        let FactsFor { user, device, membership_after } = self.grouped.filter(|_| self.facts.is_none())?;
        Some(FactsQuery { user, device, membership_after, ahead: self.guess.asks.clone() })
    }

    /// Whether a group commit should read this answer's first statement with its group's.
    pub fn wants_facts(&self) -> bool {
        self.grouped.is_some() && self.facts.is_none()
    }

    /// Whether a group read this answer's first statement.
    pub fn has_facts(&self) -> bool {
        self.facts.is_some()
    }

    /// The facts read for it, when they were read for `query`'s user, device and membership
    /// cursor: the facts' own rows depend on nothing else, and each read ahead with them is
    /// taken only for exactly the read it answers ([`AheadReads`]), so an answer is never
    /// built from rows read for another query.
    pub(super) fn facts_for(&mut self, query: &AnswerQuery) -> Option<SyncFacts> {
        let facts = self.facts.take()?;
        (self.grouped == Some(FactsFor::of(query))).then_some(facts)
    }
}

#[cfg(test)]
impl AnswerStart {
    /// An answer of `device` that wants its facts read in a group, as one begun on
    /// PostgreSQL with everything remembered: for the group commit's own tests, on SQLite.
    pub(crate) fn wanting_facts(user: crate::storage::UserId, device: DeviceId) -> AnswerStart {
        let guess = Guess { asks: AheadAsks::default(), one_statement: true };
        AnswerStart { guess, grouped: Some(FactsFor { user, device, membership_after: 0 }), facts: None }
    }
}

impl std::fmt::Debug for AnswerStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerStart")
            .field("one_statement", &self.guess.one_statement)
            .field("grouped", &self.grouped.is_some())
            .field("facts", &self.facts.is_some())
            .finish()
    }
}

/// Whether `device`'s answer, which would be tried as one statement, runs in a transaction
/// at once after a recent one that needed more ([`TRANSACTIONS_AFTER_AGAIN`]); counts this
/// answer off the wait.
fn waits_for_a_transaction(guesses: &AnswerGuesses, device: DeviceId) -> bool {
    let mut waiting = guesses.in_transaction.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(left) = waiting.get_mut(&device) else { return false };
    *left = left.saturating_sub(1);
    if *left == 0 {
        waiting.remove(&device);
    }
    true
}

/// Counts how an answer tried as one statement ran, and after one that did not suffice,
/// makes the device's next tries wait for a transaction ([`waits_for_a_transaction`]).
pub(super) fn count_first_read_and_wait(guesses: &AnswerGuesses, device: DeviceId, first: FirstRead) {
    match first {
        FirstRead::OneStatement => guesses.one_statement.served(),
        FirstRead::Again => {
            guesses.one_statement.read();
            let mut waiting = guesses.in_transaction.lock().unwrap_or_else(PoisonError::into_inner);
            if waiting.len() >= MAX_DEVICES_IN_TRANSACTION && !waiting.contains_key(&device) {
                waiting.clear();
            }
            waiting.insert(device, TRANSACTIONS_AFTER_AGAIN);
        }
        FirstRead::Transaction => {}
    }
}

/// Reads everything [`AnswerReads`] holds in the snapshot of `rows` (a read transaction, or
/// one statement that refuses a second), asking for `asks` ahead with its facts.
pub(super) fn read(
    rows: &dyn ReadRows,
    caches: Caches<'_>,
    query: &AnswerQuery,
    asks: &AheadAsks,
) -> Result<Read> {
    let facts = rows.sync_facts(&facts_query(query, asks))?;
    read_after_facts(rows, caches, query, facts)
}

/// The first read of `query`'s answer, asking for `asks` ahead.
pub(super) fn facts_query(query: &AnswerQuery, asks: &AheadAsks) -> FactsQuery {
    FactsQuery {
        user: query.pull.user,
        device: query.pull.device,
        membership_after: membership_cursor(query),
        ahead: asks.clone(),
    }
}

/// The device's membership cursor as the database reads it. A cursor past every position
/// a database can hold is none this server gave; read from there, it finds no entry, as
/// from any cursor past the log's head. Passed as it came, it was a parameter no database
/// takes: the device's answer failed, and on PostgreSQL so did the group read of the other
/// answers' facts beside it.
fn membership_cursor(query: &AnswerQuery) -> u64 {
    query.membership_after.min(pull::MAX_POSITION)
}

/// [`read`] after its first read, `facts`, which are of the snapshot `rows` reads (or, on
/// rows that refuse every statement, [`Backend::read_without_statements`], of the
/// snapshot of the group statement that read them).
///
/// [`Backend::read_without_statements`]: crate::storage::backend::Backend::read_without_statements
pub(super) fn read_after_facts(
    rows: &dyn ReadRows,
    caches: Caches<'_>,
    query: &AnswerQuery,
    facts: SyncFacts,
) -> Result<Read> {
    let request = &query.pull;
    let (core, access) = access::core_in(rows, caches.accesses, request.user, facts.stamp_of(request.user))?;
    // The held keys are remembered only under the stamp of the user whose readable documents
    // filter them.
    let held_stamp = facts.key_shares_of(request.user);
    let UserFacts { readable, unminted, rotations, policy } = UserFacts::of(rows, core.as_deref())?;
    let SyncFacts { head, policy: policy_version, membership, audit_key, audit_through, key_shares, ahead } =
        facts;
    // Read once for the membership page, the pull and the answer's own rules.
    let seen = pull::Seen { head, readable, ahead };
    let membership = whole_chains_page(membership, query.membership_after, seen.head, query.membership_limit);
    let page = pull_after_membership(rows, query, &membership, &seen)?;
    let commitments = commitments(rows, &page.batch)?;
    let readable: HashSet<DocumentId> = seen.readable.iter().map(|(document, _)| *document).collect();
    let (missing_envelopes, missing_keys) =
        keys_to_seal(rows, caches.key_shares, request.device, key_shares, policy_version, &readable)?;
    let complete =
        page.batch.complete && membership.complete && page.batch.history.iter().all(|h| h.complete);
    let tails = Tails { ahead: &seen.ahead, served: Cell::new(None) };
    let (snapshot_candidates, held_keys) = if complete {
        let (held, served) =
            key_shares::held_documents(rows, caches.key_shares, request.device, held_stamp, policy_version)?;
        (snapshots_due(rows, request.device, &held, &readable, &tails, query.now)?, Some(served))
    } else {
        (Vec::new(), None)
    };
    let pull::Page { batch, resume, presented_token, sources } = page;
    let reads = AnswerReads {
        membership,
        batch,
        commitments,
        policy: policy
            .filter(|record| record.policy.version > query.policy_after)
            .map(|record| record.signed.clone()),
        missing_envelopes,
        snapshot_candidates,
        unminted,
        rotations: rotations.into_iter().map(next_epoch).collect(),
        audit_through,
        audit_key: audit_key
            .filter(|(version, _)| *version > query.audit_key_after)
            .map(|(_, signed)| signed),
    };
    Ok(Read {
        reads,
        resume,
        presented_token,
        ahead_used: AheadUsed { sources, tails: tails.served.get() },
        remembered_used: RememberedUsed { access, missing_keys, held_keys },
    })
}

/// The keys of `readable` documents that devices lack and `device` holds (which the answer
/// asks it to seal), as of the transaction of `rows`, in which `key_shares` is the device's
/// key-share version and `policy` the stored policy's version; with whether the remembered
/// list was served.
fn keys_to_seal(
    rows: &dyn ReadRows,
    cache: &KeyShareCache,
    device: DeviceId,
    key_shares: Option<(UserId, i64)>,
    policy: Option<u32>,
    readable: &HashSet<DocumentId>,
) -> Result<(MissingKeys, bool)> {
    let (missing, served) = key_shares::devices_missing_held_keys(rows, cache, device, key_shares, policy)?;
    let due = missing.iter().copied().filter(|(document, _, _)| readable.contains(document)).collect();
    Ok((due, served))
}

/// The pull page of an answer, within what its membership page leaves of the byte budget.
fn pull_after_membership(
    rows: &dyn ReadRows,
    query: &AnswerQuery,
    membership: &MembershipPage,
    seen: &pull::Seen,
) -> Result<pull::Page> {
    let membership_bytes: usize = membership.entries.iter().map(Vec::len).sum();
    let max_bytes = query
        .pull
        .max_bytes
        .saturating_sub(membership_bytes)
        .max(eenplan_protocol::sync::MIN_PAGE_BYTES as usize);
    pull::pull_at(rows.log(), &PullRequest { max_bytes, ..query.pull.clone() }, seen)
}

/// What an answer asks to read ahead with its facts ([`AheadAsks`]): its mailbox, and from
/// what this process remembers of the user (the readable documents) and of the device (the
/// keys it holds), whatever their stamps, the documents with news since a plain cursor and
/// the tails of the snapshot candidates. When the remembered state is still current, which
/// the facts then tell, these are exactly the reads the answer makes; the pull and the
/// answer take a result only for the very read they would make.
fn asks_ahead(
    core: Option<Arc<AccessCore>>,
    held: Option<Arc<HeldKeys>>,
    request: &PullRequest,
) -> AheadAsks {
    let news = core
        .as_ref()
        .zip(pull::plain_cursor(request))
        .map(|(core, since)| (pull::followed(&core.readable, since), since));
    let tails = core
        .zip(held)
        .map(|(core, held)| candidates(&held, &core.readable.iter().map(|(document, _)| *document).collect()))
        .filter(|candidates| !candidates.is_empty());
    AheadAsks { mailbox: Some(pull::mailbox_read(request, pull::MAX_POSITION)), news, tails }
}

/// Counts which remembered reads a kept answer was served.
pub(super) fn count_remembered(caches: &Caches<'_>, used: RememberedUsed) {
    let RememberedUsed { access, missing_keys, held_keys } = used;
    caches.accesses.tally().count(access);
    caches.key_shares.tally().count(missing_keys);
    if let Some(served) = held_keys {
        caches.key_shares.held_tally().count(served);
    }
}

/// Counts where a kept answer took the reads it may make ahead from.
pub(super) fn count_reads_ahead(guesses: &AnswerGuesses, used: AheadUsed) {
    let AheadUsed { sources, tails } = used;
    let [mailbox, news] =
        [sources.mailbox, sources.news].map(|source| source.map(|s| s == pull::Source::Ahead));
    for (tally, served) in [(&guesses.mailbox, mailbox), (&guesses.news, news), (&guesses.tails, tails)] {
        if let Some(served) = served {
            tally.count(served);
        }
    }
}

/// Where an answer finds the tails it weighs: read ahead with its facts, or read now.
struct Tails<'a> {
    ahead: &'a AheadReads,
    /// Whether the tails weighed were read ahead; `None` until they are weighed.
    served: Cell<Option<bool>>,
}

impl Tails<'_> {
    fn of(&self, rows: &dyn ReadRows, documents: &[DocumentId]) -> Result<Vec<TailStats>> {
        let ahead = self.ahead.tails(documents);
        self.served.set(Some(ahead.is_some()));
        match ahead {
            Some(tails) => Ok(tails.to_vec()),
            None => rows.document_tails(documents),
        }
    }
}

/// What an answer reads of its user: from the user's access ([`AccessCore`]), or, for an
/// unknown user, no document and the policy alone, as the single reads give.
struct UserFacts {
    readable: Vec<(DocumentId, u64)>,
    unminted: Vec<DocumentId>,
    rotations: Vec<(DocumentId, u32)>,
    policy: Option<Arc<PolicyRecord>>,
}

impl UserFacts {
    fn of(rows: &dyn ReadRows, core: Option<&AccessCore>) -> Result<UserFacts> {
        Ok(match core {
            Some(core) => UserFacts {
                readable: core.readable.clone(),
                unminted: core.unminted.clone(),
                rotations: core.rotations.clone(),
                policy: core.policy.clone(),
            },
            None => UserFacts {
                readable: Vec::new(),
                unminted: Vec::new(),
                rotations: Vec::new(),
                policy: rows.policy()?.map(Arc::new),
            },
        })
    }
}

/// The user's membership entries after `after`, whole chains only, within `limit`, as of the
/// log position `head`.
pub(super) fn membership_page(
    head: u64,
    rows: &dyn ReadRows,
    user: UserId,
    after: u64,
    limit: (usize, usize),
) -> Result<MembershipPage> {
    Ok(whole_chains_page(rows.membership_after(user, after)?, after, head, limit))
}

/// For each key, the devices that may read its document and lack it: (document, epoch,
/// device), key by key in the order given.
pub(super) fn missing_envelopes(
    rows: &dyn ReadRows,
    keys: &[(DocumentId, u32)],
) -> Result<Vec<(DocumentId, u32, DeviceId)>> {
    let mut missing = Vec::new();
    for &(document, epoch) in keys {
        let devices = rows.devices_missing_envelope(document, epoch)?;
        missing.extend(devices.into_iter().map(|device| (document, epoch, device)));
    }
    Ok(missing)
}

/// Chartered rotations the user's devices are asked to make: (document, next epoch).
pub(super) fn rotations(rows: &dyn ReadRows, user: UserId) -> Result<Vec<(DocumentId, u32)>> {
    rows.chartered_rotations_for(user)?
        .into_iter()
        .map(|document| Ok(next_epoch((document, rows.current_epoch(document)?))))
        .collect()
}

/// A rotation makes the epoch after the document's current one.
fn next_epoch((document, current): (DocumentId, u32)) -> (DocumentId, u32) {
    (document, current.saturating_add(1))
}

/// Each key travels with the commitment the device checks it against: one per (document,
/// epoch) among the page's envelopes.
fn commitments(rows: &dyn ReadRows, batch: &PullBatch) -> Result<Vec<Vec<u8>>> {
    let mut commitments = Vec::new();
    let mut seen = HashSet::new();
    for envelope in &batch.envelopes {
        if seen.insert((envelope.document, envelope.epoch))
            && let Some(commitment) = rows.commitment(envelope.document, envelope.epoch)?
        {
            commitments.push(commitment.signed);
        }
    }
    Ok(commitments)
}

/// The readable documents of `held` (a device's [`HeldKeys`]) it holds the current epoch's
/// key of whose tail wants a snapshot. A key of an older epoch cannot seal a snapshot the
/// current readers open. Only their tails are read: the held keys are remembered, the tails
/// move with every push.
fn snapshot_candidates(
    rows: &dyn ReadRows,
    held: &HeldKeys,
    readable: &HashSet<DocumentId>,
    tails: &Tails<'_>,
) -> Result<Vec<DocumentId>> {
    let candidates = candidates(held, readable);
    if candidates.is_empty() {
        return Ok(candidates);
    }
    let tails = tails.of(rows, &candidates)?;
    if tails.len() != candidates.len() {
        return Err(StorageError::Corrupt(format!(
            "{} tails read for {} documents",
            tails.len(),
            candidates.len()
        )));
    }
    Ok(candidates.into_iter().zip(tails).filter(|(_, tail)| tail.wants_snapshot()).map(|(d, _)| d).collect())
}

/// Of `held`, the readable documents whose current epoch's key the device holds, in the
/// order of `held`.
fn candidates(held: &HeldKeys, readable: &HashSet<DocumentId>) -> Vec<DocumentId> {
    held.iter()
        .filter(|(document, current_key_held)| *current_key_held && readable.contains(document))
        .map(|(document, _)| *document)
        .collect()
}

/// The documents a complete answer asks `device` to snapshot: those it holds a key of whose
/// tail is long, those it [`log::may_ask`] for (the rule the request's write applies too).
/// Asking costs a write; read here, a sync with nothing the device may be asked writes
/// nothing.
///
/// A device is asked again on each complete answer while its tail is long: asked while its
/// outbox still holds changes of the document, it can answer only a later round's ask of the
/// same sync, so not asking it again at once left documents uncompacted (`sync_bench` b,
/// 2026-12-05: 247 bundles instead of 25 for a new device at 4 plans).
fn snapshots_due(
    rows: &dyn ReadRows,
    device: DeviceId,
    held: &HeldKeys,
    readable: &HashSet<DocumentId>,
    tails: &Tails<'_>,
    now: i64,
) -> Result<Vec<DocumentId>> {
    let long = snapshot_candidates(rows, held, readable, tails)?;
    if long.is_empty() {
        return Ok(long);
    }
    let outstanding = log::outstanding_requests(rows, device, now)?;
    let mut due = Vec::with_capacity(long.len());
    for document in long {
        if log::may_ask(rows, &outstanding, device, document, now)? {
            due.push(document);
        }
    }
    Ok(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: usize) -> DeviceId {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(n as u64).to_le_bytes());
        DeviceId(id)
    }

    #[test]
    fn after_a_miss_a_devices_next_eight_tries_wait_for_a_transaction_and_the_ninth_tries_again() {
        let guesses = AnswerGuesses::default();
        assert!(!waits_for_a_transaction(&guesses, device(1)), "no miss yet");
        count_first_read_and_wait(&guesses, device(1), FirstRead::Again);
        for n in 1..=TRANSACTIONS_AFTER_AGAIN {
            assert!(waits_for_a_transaction(&guesses, device(1)), "try {n} after the miss");
            assert!(!waits_for_a_transaction(&guesses, device(2)), "another device");
        }
        assert!(!waits_for_a_transaction(&guesses, device(1)), "the ninth");
        count_first_read_and_wait(&guesses, device(1), FirstRead::OneStatement);
        count_first_read_and_wait(&guesses, device(1), FirstRead::Transaction);
        assert!(!waits_for_a_transaction(&guesses, device(1)), "only a miss makes a device wait");
        assert_eq!(guesses.one_statement.counts(), (1, 1));
    }

    #[test]
    fn a_full_map_of_waiting_devices_starts_again_and_never_holds_more_than_its_bound() {
        let guesses = AnswerGuesses::default();
        let waiting = || guesses.in_transaction.lock().unwrap().len();
        for n in 0..MAX_DEVICES_IN_TRANSACTION {
            count_first_read_and_wait(&guesses, device(n), FirstRead::Again);
        }
        assert_eq!(waiting(), MAX_DEVICES_IN_TRANSACTION);
        count_first_read_and_wait(&guesses, device(0), FirstRead::Again);
        assert_eq!(waiting(), MAX_DEVICES_IN_TRANSACTION, "a waiting device's miss waits again in place");
        count_first_read_and_wait(&guesses, device(MAX_DEVICES_IN_TRANSACTION), FirstRead::Again);
        assert_eq!(waiting(), 1, "a new device in a full map starts it again");
        assert!(waits_for_a_transaction(&guesses, device(MAX_DEVICES_IN_TRANSACTION)));
    }
}
