#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The storage conformance suite. Every check in `suite` takes a `&dyn Storage` (or a
//! [`Backend`] when it must reopen the store), so another backend runs the same suite with
//! one more `conformance_suite!` line.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use eenplan_protocol::policy::{Access, Policy};
use eenplan_protocol::sync::REJECT_UNREQUESTED_SNAPSHOT;
use eenplan_protocol::{BundleKind, DocumentId};
use eenplan_server::storage::{
    AdminRecord, AnswerQuery, AnswerReads, AnswerStart, AuditKeyRecord, CommitmentOutcome, CommitmentRecord,
    CompletedRotation, DeviceId, DeviceState, Envelope, EnvelopeOutcome, EnvelopeRefusal, HistoryRequest,
    MAX_SNAPSHOT_REQUESTS_PER_DEVICE, NetworkRecord, NewAuditUpload, NewBundle, NewDevice, OrgId, PlanId,
    PolicyRecord, PullBatch, PullRequest, PushOutcome, Revocation, RevocationListRecord,
    SNAPSHOT_HOLD_OFF_MS, SNAPSHOT_REQUEST_TTL_MS, SNAPSHOT_SHORTCUT_CHANGES, ServerEventRecord, SessionAsk,
    SqliteStorage, Storage, StorageError, StoredName, UserId, WipeGuard,
};

/// A backend under test: a fresh, empty store that can be closed and opened again.
pub trait Backend {
    fn storage(&self) -> &dyn Storage;
    /// Closes the store and opens the same one again, as a restarted server would.
    fn reopen(&mut self);
}

/// Builders shared by the checks.
mod fixtures {
    use super::*;

    pub const P: PlanId = [0xA1; 16];
    pub const Q: PlanId = [0xB2; 16];
    pub const BIG: usize = usize::MAX;

    pub fn doc(plan: PlanId, compartment: u8) -> DocumentId {
        DocumentId::new(plan, compartment).unwrap()
    }

    pub fn id16(n: u64) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&n.to_be_bytes());
        id[8] = 0xEE;
        id
    }

    pub fn org(s: &dyn Storage) -> OrgId {
        match s.org_by_name("Wijkteam Noord").unwrap() {
            Some(org) => org.id,
            None => s.add_org("Wijkteam Noord", 72).unwrap(),
        }
    }

    pub fn user(s: &dyn Storage, name: &str) -> UserId {
        s.add_user(org(s), name, "wijkteam").unwrap()
    }

    pub fn user_with_role(s: &dyn Storage, name: &str, role: &str) -> UserId {
        s.add_user(org(s), name, role).unwrap()
    }

    pub const ALL: &[&str] = &["basis", "zorg", "veiligheid", "justitie"];

    /// A root-signed policy: (role, read, write) per role.
    pub fn policy(version: u32, roles: &[(&str, &[&str], &[&str])]) -> PolicyRecord {
        let policy = Policy {
            version,
            roles: roles
                .iter()
                .map(|(role, read, write)| {
                    let names = |list: &[&str]| list.iter().map(|c| c.to_string()).collect();
                    (role.to_string(), Access { read: names(read), write: names(write) })
                })
                .collect(),
            levels: Default::default(),
            retention: None,
        };
        let root = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        PolicyRecord { signed: policy.sign(&root).unwrap().to_bytes(), policy: std::sync::Arc::new(policy) }
    }

    /// [`policy`], and at plan level `level` the role `role` reads `reads` (and writes nothing).
    pub fn policy_with_level(
        version: u32,
        roles: &[(&str, &[&str], &[&str])],
        level: &str,
        (role, reads): (&str, &[&str]),
    ) -> PolicyRecord {
        let mut leveled = (*policy(version, roles).policy).clone();
        let access =
            Access { read: reads.iter().map(|c| c.to_string()).collect(), write: Default::default() };
        leveled.levels.insert(level.into(), [(role.to_string(), access)].into());
        let root = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        PolicyRecord { signed: leveled.sign(&root).unwrap().to_bytes(), policy: std::sync::Arc::new(leveled) }
    }

    /// Completes the waiting rotation of `document` to epoch 2, made without a minter device
    /// (an administrator's rekey), with `envelopes` of the new key.
    pub fn rotate_to_epoch_2(s: &dyn Storage, document: DocumentId, envelopes: Vec<Envelope>, now: i64) {
        let rotation = CompletedRotation {
            document,
            new_epoch: 2,
            commitment: vec![2; 150],
            minter_device: None,
            envelopes,
            now,
        };
        s.complete_rotation(&rotation).unwrap();
    }

    /// The policy every check starts from: a wijkteam user reads and writes every compartment
    /// (as every role did before policies), so the checks of the log are about the log.
    pub fn open_policy() -> PolicyRecord {
        policy(1, &[("wijkteam", ALL, ALL)])
    }

    pub fn commitment(
        document: DocumentId,
        epoch: u32,
        minter: Option<DeviceId>,
        byte: u8,
    ) -> CommitmentRecord {
        CommitmentRecord { document, epoch, minter_device: minter, signed: vec![byte; 150], stored_at: 10 }
    }

    /// The version of the policy in force (0 without one).
    pub fn policy_version(s: &dyn Storage) -> u32 {
        s.policy().unwrap().map_or(0, |p| p.policy.version)
    }

    /// Stores `commitment` naming the policy in force.
    pub fn commit(s: &dyn Storage, commitment: &CommitmentRecord) -> CommitmentOutcome {
        s.put_commitment(commitment, policy_version(s)).unwrap()
    }

    /// Ann, whose device `a1` registered plan `P`, and Bob (device `b1`), a participant:
    /// (ann, bob, a1, b1).
    pub fn ann_and_bob_in_p(s: &dyn Storage) -> (UserId, UserId, DeviceId, DeviceId) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let (a1, b1) = (device(s, ann, 1), device(s, bob, 2));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        (ann, bob, a1, b1)
    }

    /// Makes epoch 1 of each document, by `minter`.
    pub fn mint(s: &dyn Storage, documents: &[DocumentId], minter: DeviceId) {
        for d in documents {
            assert_eq!(commit(s, &commitment(*d, 1, Some(minter), 1)), CommitmentOutcome::Stored);
        }
    }

    /// Stores envelopes `sealer` sealed; what became of each.
    pub fn seal(s: &dyn Storage, sealer: DeviceId, envelopes: &[Envelope]) -> Vec<EnvelopeOutcome> {
        s.put_envelopes(sealer, envelopes).unwrap()
    }

    /// Records a wipe report for `device` as it stands now.
    pub fn wipe(s: &dyn Storage, device: DeviceId, report: &[u8], now: i64) -> bool {
        let seen = WipeGuard::of(&s.device(device).unwrap().unwrap());
        s.record_wipe(device, report, &seen, now).unwrap()
    }

    pub fn revocation(byte: u8) -> Revocation {
        Revocation { reason: "stolen".into(), wipe_order: vec![byte; 200] }
    }

    /// `plan` with a membership chain: its charter (entry 1), by `creator`'s device `by`.
    pub fn charter(plan: PlanId, creator: UserId, by: DeviceId) -> eenplan_server::storage::CharteredPlan {
        eenplan_server::storage::CharteredPlan {
            plan,
            creator,
            created_by: by,
            creator_role: "wijkteam".into(),
            charter: vec![1; 40],
            roster: vec![0xA1],
            now: 5,
        }
    }

    /// Entry 2 of `plan`'s chain, by device `by`, changing nothing: what a check's entry
    /// starts from (`MembershipUpdate { add: …, ..entry(P, a1) }`).
    pub fn entry(plan: PlanId, by: DeviceId) -> eenplan_server::storage::MembershipUpdate {
        eenplan_server::storage::MembershipUpdate {
            plan,
            seq: 2,
            signed: vec![2; 40],
            roster: vec![0xA2],
            level: "regulier".into(),
            add: vec![],
            remove: vec![],
            regrant: vec![],
            rotate: vec![],
            by_device: Some(by),
            closed_at: None,
            erasure: None,
            now: 6,
        }
    }

    pub fn new_device(tag: u8) -> NewDevice {
        NewDevice {
            device_id: DeviceId([tag; 16]),
            signing_public: [tag; 32],
            agreement_public: vec![tag; 32],
            key_mac: vec![tag ^ 0x5A; 32],
            name: None,
        }
    }

    /// Enrols and activates a device whose ids and keys are all `tag`.
    pub fn device(s: &dyn Storage, user: UserId, tag: u8) -> DeviceId {
        let code = [tag; 32];
        s.create_enrolment(&code, user, i64::MAX).unwrap();
        assert_eq!(s.claim_enrolment(&code, &new_device(tag), 1_000).unwrap(), user);
        s.activate_device(DeviceId([tag; 16]), &[tag, 0xCE]).unwrap();
        DeviceId([tag; 16])
    }

    pub fn bundle(document: DocumentId, id: u64, author: DeviceId, size: usize) -> NewBundle {
        NewBundle {
            document,
            bundle_id: id16(id),
            author,
            epoch: 1,
            kind: BundleKind::Changes,
            covers_seq: None,
            bytes: vec![id as u8; size],
            received_at: 5_000 + id as i64,
        }
    }

    pub fn changes(document: DocumentId, id: u64, author: DeviceId) -> NewBundle {
        bundle(document, id, author, 100)
    }

    pub fn snapshot(document: DocumentId, id: u64, author: DeviceId, covers: u64) -> NewBundle {
        NewBundle {
            kind: BundleKind::Snapshot { covers },
            covers_seq: Some(covers),
            ..bundle(document, id, author, 400)
        }
    }

    /// When the fixtures' snapshot requests are made: within the validity of every fixture
    /// bundle's `received_at`.
    pub const ASKED_AT: i64 = 5_000;

    /// A snapshot that `author` was asked for, covering `covers`.
    pub fn requested_snapshot(
        s: &dyn Storage,
        document: DocumentId,
        id: u64,
        author: DeviceId,
        covers: u64,
    ) -> NewBundle {
        assert_eq!(s.request_snapshots(author, &[document], covers, ASKED_AT).unwrap(), [document]);
        snapshot(document, id, author, covers)
    }

    pub fn push(s: &dyn Storage, items: &[NewBundle]) -> Vec<u64> {
        s.push_batch(items)
            .unwrap()
            .into_iter()
            .map(|outcome| match outcome {
                PushOutcome::Appended { seq } => seq,
                PushOutcome::Duplicate { seq } => panic!("bundle at {seq} was unexpectedly a duplicate"),
                PushOutcome::Refused { reason } => panic!("bundle unexpectedly refused: {reason}"),
            })
            .collect()
    }

    pub fn seqs(batch: &PullBatch) -> Vec<u64> {
        batch.bundles.iter().map(|b| b.seq).collect()
    }

    /// Pulls page after page until complete; returns every bundle's seq and the final head.
    pub fn sync(
        s: &dyn Storage,
        user: UserId,
        device: DeviceId,
        since: u64,
        max_bytes: usize,
    ) -> (Vec<u64>, u64) {
        let mut cursor = since;
        let mut got = Vec::new();
        for _ in 0..100_000 {
            let batch = s.pull(user, device, cursor, max_bytes).unwrap();
            got.extend(seqs(&batch));
            cursor = batch.head;
            if batch.complete {
                return (got, cursor);
            }
        }
        panic!("pull never completed")
    }

    pub fn network() -> NetworkRecord {
        NetworkRecord { root_public: [1; 32], escrow_public: vec![2; 32], escrow_signature: vec![3; 64] }
    }

    pub fn admin(tag: u8, name: &str) -> AdminRecord {
        AdminRecord { admin_public: [tag; 32], certificate: vec![tag; 90], name: name.into() }
    }

    pub fn envelope(recipient: DeviceId, document: DocumentId, epoch: u32, byte: u8) -> Envelope {
        Envelope { recipient, document, epoch, bytes: vec![byte; 120] }
    }
}

/// The checks, written against the trait only.
pub mod suite {
    use super::fixtures::*;
    use super::*;

    /// Runs before every check of the suite.
    pub fn prepare(s: &dyn Storage) {
        assert_eq!(s.set_policy(&open_policy(), 1).unwrap(), 0);
    }

    pub fn the_network_can_be_initialised_only_once(s: &dyn Storage) {
        assert_eq!(s.network().unwrap(), None);
        let first = policy(2, &[("wijkteam", &["basis"], &[])]);
        s.init_network(&network(), &admin(7, "Beheer"), &first).unwrap();
        assert_eq!(s.network().unwrap(), Some(network()));
        assert_eq!(s.policy().unwrap(), Some(first.clone()), "the first policy comes with the network");
        let other = NetworkRecord { root_public: [4; 32], ..network() };
        assert_eq!(
            s.init_network(&other, &admin(8, "Ander"), &open_policy()),
            Err(StorageError::AlreadyInitialised)
        );
        assert_eq!(s.network().unwrap(), Some(network()));
        assert_eq!(s.policy().unwrap(), Some(first), "nor does a refused init touch the policy");
        assert_eq!(s.admin(&[7; 32]).unwrap(), Some(admin(7, "Beheer")));
        assert_eq!(s.admin(&[8; 32]).unwrap(), None);
    }

    pub fn administrators_are_added_after_initialisation_and_only_once(s: &dyn Storage) {
        assert!(matches!(s.add_admin(&admin(9, "te vroeg")), Err(StorageError::InvalidState(_))));
        s.init_network(&network(), &admin(7, "Beheer"), &open_policy()).unwrap();
        s.add_admin(&admin(9, "Tweede")).unwrap();
        assert_eq!(s.admin(&[9; 32]).unwrap(), Some(admin(9, "Tweede")));
        assert!(matches!(s.add_admin(&admin(9, "Nog eens")), Err(StorageError::Conflict(_))));
        assert_eq!(s.admin(&[9; 32]).unwrap(), Some(admin(9, "Tweede")));
    }

    pub fn the_server_secret_is_stable_across_reopen(b: &mut dyn Backend) {
        let first = b.storage().server_secret().unwrap();
        assert_ne!(first, [0; 32]);
        assert_eq!(b.storage().server_secret().unwrap(), first);
        b.reopen();
        assert_eq!(b.storage().server_secret().unwrap(), first);
    }

    pub fn an_admin_signature_is_taken_once_across_reopen_until_it_is_stale(b: &mut dyn Backend) {
        let (first, second) = ([1u8; 64], [2u8; 64]);
        assert!(b.storage().remember_admin_signature(&first, 1_000, 0).unwrap());
        assert!(!b.storage().remember_admin_signature(&first, 1_000, 10).unwrap());
        // Another process on the database, or this one restarted, sees the same set.
        b.reopen();
        assert!(!b.storage().remember_admin_signature(&first, 1_000, 20).unwrap());
        assert!(b.storage().remember_admin_signature(&second, 5_000, 20).unwrap());
        // Once stale (its time fails the clock check anyway) it is forgotten, the newer kept.
        assert!(b.storage().remember_admin_signature(&first, 9_000, 1_001).unwrap());
        assert!(!b.storage().remember_admin_signature(&second, 5_000, 1_002).unwrap());
    }

    pub fn organisation_names_and_user_names_within_an_organisation_are_unique(s: &dyn Storage) {
        let noord = s.add_org("Wijkteam Noord", 72).unwrap();
        let zuid = s.add_org("Veilig Thuis", 48).unwrap();
        assert!(matches!(s.add_org("Wijkteam Noord", 24), Err(StorageError::Conflict(_))));
        let orgs = s.orgs().unwrap();
        assert_eq!(
            orgs.iter().map(|o| (o.name.as_str(), o.lease_hours)).collect::<Vec<_>>(),
            [("Wijkteam Noord", 72), ("Veilig Thuis", 48)]
        );
        assert_eq!(s.org_by_name("Veilig Thuis").unwrap().map(|o| o.id), Some(zuid));
        assert_eq!(s.org_by_name("OM").unwrap(), None);
        assert_eq!(s.org(zuid).unwrap().map(|o| (o.name, o.lease_hours)), Some(("Veilig Thuis".into(), 48)));
        assert_eq!(s.org(OrgId(zuid.0 + noord.0 + 1)).unwrap(), None);

        let sanne = s.add_user(noord, "Sanne", "wijkteam").unwrap();
        assert!(matches!(s.add_user(noord, "Sanne", "ggz"), Err(StorageError::Conflict(_))));
        let other_sanne = s.add_user(zuid, "Sanne", "veilig-thuis").unwrap();
        assert_eq!(s.add_user(OrgId(9_999), "Piet", "politie"), Err(StorageError::NotFound));

        let user = s.user(sanne).unwrap().unwrap();
        assert_eq!((user.org, user.name.as_str(), user.role.as_str()), (noord, "Sanne", "wijkteam"));
        assert_eq!(s.user(UserId(9_999)).unwrap(), None);
        let named: Vec<UserId> = s.user_by_name("Sanne").unwrap().into_iter().map(|u| u.id).collect();
        assert_eq!(named, [sanne, other_sanne]);
        assert!(s.user_by_name("Piet").unwrap().is_empty());
        assert_eq!(s.users().unwrap().len(), 2);
    }

    pub fn enrolment_codes_are_one_time_and_expire(s: &dyn Storage) {
        let sanne = user(s, "Sanne");
        s.create_enrolment(&[1; 32], sanne, 10_000).unwrap();
        s.create_enrolment(&[2; 32], sanne, 10_000).unwrap();
        assert!(matches!(s.create_enrolment(&[1; 32], sanne, 20_000), Err(StorageError::Conflict(_))));
        assert_eq!(s.create_enrolment(&[3; 32], UserId(9_999), 10_000), Err(StorageError::NotFound));

        assert_eq!(s.claim_enrolment(&[1; 32], &new_device(1), 9_999).unwrap(), sanne);
        assert_eq!(s.claim_enrolment(&[1; 32], &new_device(2), 9_999), Err(StorageError::NotFound));
        assert_eq!(s.claim_enrolment(&[9; 32], &new_device(2), 9_999), Err(StorageError::NotFound));
        // Expired at the instant of its expiry; an expired claim creates nothing.
        assert_eq!(s.claim_enrolment(&[2; 32], &new_device(2), 10_000), Err(StorageError::Expired));
        assert_eq!(s.device(DeviceId([2; 16])).unwrap(), None);
        assert_eq!(s.devices().unwrap().len(), 1);
    }

    pub fn a_claim_that_fails_leaves_the_code_unused(s: &dyn Storage) {
        let sanne = user(s, "Sanne");
        s.create_enrolment(&[1; 32], sanne, 10_000).unwrap();
        s.create_enrolment(&[2; 32], sanne, 10_000).unwrap();
        s.claim_enrolment(&[1; 32], &new_device(1), 5_000).unwrap();
        // The same device id again: refused, and code 2 is still good for another device.
        assert!(matches!(s.claim_enrolment(&[2; 32], &new_device(1), 5_000), Err(StorageError::Conflict(_))));
        assert_eq!(s.claim_enrolment(&[2; 32], &new_device(2), 5_000).unwrap(), sanne);
    }

    pub fn claiming_creates_a_pending_device_that_activation_makes_active_and_revocation_revoked(
        s: &dyn Storage,
    ) {
        let sanne = user(s, "Sanne");
        s.create_enrolment(&[1; 32], sanne, 10_000).unwrap();
        s.claim_enrolment(&[1; 32], &new_device(1), 2_000).unwrap();
        let id = DeviceId([1; 16]);

        let pending = s.device(id).unwrap().unwrap();
        assert_eq!(pending.state, DeviceState::Pending);
        assert_eq!((pending.user, pending.created_at, pending.certificate.as_ref()), (sanne, 2_000, None));
        assert_eq!((pending.signing_public, pending.agreement_public.as_slice()), ([1; 32], &[1u8; 32][..]));
        // The device's key MAC is kept as sent, for the administrator to check.
        assert_eq!(pending.key_mac, new_device(1).key_mac);
        assert_eq!(s.pending_devices().unwrap(), [pending]);
        assert!(s.active_devices_of_user(sanne).unwrap().is_empty());

        s.activate_device(id, b"device certificate").unwrap();
        let active = s.device(id).unwrap().unwrap();
        assert_eq!(active.state, DeviceState::Active);
        assert_eq!(active.certificate.as_deref(), Some(&b"device certificate"[..]));
        assert!(s.pending_devices().unwrap().is_empty());
        assert_eq!(s.active_devices_of_user(sanne).unwrap(), [active]);
        assert!(matches!(s.activate_device(id, b"again"), Err(StorageError::InvalidState(_))));

        s.revoke_device(id, &revocation(1), 3_000).unwrap();
        let revoked = s.device(id).unwrap().unwrap();
        assert_eq!((revoked.state, revoked.revoked_at), (DeviceState::Revoked, Some(3_000)));
        assert_eq!(revoked.revocation_reason.as_deref(), Some("stolen"));
        assert!(s.active_devices_of_user(sanne).unwrap().is_empty());
        assert!(matches!(s.activate_device(id, b"back"), Err(StorageError::InvalidState(_))));
        s.revoke_device(id, &Revocation { reason: "lost".into(), wipe_order: vec![2; 9] }, 4_000).unwrap();
        let again = s.device(id).unwrap().unwrap();
        assert_eq!((again.revoked_at, again.revocation_reason.as_deref()), (Some(3_000), Some("stolen")));
        assert_eq!(s.wipe_order(id).unwrap(), Some(revocation(1).wipe_order), "the first order stays");

        assert_eq!(s.activate_device(DeviceId([9; 16]), b"x"), Err(StorageError::NotFound));
        assert_eq!(s.revoke_device(DeviceId([9; 16]), &revocation(1), 1), Err(StorageError::NotFound));
    }

    pub fn revocation_lists_are_kept_every_version_in_order_and_first_writer_wins(s: &dyn Storage) {
        let list = |version: u32, byte: u8, devices: &[u8]| RevocationListRecord {
            version,
            signed: vec![byte; 40],
            devices: devices.iter().map(|d| DeviceId(id16(u64::from(*d)))).collect(),
        };
        assert_eq!(s.revocation_list(None).unwrap(), None);
        assert!(matches!(s.put_revocation_list(&list(2, 1, &[1]), 10), Err(StorageError::Conflict(_))));
        assert!(s.put_revocation_list(&list(1, 1, &[1]), 10).unwrap());
        assert!(!s.put_revocation_list(&list(1, 1, &[1]), 11).unwrap(), "the same upload again");
        assert!(matches!(s.put_revocation_list(&list(1, 9, &[1]), 11), Err(StorageError::Conflict(_))));
        assert!(s.put_revocation_list(&list(2, 2, &[1, 2]), 12).unwrap());
        assert!(matches!(s.put_revocation_list(&list(4, 4, &[1, 2]), 12), Err(StorageError::Conflict(_))));
        assert_eq!(s.revocation_list(None).unwrap(), Some((2, vec![2; 40])));
        assert_eq!(s.revocation_list(Some(1)).unwrap(), Some((1, vec![1; 40])));
        assert_eq!(s.revocation_list(Some(3)).unwrap(), None);
        assert!(s.on_revocation_list(DeviceId(id16(1))).unwrap());
        assert!(s.on_revocation_list(DeviceId(id16(2))).unwrap());
        assert!(!s.on_revocation_list(DeviceId(id16(3))).unwrap());
    }

    pub fn revocation_deletes_the_devices_envelopes_and_refuses_new_ones(s: &dyn Storage) {
        let sanne = user(s, "Sanne");
        let phone = device(s, sanne, 1);
        let laptop = device(s, sanne, 2);
        seal(s, laptop, &[envelope(phone, doc(P, 0), 1, 1), envelope(phone, doc(P, 1), 1, 2)]);
        seal(s, phone, &[envelope(laptop, doc(P, 0), 1, 3)]);
        assert_eq!(s.envelopes_for(phone, 0).unwrap().len(), 2);

        s.revoke_device(phone, &revocation(1), 3_000).unwrap();
        assert!(s.envelopes_for(phone, 0).unwrap().is_empty());
        assert_eq!(s.envelopes_for(laptop, 0).unwrap(), [envelope(laptop, doc(P, 0), 1, 3)]);
        assert_eq!(seal(s, laptop, &[envelope(phone, doc(P, 0), 2, 4)]), [EnvelopeOutcome::NoRecipient]);
        assert!(s.envelopes_for(phone, 0).unwrap().is_empty());
        // Nor does the revoked device seal anything any more.
        assert_eq!(
            s.put_envelopes(phone, &[envelope(laptop, doc(P, 1), 1, 5)]),
            Err(StorageError::DeviceNotActive)
        );
        assert_eq!(s.envelopes_for(laptop, 0).unwrap().len(), 1);
    }

    pub fn registering_a_plan_is_idempotent_for_its_creator_and_refused_for_others(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let a1 = device(s, ann, 1);
        let b1 = device(s, bob, 2);
        let before = s.head().unwrap();
        assert!(s.register_plan(P, ann, a1, 100).unwrap());
        let participants = s.participants(P).unwrap();
        assert_eq!(participants.len(), 1);
        assert_eq!((participants[0].user, participants[0].plan_role.as_str()), (ann, "regisseur"));
        assert!(participants[0].granted_at_seq > before);

        assert!(s.register_plan(P, ann, a1, 200).unwrap());
        assert!(!s.register_plan(P, bob, b1, 300).unwrap());
        assert_eq!(s.participants(P).unwrap(), participants);
        assert!(!s.is_participant(P, bob).unwrap());
        assert_eq!(s.register_plan(Q, UserId(9_999), a1, 1), Err(StorageError::NotFound));
    }

    pub fn participants_can_be_added_updated_and_removed(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let a1 = device(s, ann, 1);
        s.register_plan(P, ann, a1, 1).unwrap();
        s.register_plan(Q, ann, a1, 1).unwrap();

        let head = s.head().unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        let granted = s.participants(P).unwrap().into_iter().find(|p| p.user == bob).unwrap();
        assert_eq!(granted.plan_role, "wijkteam");
        assert!(granted.granted_at_seq > head, "a grant takes a log position of its own");
        assert_eq!(s.head().unwrap(), granted.granted_at_seq);

        s.add_participant(P, bob, "ggz").unwrap();
        let updated = s.participants(P).unwrap().into_iter().find(|p| p.user == bob).unwrap();
        assert_eq!((updated.plan_role.as_str(), updated.granted_at_seq), ("ggz", granted.granted_at_seq));

        assert!(s.is_participant(P, bob).unwrap());
        assert!(!s.is_participant(Q, bob).unwrap());
        assert_eq!(s.plans_of_user(bob).unwrap(), [P]);
        assert_eq!(s.plans_of_user(ann).unwrap(), [P, Q]);
        let readable = s.readable_documents(bob).unwrap();
        assert_eq!(readable, (0..4).map(|c| (doc(P, c), granted.granted_at_seq)).collect::<Vec<_>>());

        s.remove_participant(P, bob, 1).unwrap();
        assert!(!s.is_participant(P, bob).unwrap());
        assert!(s.readable_documents(bob).unwrap().is_empty());
        s.remove_participant(P, bob, 1).unwrap();

        assert_eq!(s.add_participant([0xCC; 16], bob, "x"), Err(StorageError::NotFound));
        assert_eq!(s.add_participant(P, UserId(9_999), "x"), Err(StorageError::NotFound));
    }

    pub fn push_is_idempotent_by_bundle_id_within_and_across_batches(s: &dyn Storage) {
        let a1 = DeviceId([1; 16]);
        let d = doc(P, 0);
        let first = s.push_batch(&[changes(d, 1, a1), changes(d, 2, a1), changes(d, 1, a1)]).unwrap();
        let (one, two) = (first[0].seq(), first[1].seq());
        assert_eq!(
            first,
            [
                PushOutcome::Appended { seq: one },
                PushOutcome::Appended { seq: two },
                PushOutcome::Duplicate { seq: one }
            ]
        );
        let second = s.push_batch(&[changes(d, 2, a1), changes(d, 3, a1)]).unwrap();
        assert_eq!(second[0], PushOutcome::Duplicate { seq: two });
        assert!(matches!(second[1], PushOutcome::Appended { seq } if seq > two));
        assert_eq!(s.document_stats(d).unwrap().bundles, 3);
        assert_eq!(s.head().unwrap(), second[1].seq());
        assert_eq!(s.push_batch(&[]).unwrap(), []);
    }

    /// A batch is appended in one statement on PostgreSQL: ids stored before, ids repeated in
    /// the batch and refused pushes take no position, and the new ones stay consecutive and
    /// in order.
    pub fn a_batch_appends_its_new_bundles_consecutively_around_stored_and_repeated_ids(s: &dyn Storage) {
        let (_, bob, a1, b1) = ann_and_bob_in_p(s);
        let d = doc(P, 0);
        let stored = push(s, &[changes(d, 1, a1)])[0];
        // A refused push (a snapshot nobody asked for) between them takes no position either.
        let mut batch = [1, 2, 1, 3, 2, 4].map(|id| changes(d, id, a1)).to_vec();
        batch.insert(2, snapshot(d, 20, a1, stored));
        let [new2, new3, new4] = [1, 2, 3].map(|n| PushOutcome::Appended { seq: stored + n });
        let [dup1, dup2] = [stored, stored + 1].map(|seq| PushOutcome::Duplicate { seq });
        let refused = PushOutcome::Refused { reason: REJECT_UNREQUESTED_SNAPSHOT };
        assert_eq!(s.push_batch(&batch).unwrap(), [dup1, new2, refused, dup1, new3, dup2, new4]);
        assert_eq!(s.head().unwrap(), stored + 3);
        let pulled = s.pull(bob, b1, 0, BIG).unwrap().bundles;
        let ids: Vec<_> = pulled.iter().map(|b| (b.seq, b.bundle_id)).collect();
        assert_eq!(ids, [1, 2, 3, 4].map(|n| (stored + n - 1, id16(n))), "each once, in order");

        // A requested snapshot twice in one batch is stored once and consumes its request once.
        let covers = s.head().unwrap();
        assert_eq!(s.request_snapshots(a1, &[d], covers, ASKED_AT).unwrap(), [d]);
        let twice = [snapshot(d, 10, a1, covers), changes(d, 11, a1), snapshot(d, 10, a1, covers)];
        let outcomes = s.push_batch(&twice).unwrap();
        let [first, second] = [covers + 1, covers + 2].map(|seq| PushOutcome::Appended { seq });
        assert_eq!(outcomes, [first, second, PushOutcome::Duplicate { seq: covers + 1 }]);
        assert!(s.snapshot_requests(a1, ASKED_AT).unwrap().is_empty(), "the request is consumed");
        assert_eq!(s.head().unwrap(), covers + 2);
    }

    pub fn push_is_idempotent_across_reopen(b: &mut dyn Backend) {
        let a1 = DeviceId([1; 16]);
        let pushed = push(b.storage(), &[changes(doc(P, 0), 1, a1), changes(doc(P, 1), 2, a1)]);
        b.reopen();
        let again = b.storage().push_batch(&[changes(doc(P, 1), 2, a1), changes(doc(P, 0), 1, a1)]).unwrap();
        assert_eq!(
            again,
            [PushOutcome::Duplicate { seq: pushed[1] }, PushOutcome::Duplicate { seq: pushed[0] }]
        );
        assert_eq!(b.storage().head().unwrap(), pushed[1]);
    }

    pub fn sequence_numbers_strictly_increase(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let a1 = device(s, ann, 1);
        assert_eq!(s.head().unwrap(), 0);
        let mut all = Vec::new();
        for round in 0..5u64 {
            let batch: Vec<NewBundle> =
                (0..4).map(|i| changes(doc(P, (i % 4) as u8), round * 10 + i, a1)).collect();
            all.extend(push(s, &batch));
            if round == 2 {
                s.register_plan(P, ann, a1, 1).unwrap();
            }
        }
        assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
        assert!(all[0] >= 1);
        assert_eq!(s.head().unwrap(), *all.last().unwrap());
    }

    pub fn pull_returns_only_readable_documents_never_the_pullers_own_bundles_in_seq_order(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let carol = user(s, "Carol");
        let (a1, a2, b1, c1) = (device(s, ann, 1), device(s, ann, 2), device(s, bob, 3), device(s, carol, 4));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.register_plan(Q, carol, c1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        let x = push(
            s,
            &[
                changes(doc(P, 0), 1, a1),
                changes(doc(P, 1), 2, b1),
                changes(doc(Q, 0), 3, c1),
                changes(doc(P, 3), 4, a2),
                changes(doc(Q, 2), 5, c1),
            ],
        );

        let head = s.head().unwrap();
        let expect = |user, device, want: Vec<u64>| {
            let batch = s.pull(user, device, 0, BIG).unwrap();
            assert_eq!(seqs(&batch), want);
            assert!(batch.complete);
            assert_eq!(batch.head, head);
            for b in &batch.bundles {
                assert_ne!(b.author, device);
            }
        };
        expect(ann, a1, vec![x[1], x[3]]);
        expect(ann, a2, vec![x[0], x[1]]);
        expect(bob, b1, vec![x[0], x[3]]);
        expect(carol, c1, vec![]);

        let got = s.pull(bob, b1, 0, BIG).unwrap().bundles;
        assert_eq!(got[0].document, doc(P, 0));
        assert_eq!(got[0].bundle_id, id16(1));
        assert_eq!((got[0].author, got[0].epoch, got[0].kind), (a1, 1, BundleKind::Changes));
        assert_eq!((got[0].bytes.len(), got[0].received_at, got[0].covers_seq), (100, 5_001, None));
    }

    pub fn a_non_participant_pulls_nothing(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let dave = user(s, "Dave");
        let a1 = device(s, ann, 1);
        let d1 = device(s, dave, 2);
        s.register_plan(P, ann, a1, 1).unwrap();
        push(s, &[changes(doc(P, 0), 1, a1), changes(doc(Q, 0), 2, a1)]);
        let batch = s.pull(dave, d1, 0, BIG).unwrap();
        assert!(batch.bundles.is_empty());
        assert!(batch.complete);
        assert_eq!(batch.head, s.head().unwrap());
        assert!(s.readable_documents(dave).unwrap().is_empty());
    }

    pub fn pages_respect_max_bytes_and_continue_where_they_stopped(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let a1 = device(s, ann, 1);
        let b1 = device(s, bob, 2);
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        let cursor = s.head().unwrap();
        let all = push(s, &(0..10).map(|i| changes(doc(P, (i % 2) as u8), i, a1)).collect::<Vec<_>>());

        let page = s.pull(bob, b1, cursor, 250).unwrap();
        assert_eq!(seqs(&page), all[..2]);
        assert!(!page.complete);
        assert_eq!(page.head, all[1]);
        let next = s.pull(bob, b1, page.head, 250).unwrap();
        assert_eq!(seqs(&next), all[2..4]);

        // A page holds at least one bundle, however small the limit.
        let (one_by_one, head) = sync(s, bob, b1, cursor, 0);
        assert_eq!(one_by_one, all);
        assert_eq!(head, s.head().unwrap());
        let big = push(s, &[bundle(doc(P, 0), 99, a1, 5_000)]);
        let page = s.pull(bob, b1, head, 1_000).unwrap();
        assert_eq!((seqs(&page), page.complete, page.head), (big.clone(), true, big[0]));
    }

    pub fn a_participant_added_later_receives_the_whole_history_on_its_next_pull(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let a1 = device(s, ann, 1);
        let b1 = device(s, bob, 2);
        s.register_plan(P, ann, a1, 1).unwrap();
        s.register_plan(Q, bob, b1, 1).unwrap();
        let history =
            push(s, &[changes(doc(P, 0), 1, a1), changes(doc(P, 2), 2, a1), changes(doc(P, 0), 3, a1)]);
        push(s, &[changes(doc(Q, 0), 4, b1)]);

        // Bob's phone is up to date with the log head when he is given access: the grant's
        // own position is what tells his next pull that the plan is new to it.
        let (nothing, cursor) = sync(s, bob, b1, 0, BIG);
        assert!(nothing.is_empty());
        assert_eq!(cursor, s.head().unwrap());
        s.add_participant(P, bob, "wijkteam").unwrap();
        let (got, cursor) = sync(s, bob, b1, cursor, BIG);
        // A history block goes document by document, each in log order.
        assert_eq!(got, [history[0], history[2], history[1]]);

        let later = push(s, &[changes(doc(P, 1), 5, a1)]);
        assert_eq!(sync(s, bob, b1, cursor, BIG).0, later);
    }

    /// The example in the module docs of `eenplan_server::storage`, seq for seq.
    pub fn the_worked_example_of_the_storage_docs_holds(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let (a1, a2, b1) = (device(s, ann, 1), device(s, ann, 2), device(s, bob, 3));
        let basis = doc(P, 0);
        s.register_plan(P, ann, a1, 1).unwrap();
        assert_eq!(s.head().unwrap(), 1);
        assert_eq!(push(s, &[changes(basis, 1, a1), changes(basis, 2, a1)]), [2, 3]);
        assert_eq!(push(s, &[requested_snapshot(s, basis, 3, a1, 3), changes(basis, 4, a1)]), [4, 5]);
        s.add_participant(P, bob, "wijkteam").unwrap();
        assert_eq!(s.head().unwrap(), 6);
        assert_eq!(push(s, &[changes(basis, 5, a1)]), [7]);

        let page = |user, device, since, max_bytes| {
            let batch = s.pull(user, device, since, max_bytes).unwrap();
            (seqs(&batch), batch.head, batch.complete)
        };
        assert_eq!(page(bob, b1, 0, BIG), (vec![4, 5, 7], 7, true));
        assert_eq!(s.pull(bob, b1, 0, BIG).unwrap().witnesses.iter().map(|w| w.seq).collect::<Vec<_>>(), [3]);
        // The snapshot travels with its witness (seq 3, A1's newest change it covers).
        assert_eq!(page(bob, b1, 0, 600), (vec![4, 5], 6, false));
        let (first, token, complete) = page(bob, b1, 0, 500);
        assert_eq!((first, complete), (vec![4], false));
        assert!(eenplan_protocol::sync::is_resume_token(token));
        assert_eq!(page(bob, b1, token, 500), (vec![5, 7], 7, true));
        assert_eq!(page(bob, b1, 6, BIG), (vec![7], 7, true));
        assert_eq!(page(ann, a1, 7, BIG), (vec![], 7, true));
        assert_eq!(page(ann, a2, 3, BIG), (vec![5, 7], 7, true));
    }

    pub fn a_big_history_block_is_split_across_pages_and_loses_and_repeats_nothing(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let a1 = device(s, ann, 1);
        let b1 = device(s, bob, 2);
        s.register_plan(P, ann, a1, 1).unwrap();
        // Two documents' histories and a snapshot of one of them, all in one block at Bob's
        // grant.
        let basis = push(s, &(0..4).map(|i| changes(doc(P, 0), i, a1)).collect::<Vec<_>>());
        let zorg = push(s, &(10..16).map(|i| changes(doc(P, 1), i, a1)).collect::<Vec<_>>());
        let a2 = device(s, ann, 3);
        let snap = push(s, &[requested_snapshot(s, doc(P, 1), 50, a2, zorg[2])]);
        s.add_participant(P, bob, "wijkteam").unwrap();
        let granted = s.head().unwrap();
        let after = push(s, &[changes(doc(P, 0), 20, a1)]);

        // 250 bytes: two changes, or the 400-byte snapshot alone (with its witnesses).
        let page = s.pull(bob, b1, 0, 250).unwrap();
        assert_eq!(seqs(&page), basis[..2]);
        assert!(!page.complete);
        assert!(eenplan_protocol::sync::is_resume_token(page.head), "a page inside a block resumes by token");
        let mut cursor = page.head;
        let mut pages = vec![seqs(&page)];
        loop {
            let page = s.pull(bob, b1, cursor, 250).unwrap();
            let total: usize = page.bundles.iter().chain(&page.witnesses).map(|b| b.bytes.len()).sum();
            assert!(total <= 250 || page.bundles.len() == 1, "over budget only with one unit: {total}");
            pages.push(seqs(&page));
            cursor = page.head;
            if page.complete {
                break;
            }
        }
        let mut want = basis.clone();
        want.extend([snap[0], zorg[3], zorg[4], zorg[5]]);
        want.extend(&after);
        assert_eq!(pages.concat(), want, "every page in order, nothing lost, nothing twice: {pages:?}");
        assert_eq!(cursor, s.head().unwrap());
        assert!(granted < cursor);

        // A retried page (its answer was lost) gives the same bundles again.
        let first = s.pull(bob, b1, 0, 250).unwrap();
        let again = s.pull(bob, b1, first.head, 250).unwrap();
        let retried = s.pull(bob, b1, first.head, 250).unwrap();
        assert_eq!(seqs(&again), seqs(&retried));
        assert_eq!(seqs(&again), basis[2..]);
    }

    /// Pages until `stop` says so; returns every bundle's seq and the last cursor.
    pub fn pull_until(
        s: &dyn Storage,
        user: UserId,
        device: DeviceId,
        mut cursor: u64,
        max_bytes: usize,
        mut stop: impl FnMut(&PullBatch) -> bool,
    ) -> (Vec<u64>, u64) {
        let mut got = Vec::new();
        for _ in 0..1_000 {
            let page = s.pull(user, device, cursor, max_bytes).unwrap();
            got.extend(seqs(&page));
            cursor = page.head;
            if page.complete || stop(&page) {
                return (got, cursor);
            }
        }
        panic!("pulling never stopped")
    }

    pub fn a_block_under_way_keeps_the_snapshots_it_started_with(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let (a1, a2, b1) = (device(s, ann, 1), device(s, ann, 2), device(s, bob, 3));
        s.register_plan(P, ann, a1, 1).unwrap();
        let basis = push(s, &(0..4).map(|i| changes(doc(P, 0), i, a1)).collect::<Vec<_>>());
        let zorg = push(s, &(10..13).map(|i| changes(doc(P, 1), i, a1)).collect::<Vec<_>>());
        let s1 = push(s, &[requested_snapshot(s, doc(P, 1), 50, a2, zorg[2])]);
        let veiligheid = push(s, &(20..26).map(|i| changes(doc(P, 2), i, a1)).collect::<Vec<_>>());
        s.add_participant(P, bob, "wijkteam").unwrap();

        // Pages of two changes, or the zorg snapshot with its witness: stop inside veiligheid.
        let (mut got, cursor) =
            pull_until(s, bob, b1, 0, 250, |page| page.bundles.iter().any(|b| b.seq == veiligheid[0]));
        assert!(eenplan_protocol::sync::is_resume_token(cursor));
        // Meanwhile zorg moves on, and a newer snapshot covers that.
        let later = push(s, &[changes(doc(P, 1), 13, a1)]);
        push(s, &[requested_snapshot(s, doc(P, 1), 51, a2, later[0])]);
        let (rest, head) = sync(s, bob, b1, cursor, 250);
        got.extend(rest);

        let mut want = basis.clone();
        want.push(s1[0]);
        want.extend(&veiligheid);
        want.extend(&later);
        assert_eq!(got, want, "the block keeps its zorg snapshot; the change after the grant follows it");
        assert_eq!(head, s.head().unwrap());
    }

    pub fn a_block_under_way_survives_a_regrant_and_a_token_of_another_device_starts_over(s: &dyn Storage) {
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL), ("ggz", &["basis"], &["basis"])]), 1).unwrap();
        let ann = user(s, "Ann");
        let gijs = user_with_role(s, "Gijs", "ggz");
        let (a1, g1, g2) = (device(s, ann, 1), device(s, gijs, 2), device(s, gijs, 3));
        s.register_plan(P, ann, a1, 1).unwrap();
        let basis = push(s, &(0..6).map(|i| changes(doc(P, 0), i, a1)).collect::<Vec<_>>());
        let zorg = push(s, &(10..14).map(|i| changes(doc(P, 1), i, a1)).collect::<Vec<_>>());
        s.add_participant(P, gijs, "ggz").unwrap();
        let (mut got, cursor) = s.pull(gijs, g1, 0, 250).map(|p| (seqs(&p), p.head)).unwrap();
        assert_eq!(got, basis[..2]);
        assert!(eenplan_protocol::sync::is_resume_token(cursor));

        // Another device presenting that token starts from the beginning: nothing is lost.
        assert_eq!(sync(s, gijs, g2, cursor, BIG).0, basis);
        // So does a token nobody was given.
        let unknown = eenplan_protocol::sync::RESUME_TOKEN_BIT | 999_999;
        assert_eq!(sync(s, gijs, g2, unknown, BIG).0, basis);

        // A policy that lets ggz read zorg too moves the plan to a new grant while g1 is inside
        // its block: the plan's history comes again (redundant, never missing), zorg with it.
        s.set_policy(&policy(3, &[("wijkteam", ALL, ALL), ("ggz", &["basis", "zorg"], &["basis"])]), 2)
            .unwrap();
        got.extend(sync(s, gijs, g1, cursor, 250).0);
        let held: BTreeSet<u64> = got.iter().copied().collect();
        assert!(basis.iter().chain(&zorg).all(|seq| held.contains(seq)), "{got:?}");
    }

    pub fn a_snapshot_makes_a_from_scratch_pull_return_the_snapshot_and_the_tail_only(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let a1 = device(s, ann, 1);
        let a2 = device(s, ann, 2);
        let b1 = device(s, bob, 3);
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        let c = push(s, &(1..=5).map(|i| changes(doc(P, 0), i, a1)).collect::<Vec<_>>());
        let (_, follower_cursor) = sync(s, bob, b1, 0, BIG);
        let snap = push(s, &[requested_snapshot(s, doc(P, 0), 50, a2, c[2])]);
        let tail = push(s, &[changes(doc(P, 0), 6, a1), changes(doc(P, 0), 7, a1)]);

        // A new device of Bob's: the snapshot first, then the changes after what it covers.
        let b2 = device(s, bob, 4);
        let batch = s.pull(bob, b2, 0, BIG).unwrap();
        assert_eq!(seqs(&batch), [snap[0], c[3], c[4], tail[0], tail[1]]);
        assert!(batch.bundles[0].kind.is_snapshot());
        assert_eq!(batch.bundles[0].covers_seq, Some(c[2]));

        // A device that follows the document gets the changes, not the compaction.
        assert_eq!(sync(s, bob, b1, follower_cursor, BIG).0, tail);
        // The snapshot's author needs neither its snapshot nor what it replaces.
        assert_eq!(sync(s, ann, a2, 0, BIG).0, [c[3], c[4], tail[0], tail[1]]);
    }

    pub fn a_device_far_behind_gets_the_snapshot_instead_of_hundreds_of_changes(s: &dyn Storage) {
        let n = SNAPSHOT_SHORTCUT_CHANGES;
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let a1 = device(s, ann, 1);
        let a2 = device(s, ann, 2);
        let b1 = device(s, bob, 3);
        s.register_plan(P, ann, a1, 1).unwrap();
        s.register_plan(Q, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        s.add_participant(Q, bob, "wijkteam").unwrap();
        let (_, cursor) = sync(s, bob, b1, 0, BIG);

        let before = push(s, &[changes(doc(Q, 1), 1, a1), changes(doc(Q, 1), 2, a1)]);
        // P/basis: n + 1 changes Bob lacks, all covered by a snapshot.
        let many = push(s, &(0..=n).map(|i| changes(doc(P, 0), 1_000 + i, a1)).collect::<Vec<_>>());
        let snap = push(s, &[requested_snapshot(s, doc(P, 0), 50, a2, *many.last().unwrap())]);
        // Q/basis: exactly n covered changes: cheaper to send them than a snapshot.
        let few = push(s, &(0..n).map(|i| changes(doc(Q, 0), 5_000 + i, a1)).collect::<Vec<_>>());
        push(s, &[requested_snapshot(s, doc(Q, 0), 51, a2, *few.last().unwrap())]);
        let tail = push(s, &[changes(doc(P, 0), 7, a1)]);

        let (got, _) = sync(s, bob, b1, cursor, BIG);
        let mut want = before.clone();
        want.push(snap[0]);
        want.extend(&few);
        want.extend(&tail);
        assert_eq!(got, want);

        // Pages that stop before the snapshot make the next page choose it again. A page that
        // stops right after it leaves the cursor inside what it covers, so up to n of those
        // changes follow although the snapshot holds them: redundant, never missing.
        let (paged, _) = sync(s, bob, b1, cursor, 150);
        assert_eq!(paged[..3], [before[0], before[1], snap[0]]);
        assert!(!paged.contains(&many[0]));
        assert!(paged.iter().filter(|seq| many.contains(seq)).count() <= n as usize);
        assert_eq!(paged.iter().collect::<BTreeSet<_>>().len(), paged.len(), "nothing twice");
        assert!(few.iter().chain(&tail).all(|seq| paged.contains(seq)));
    }

    pub fn document_stats_count_the_bundles_and_the_tail_after_the_latest_snapshot(s: &dyn Storage) {
        let a1 = DeviceId([1; 16]);
        let d = doc(P, 1);
        let empty = s.document_stats(d).unwrap();
        assert_eq!((empty.bundles, empty.bundles_since_snapshot, empty.latest_snapshot_covers), (0, 0, None));
        let c = push(s, &(0..6).map(|i| changes(d, i, a1)).collect::<Vec<_>>());
        push(s, &[changes(doc(P, 2), 100, a1)]);
        let stats = s.document_stats(d).unwrap();
        assert_eq!((stats.bundles, stats.bundles_since_snapshot, stats.latest_snapshot_covers), (6, 6, None));
        // Change bundles weigh 100 bytes each in these fixtures, snapshots 400.
        assert_eq!((stats.bytes_since_snapshot, stats.latest_snapshot_bytes), (600, None));
        push(s, &[requested_snapshot(s, d, 50, a1, c[3]), changes(d, 7, a1)]);
        let stats = s.document_stats(d).unwrap();
        assert_eq!(
            (stats.bundles, stats.bundles_since_snapshot, stats.latest_snapshot_covers),
            (8, 3, Some(c[3]))
        );
        assert_eq!((stats.bytes_since_snapshot, stats.latest_snapshot_bytes), (300, Some(400)));
    }

    /// The tails a sync answer weighs for snapshots are the documents' own statistics after
    /// every kind of write to the log (both backends keep them in a table of their own,
    /// which their triggers keep in step with the bundles).
    pub fn the_tails_an_answer_weighs_are_the_documents_statistics_after_every_write_to_the_log(
        s: &dyn Storage,
    ) {
        use eenplan_server::storage::{MemberErasure, MembershipUpdate};
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL)]), 1).unwrap();
        let ann = user(s, "Ann");
        let (a1, a2) = (device(s, ann, 1), device(s, ann, 2));
        s.register_chartered_plan(&charter(P, ann, a1)).unwrap();
        s.register_plan(Q, ann, a1, 1).unwrap();
        let (p0, p1, q0) = (doc(P, 0), doc(P, 1), doc(Q, 0));
        mint(s, &[p0, p1, q0], a1);
        seal(s, a1, &[envelope(a2, p0, 1, 1), envelope(a2, p1, 1, 2), envelope(a2, q0, 1, 3)]);
        let check = |when: &str, held: &[DocumentId]| {
            for device in [a1, a2] {
                let tails = s.held_tails(device).unwrap();
                let documents: Vec<DocumentId> = tails.iter().map(|t| t.document).collect();
                assert_eq!(documents, held, "{when}: the documents {device:?} holds a key of");
                for t in tails {
                    let stats = s.document_stats(t.document).unwrap();
                    assert_eq!(t.tail, stats.tail(), "{when}: the tail of {:?}", t.document);
                }
            }
        };
        let mut held = [p0, p1, q0];
        held.sort();
        check("before any bundle", &held);

        let c = push(s, &(0..5).map(|i| changes(p0, i, a1)).collect::<Vec<_>>());
        push(s, &[changes(p1, 10, a1)]);
        push(s, &[changes(p0, 11, a2), changes(q0, 12, a2)]);
        check("after appends alone and in a batch", &held);
        assert_eq!(s.held_tails(a1).unwrap().iter().map(|t| t.tail.bundles_since_snapshot).sum::<u64>(), 8);

        push(s, &[requested_snapshot(s, p0, 50, a2, c[3])]);
        check("after a snapshot", &held);
        push(s, &[requested_snapshot(s, p0, 51, a1, c[1])]);
        check("after an older snapshot than the newest", &held);
        push(s, &[changes(p0, 13, a1), requested_snapshot(s, p0, 52, a2, c[4]), changes(p0, 14, a1)]);
        check("after a snapshot between changes in one batch", &held);
        push(s, &[changes(q0, 15, a1)]);
        check("after one more change", &held);

        // Snapshots of two documents between changes of three in one batch, of sizes of their
        // own; then a second snapshot covering the same position, which is the newer.
        let sized = |document, id, author, covers, size| NewBundle {
            kind: BundleKind::Snapshot { covers },
            covers_seq: Some(covers),
            ..bundle(document, id, author, size)
        };
        let head = s.head().unwrap();
        assert_eq!(s.request_snapshots(a2, &[p1, q0], head, ASKED_AT).unwrap(), [p1, q0]);
        push(
            s,
            &[
                changes(p0, 17, a1),
                sized(p1, 53, a2, head, 300),
                changes(q0, 18, a1),
                sized(q0, 54, a2, head, 700),
                changes(p1, 19, a1),
            ],
        );
        check("after snapshots of two documents between changes of three in one batch", &held);
        assert_eq!(s.request_snapshots(a1, &[q0], head, ASKED_AT).unwrap(), [q0]);
        push(s, &[sized(q0, 55, a1, head, 500)]);
        check("after a second snapshot covering the same position", &held);
        let q0_tail = s.held_tails(a1).unwrap().into_iter().find(|t| t.document == q0).unwrap().tail;
        assert_eq!((q0_tail.latest_snapshot_bytes, q0_tail.bundles_since_snapshot), (Some(500), 1));

        // A member's erasure deletes the document's bundles before its base.
        let erasure = MembershipUpdate {
            erasure: Some(MemberErasure {
                document: p0,
                epoch: 2,
                covers: s.head().unwrap(),
                base: NewBundle { epoch: 2, ..snapshot(p0, 60, a1, s.head().unwrap()) },
                commitment: commitment(p0, 2, Some(a1), 2),
                envelopes: vec![envelope(a1, p0, 2, 4)],
            }),
            ..entry(P, a1)
        };
        s.append_erasure(&erasure).unwrap();
        assert_eq!(s.document_stats(p0).unwrap().bundles, 1, "the base alone");
        seal(s, a1, &[envelope(a2, p0, 2, 5)]);
        check("after a member's erasure", &held);
        push(s, &[NewBundle { epoch: 2, ..changes(p0, 16, a1) }]);
        check("after a change at the new epoch", &held);
    }

    pub fn a_snapshot_request_cannot_cover_more_than_the_log_holds(s: &dyn Storage) {
        let a1 = DeviceId([1; 16]);
        let c = push(s, &[changes(doc(P, 0), 1, a1)]);
        assert!(matches!(
            s.request_snapshots(a1, &[doc(P, 0)], c[0] + 1, ASKED_AT),
            Err(StorageError::InvalidState(_))
        ));
        assert!(s.snapshot_requests(a1, ASKED_AT).unwrap().is_empty());
        let refused = s.push_batch(&[snapshot(doc(P, 0), 2, a1, 1_000_000)]).unwrap();
        assert_eq!(refused, [PushOutcome::Refused { reason: REJECT_UNREQUESTED_SNAPSHOT }]);
        assert_eq!(s.document_stats(doc(P, 0)).unwrap().latest_snapshot_covers, None);
    }

    pub fn a_snapshot_is_stored_only_against_its_authors_request_for_exactly_its_covers_and_once(
        s: &dyn Storage,
    ) {
        let (_, bob, a1, b1) = ann_and_bob_in_p(s);
        let c = push(s, &[changes(doc(P, 0), 1, a1), changes(doc(P, 0), 2, a1)]);
        let covers = c[1];
        let unrequested = PushOutcome::Refused { reason: REJECT_UNREQUESTED_SNAPSHOT };

        assert_eq!(s.push_batch(&[snapshot(doc(P, 0), 10, a1, covers)]).unwrap(), [unrequested]);
        assert_eq!(s.request_snapshots(a1, &[doc(P, 0)], covers, ASKED_AT).unwrap(), [doc(P, 0)]);
        // Another position, another document, another device: refused, and the request stays.
        let others = [
            snapshot(doc(P, 0), 11, a1, c[0]),
            snapshot(doc(P, 1), 12, a1, covers),
            snapshot(doc(P, 0), 13, b1, covers),
        ];
        assert_eq!(s.push_batch(&others).unwrap(), [unrequested; 3]);
        assert_eq!(s.snapshot_requests(a1, ASKED_AT).unwrap(), [(doc(P, 0), covers)]);

        // The requested one is stored, once: a retry finds it, a second snapshot is refused.
        let seq = push(s, &[snapshot(doc(P, 0), 14, a1, covers)])[0];
        assert!(s.snapshot_requests(a1, ASKED_AT).unwrap().is_empty(), "the request is consumed");
        assert_eq!(
            s.push_batch(&[snapshot(doc(P, 0), 14, a1, covers)]).unwrap(),
            [PushOutcome::Duplicate { seq }]
        );
        assert_eq!(s.push_batch(&[snapshot(doc(P, 0), 15, a1, covers)]).unwrap(), [unrequested]);

        // A request is honoured for SNAPSHOT_REQUEST_TTL_MS only.
        s.request_snapshots(a1, &[doc(P, 0)], covers, ASKED_AT).unwrap();
        let late = NewBundle {
            received_at: ASKED_AT + SNAPSHOT_REQUEST_TTL_MS + 1,
            ..snapshot(doc(P, 0), 16, a1, covers)
        };
        assert_eq!(s.push_batch(&[late]).unwrap(), [unrequested]);
        assert_eq!(s.document_stats(doc(P, 0)).unwrap().latest_snapshot_covers, Some(covers));
        assert_eq!(
            s.pull(bob, b1, 0, BIG).unwrap().bundles.iter().filter(|b| b.kind.is_snapshot()).count(),
            1
        );
    }

    pub fn snapshot_requests_are_bounded_per_device_one_device_at_a_time_and_expire(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let (a1, a2) = (device(s, ann, 1), device(s, ann, 2));
        let documents: Vec<DocumentId> =
            (0..5u8).flat_map(|plan| (0..4).map(move |c| doc([plan; 16], c))).collect();
        let first = s.request_snapshots(a1, &documents, 0, ASKED_AT).unwrap();
        assert_eq!(first, documents[..MAX_SNAPSHOT_REQUESTS_PER_DEVICE]);
        // While a1 is asked, a2 is asked only for the others.
        let second = s.request_snapshots(a2, &documents, 0, ASKED_AT).unwrap();
        assert_eq!(second, documents[MAX_SNAPSHOT_REQUESTS_PER_DEVICE..]);
        // Asking a1 again for one of its documents renews that request; the bound still holds.
        push(s, &[changes(documents[0], 1, a1)]);
        let head = s.head().unwrap();
        assert_eq!(s.request_snapshots(a1, &documents[..1], head, ASKED_AT + 1).unwrap(), documents[..1]);
        let outstanding = s.snapshot_requests(a1, ASKED_AT + 1).unwrap();
        assert_eq!(outstanding.len(), MAX_SNAPSHOT_REQUESTS_PER_DEVICE);
        assert_eq!(outstanding[0], (documents[0], head));
        assert!(s.request_snapshots(a1, &documents[16..], 0, ASKED_AT + 1).unwrap().is_empty());

        // Once they expire, another device may be asked.
        let later = ASKED_AT + SNAPSHOT_REQUEST_TTL_MS + 10;
        assert!(s.snapshot_requests(a1, later).unwrap().is_empty());
        assert_eq!(s.request_snapshots(a2, &documents[..1], head, later).unwrap(), documents[..1]);
    }

    pub fn witnesses_are_each_authors_newest_change_up_to_what_the_snapshot_covers(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let carol = user(s, "Carol");
        let (a1, a2, b1, c1) = (device(s, ann, 1), device(s, ann, 2), device(s, bob, 3), device(s, carol, 4));
        let d1 = device(s, bob, 5);
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        let basis = doc(P, 0);
        let x = push(
            s,
            &[
                changes(basis, 1, a1),
                changes(basis, 2, b1),
                changes(doc(P, 1), 3, b1),
                changes(basis, 4, a1),
                changes(basis, 5, a2),
                changes(doc(P, 1), 6, a2),
            ],
        );
        let snap = push(s, &[requested_snapshot(s, basis, 50, a2, x[5])]);
        // After what the snapshot covers: no witness of it, whoever wrote it.
        push(s, &[changes(basis, 7, b1), changes(basis, 8, d1), changes(basis, 9, a1)]);

        s.add_participant(P, carol, "wijkteam").unwrap();
        let page = s.pull(carol, c1, 0, BIG).unwrap();
        assert_eq!(page.bundles[0].seq, snap[0]);
        let witnesses: Vec<(DeviceId, u64)> = page.witnesses.iter().map(|w| (w.author, w.seq)).collect();
        assert_eq!(witnesses, [(a1, x[3]), (a2, x[4]), (b1, x[1])], "in author order, basis only");
        assert!(page.witnesses.iter().all(|w| w.kind == BundleKind::Changes && !w.bytes.is_empty()));
        // Nothing else carries witnesses.
        let follower = s.pull(bob, b1, x[5], BIG).unwrap();
        assert!(follower.bundles.iter().all(|b| !b.kind.is_snapshot()) && follower.witnesses.is_empty());
    }

    pub fn history_requests_page_a_readable_documents_whole_change_log_within_the_budget(s: &dyn Storage) {
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL), ("ggz", &["basis"], &["basis"])]), 1).unwrap();
        let ann = user(s, "Ann");
        let gijs = user_with_role(s, "Gijs", "ggz");
        let (a1, g1) = (device(s, ann, 1), device(s, gijs, 2));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.register_plan(Q, ann, a1, 1).unwrap();
        s.add_participant(P, gijs, "ggz").unwrap();
        let basis = doc(P, 0);
        let mut log = push(s, &(0..5).map(|i| changes(basis, i, a1)).collect::<Vec<_>>());
        log.extend(push(s, &[changes(basis, 10, g1)]));
        push(s, &[changes(doc(P, 1), 11, a1), changes(doc(Q, 0), 12, a1)]);
        push(s, &[requested_snapshot(s, basis, 50, a1, log[3])]);
        log.extend(push(s, &[changes(basis, 13, a1)]));
        let head = s.head().unwrap();

        // Nothing to pull: the history takes the page, two changes at a time.
        let ask = |after: u64| {
            let mut request = PullRequest::new(gijs, g1, head, 250);
            request.history = vec![
                HistoryRequest { document: doc(P, 1), after: 0 },
                HistoryRequest { document: doc(Q, 0), after: 0 },
                HistoryRequest { document: basis, after },
                HistoryRequest { document: basis, after: 0 },
            ];
            s.pull_page(&request).unwrap()
        };
        let (mut after, mut got, mut pages) = (0, Vec::new(), 0);
        loop {
            let page = ask(after);
            assert_eq!(page.history.len(), 1, "unreadable documents and repeats get no page");
            let history = &page.history[0];
            assert_eq!(history.document, basis);
            assert!(history.bundles.len() <= 2 && !history.bundles.is_empty());
            assert!(history.bundles.iter().all(|b| b.kind == BundleKind::Changes && b.document == basis));
            got.extend(history.bundles.iter().map(|b| b.seq));
            assert_eq!(history.through, *got.last().unwrap());
            after = history.through;
            pages += 1;
            if history.complete {
                break;
            }
        }
        assert_eq!(got, log, "every change once, in order, Gijs's own included, no snapshot");
        assert_eq!(pages, 4);
        let done = ask(after);
        assert_eq!(
            (done.history[0].bundles.len(), done.history[0].through, done.history[0].complete),
            (0, after, true)
        );
        let beyond = ask(u64::MAX);
        assert_eq!((beyond.history[0].through, beyond.history[0].complete), (u64::MAX, true));

        // The pull goes first: a page it fills leaves the history for the next round.
        let mut request = PullRequest::new(gijs, g1, 0, 250);
        request.history = vec![HistoryRequest { document: basis, after: 0 }];
        let page = s.pull_page(&request).unwrap();
        assert!(page.bundles[0].kind.is_snapshot(), "the snapshot with its witnesses fills the page");
        assert_eq!(
            (page.history[0].bundles.len(), page.history[0].through, page.history[0].complete),
            (0, 0, false)
        );
    }

    pub fn envelopes_go_ahead_of_the_log_on_a_cursor_of_their_own_each_once(s: &dyn Storage) {
        let (_, bob, a1, b1) = ann_and_bob_in_p(s);
        let mut put = Vec::new();
        for epoch in 1..=12u32 {
            push(s, &[changes(doc(P, 0), u64::from(epoch), a1)]);
            let envelope = envelope(b1, doc(P, (epoch % 4) as u8), epoch, epoch as u8);
            seal(s, a1, std::slice::from_ref(&envelope));
            put.push(envelope);
        }
        // 250 bytes: two changes, or a change and an envelope (120 bytes each), or two envelopes.
        // Every envelope is stored after the bundle it opens, yet all of them go first.
        let (mut cursor, mut mailbox, mut got, mut bundles) = (0, 0, Vec::new(), 0);
        loop {
            let mut request = PullRequest::new(bob, b1, cursor, 250);
            request.max_envelopes = 1;
            request.envelopes_after = mailbox;
            let page = s.pull_page(&request).unwrap();
            assert!(page.envelopes.len() <= 1);
            assert!(page.bundles.len() + page.envelopes.len() <= 2);
            got.extend(page.envelopes);
            if !page.bundles.is_empty() {
                assert_eq!(got.len(), put.len(), "a bundle came before every key did");
            }
            bundles += page.bundles.len();
            cursor = page.head;
            mailbox = page.envelopes_through;
            if page.complete {
                break;
            }
        }
        assert_eq!(got, put, "every envelope once, in the order stored");
        assert_eq!(bundles, 12);
        let mut again = PullRequest::new(bob, b1, cursor, BIG);
        again.envelopes_after = mailbox;
        assert!(s.pull_page(&again).unwrap().envelopes.is_empty());

        // While keys are still due, a history request gets an empty page that is not complete
        // (a missing page would read as "not readable" and the device would drop its request).
        let mut keys_first = PullRequest::new(bob, b1, cursor, 250);
        keys_first.max_envelopes = 1;
        keys_first.envelopes_after = 0;
        keys_first.history = vec![HistoryRequest { document: doc(P, 0), after: 0 }];
        let page = s.pull_page(&keys_first).unwrap();
        assert_eq!((page.envelopes.len(), page.bundles.len(), page.complete), (1, 0, false));
        assert_eq!(page.history.len(), 1);
        assert!(page.history[0].bundles.is_empty() && !page.history[0].complete);

        // A mailbox cursor beyond the log is none the server gave: the mailbox starts over.
        let mut beyond = PullRequest::new(bob, b1, cursor, BIG);
        beyond.envelopes_after = u64::MAX;
        assert_eq!(s.pull_page(&beyond).unwrap().envelopes, put);
    }

    /// The query `answer` is compared against: the same pull, membership and versions.
    fn answer_query(user: UserId, device: DeviceId, since: u64, max_bytes: usize) -> AnswerQuery {
        AnswerQuery {
            pull: PullRequest::new(user, device, since, max_bytes),
            membership_after: 0,
            membership_limit: (10, BIG),
            policy_after: 0,
            audit_key_after: 0,
            now: ASKED_AT,
        }
    }

    /// The missing envelopes a sync answer lists for `device`, and what the single reads
    /// report for the keys it holds of documents its user reads, key by key: they must agree.
    fn missing_both_ways(
        s: &dyn Storage,
        user: UserId,
        device: DeviceId,
    ) -> [Vec<(DocumentId, u32, DeviceId)>; 2] {
        let answer = s.answer(&answer_query(user, device, 0, BIG)).unwrap();
        let readable: HashSet<DocumentId> =
            s.readable_documents(user).unwrap().into_iter().map(|(d, _)| d).collect();
        let held: Vec<_> =
            s.held_keys(device).unwrap().into_iter().filter(|(d, _)| readable.contains(d)).collect();
        [answer.missing_envelopes, s.devices_missing_envelopes(&held).unwrap()]
    }

    pub fn a_sync_answer_and_a_users_access_read_in_one_transaction_what_the_single_reads_report(
        s: &dyn Storage,
    ) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let a1 = device(s, ann, 1);
        let b1 = device(s, bob, 2);
        let b2 = device(s, bob, 3);
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        let (d0, d1) = (doc(P, 0), doc(P, 1));
        mint(s, &[d0, d1], a1);
        seal(s, a1, &[envelope(b1, d0, 1, 1), envelope(b1, d1, 1, 2)]);
        let mut ids = 0..;
        let mut log: Vec<NewBundle> = Vec::new();
        for _ in 0..30 {
            log.push(changes(d0, ids.next().unwrap(), a1));
        }
        push(s, &log);
        let org = org(s);
        let key = |version, byte| AuditKeyRecord { org, version, signed: vec![byte; 100], stored_at: 9 };
        assert!(s.put_audit_key(&key(1, 1)).unwrap());
        assert!(s.put_audit_key(&key(2, 2)).unwrap());

        let query = answer_query(bob, b1, 0, BIG);
        let answer = s.answer(&query).unwrap();
        assert_eq!(answer.batch, s.pull_page(&query.pull).unwrap(), "the pull page is the pull's");
        assert!(answer.batch.complete && answer.membership.complete);
        assert_eq!(answer.membership, s.membership_for(bob, 0, (10, BIG)).unwrap());
        let readable: HashSet<DocumentId> =
            s.readable_documents(bob).unwrap().into_iter().map(|(d, _)| d).collect();
        let held: Vec<_> =
            s.held_keys(b1).unwrap().into_iter().filter(|(d, _)| readable.contains(d)).collect();
        assert_eq!(held, [(d0, 1), (d1, 1)]);
        assert_eq!(answer.missing_envelopes, s.devices_missing_envelopes(&held).unwrap());
        assert!(answer.missing_envelopes.contains(&(d0, 1, b2)), "Bob's second device lacks the key");
        let [listed, key_by_key] = missing_both_ways(s, ann, a1);
        assert_eq!(listed, key_by_key, "the minter holds its keys without an envelope");
        assert!(listed.contains(&(d1, 1, b2)));
        assert_eq!(
            answer.commitments,
            [d0, d1].map(|d| s.commitment(d, 1).unwrap().unwrap().signed),
            "each envelope's commitment, once"
        );
        assert_eq!(answer.unminted, s.unminted_documents(bob).unwrap());
        assert_eq!(answer.unminted, [doc(P, 2), doc(P, 3)]);
        assert_eq!(answer.rotations, s.rotations_for(bob).unwrap());
        assert_eq!(answer.audit_through, s.audit_through(b1).unwrap());
        assert_eq!(answer.policy, Some(open_policy().signed), "the device holds no policy yet");
        assert_eq!(answer.audit_key, Some(vec![2; 100]), "the newest audit key");
        // The tail of d0 is not long enough to want a snapshot yet; d1 has no tail.
        assert!(!s.document_stats(d0).unwrap().wants_snapshot());
        assert!(answer.snapshot_candidates.is_empty());

        // What the user may do, read in one transaction too.
        let access = s.user_access(bob, &[d1, doc(P, 2), doc(Q, 0), d0, d1]).unwrap().unwrap();
        assert_eq!(access.user, s.user(bob).unwrap().unwrap());
        let org = access.user.org;
        let named = s.orgs().unwrap().into_iter().find(|o| o.id == org).unwrap().name;
        assert_eq!(access.organisation, named);
        let (user, organisation) = s.user_with_organisation(bob).unwrap().unwrap();
        assert_eq!(
            (user, organisation),
            (access.user.clone(), named.clone()),
            "who a sync without uploads is"
        );
        assert_eq!(s.user_with_organisation(UserId(bob.0 + 1_000)).unwrap(), None, "an unknown user");
        assert_eq!(access.policy.map(|p| p.signed.clone()), s.policy().unwrap().map(|p| p.signed));
        assert_eq!(access.plan_levels, s.plan_levels_of_user(bob).unwrap());
        assert_eq!(access.readable, readable_ids(s, bob));
        assert_eq!(access.readable.len(), 4, "all four compartments of P");
        assert_eq!(
            access.epochs,
            [(d1, 1), (doc(P, 2), 0), (d0, 1), (d1, 1)],
            "each readable document's, in the order asked (Q is not Bob's plan)"
        );
        assert_eq!(s.user_access(bob, &[]).unwrap().unwrap().epochs, []);
        assert!(s.user_access(UserId(bob.0 + 1_000), &[d0]).unwrap().is_none(), "an unknown user");

        // What the device holds already is not read again.
        let held_versions = AnswerQuery { policy_after: 1, audit_key_after: 2, ..query.clone() };
        let answer = s.answer(&held_versions).unwrap();
        assert_eq!((answer.policy, answer.audit_key), (None, None));

        // A long tail is a snapshot candidate, but only in a complete answer.
        let long: Vec<NewBundle> = (0..1_000).map(|_| changes(d0, ids.next().unwrap(), a1)).collect();
        push(s, &long);
        assert!(s.document_stats(d0).unwrap().wants_snapshot());
        assert_eq!(s.answer(&query).unwrap().snapshot_candidates, [d0]);
        // A snapshot ends the tail; the changes after it make a new one.
        let head = s.head().unwrap();
        push(s, &[requested_snapshot(s, d0, ids.next().unwrap(), a1, head)]);
        assert!(s.answer(&query).unwrap().snapshot_candidates.is_empty(), "the tail is empty");
        let after: Vec<NewBundle> = (0..1_001).map(|_| changes(d0, ids.next().unwrap(), a1)).collect();
        push(s, &after);
        assert_eq!(s.answer(&query).unwrap().snapshot_candidates, [d0], "the tail after the snapshot");
        // The smallest page the server allows: far less than the 1,030 bundles of d0. The
        // tail wants a snapshot, but an incomplete answer asks for none.
        let small_page = answer_query(bob, b1, 0, eenplan_protocol::sync::MIN_PAGE_BYTES as usize);
        let answer = s.answer(&small_page).unwrap();
        assert!(!answer.batch.complete);
        assert!(answer.snapshot_candidates.is_empty(), "a snapshot covers only a complete answer's head");
        assert_eq!(answer.batch, s.pull_page(&small_page.pull).unwrap());
        // A key of an older epoch cannot seal a snapshot the current readers open.
        assert_eq!(commit(s, &commitment(d0, 2, None, 9)), CommitmentOutcome::Stored);
        assert!(s.answer(&query).unwrap().snapshot_candidates.is_empty(), "Bob's key is of epoch 1");
    }

    /// A user's access across plans: what the role reads at each plan's level, nothing of a
    /// plan the user is not in, and each asked document's epoch only where it is read.
    pub fn a_users_access_holds_what_the_role_reads_at_each_plans_level_across_plans(s: &dyn Storage) {
        let roles: &[(&str, &[&str], &[&str])] =
            &[("wijkteam", ALL, ALL), ("politie", &["basis", "justitie"], &["basis", "justitie"])];
        let zvh = "zorg_en_veiligheidshuis";
        s.set_policy(&policy_with_level(2, roles, zvh, ("politie", &["basis", "zorg"])), 1).unwrap();
        let ann = user(s, "Ann");
        let piet = user_with_role(s, "Piet", "politie");
        let a1 = device(s, ann, 1);
        const R: PlanId = [0xC3; 16];
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, piet, "politie").unwrap();
        assert!(s.register_chartered_plan(&charter(Q, ann, a1)).unwrap());
        let escalate = eenplan_server::storage::MembershipUpdate {
            level: zvh.into(),
            add: vec![(piet, "politie".into())],
            ..entry(Q, a1)
        };
        s.append_membership(&escalate).unwrap();
        s.register_plan(R, ann, a1, 2).unwrap();
        let documents: Vec<DocumentId> =
            [P, Q, R].iter().flat_map(|&p| (0..4).map(move |c| doc(p, c))).collect();
        mint(s, &documents, a1);
        // Bob leaving queues P's rotation; basis moves to epoch 2.
        let bob = user(s, "Bob");
        s.add_participant(P, bob, "wijkteam").unwrap();
        s.remove_participant(P, bob, 10).unwrap();
        rotate_to_epoch_2(s, doc(P, 0), vec![envelope(a1, doc(P, 0), 2, 5)], 20);

        let asked = [doc(P, 1), doc(Q, 1), doc(R, 0), doc(P, 0), doc(Q, 3), doc(P, 3)];
        let access = s.user_access(piet, &asked).unwrap().unwrap();
        assert_eq!(access.user, s.user(piet).unwrap().unwrap());
        assert_eq!(access.plan_levels, s.plan_levels_of_user(piet).unwrap());
        assert_eq!(access.plan_levels, [(P, "regulier".to_string()), (Q, zvh.to_string())]);
        assert_eq!(access.readable, readable_ids(s, piet));
        assert_eq!(
            access.readable,
            [doc(P, 0), doc(P, 3), doc(Q, 0), doc(Q, 1)],
            "basis and justitie; at the ZVH basis and zorg"
        );
        assert_eq!(
            access.epochs,
            [(doc(Q, 1), 1), (doc(P, 0), 2), (doc(P, 3), 1)],
            "zorg of P, basis of R and justitie of Q are not Piet's"
        );
    }

    fn readable_ids(s: &dyn Storage, user: UserId) -> Vec<DocumentId> {
        s.readable_documents(user).unwrap().into_iter().map(|(d, _)| d).collect()
    }

    /// Asserts that `user_access` of `user` over `asked` is what the single reads say now.
    fn access_is_current(s: &dyn Storage, user: UserId, asked: &[DocumentId], after: &str) {
        let access = s.user_access(user, asked).unwrap().unwrap();
        assert_access_is_current(s, user, asked, access, after);
    }

    /// Asserts that a sync session of `device` read now over `asked` holds the device and its
    /// user as the single reads say, and that the access served by its stamp is current.
    fn session_is_current(s: &dyn Storage, device: DeviceId, asked: &[DocumentId], after: &str) {
        let session = s.sync_session(device, asked).unwrap().unwrap();
        assert_eq!(session.device, s.device(device).unwrap().unwrap(), "the device, after {after}");
        let user = session.device.user;
        assert_eq!(session.user, s.user_with_organisation(user).unwrap(), "the user, after {after}");
        let access = s.session_access(&session.stamp).unwrap().unwrap();
        assert_access_is_current(s, user, asked, access, after);
    }

    fn assert_access_is_current(
        s: &dyn Storage,
        user: UserId,
        asked: &[DocumentId],
        access: eenplan_server::storage::UserAccess,
        after: &str,
    ) {
        let readable = readable_ids(s, user);
        let epochs: Vec<(DocumentId, u32)> = asked
            .iter()
            .filter(|d| readable.contains(d))
            .map(|&d| (d, s.current_epoch(d).unwrap()))
            .collect();
        assert_eq!(access.user, s.user(user).unwrap().unwrap(), "the user, after {after}");
        assert_eq!(access.plan_levels, s.plan_levels_of_user(user).unwrap(), "the levels, after {after}");
        assert_eq!(access.readable, readable, "the readable documents, after {after}");
        assert_eq!(
            access.policy.map(|p| p.signed.clone()),
            s.policy().unwrap().map(|p| p.signed),
            "the policy, after {after}"
        );
        assert_eq!(access.epochs, epochs, "the epochs, after {after}");
    }

    /// A server remembers a user's access while nothing it depends on changes (the
    /// `AccessCache`, which SQLite's and PostgreSQL's reads both serve): each change of what
    /// it depends on is seen by the next read.
    pub fn a_users_access_read_again_follows_every_change_of_what_it_depends_on(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let piet = user_with_role(s, "Piet", "politie");
        let (a1, p1) = (device(s, ann, 1), device(s, piet, 2));
        s.register_plan(P, ann, a1, 1).unwrap();
        assert!(s.register_chartered_plan(&charter(Q, ann, a1)).unwrap());
        let documents: Vec<DocumentId> =
            [P, Q].iter().flat_map(|&p| (0..4).map(move |c| doc(p, c))).collect();
        // Every document twice, the second time backwards: the epochs keep the order asked.
        let twice: Vec<DocumentId> = documents.iter().chain(documents.iter().rev()).copied().collect();
        let asked = twice.as_slice();
        // The access as a sync session of Piet's device serves it (first, while the core
        // remembered is the one from before the change), and read by itself.
        let current = |after: &str| {
            session_is_current(s, p1, asked, after);
            access_is_current(s, piet, asked, after);
        };
        s.add_participant(P, piet, "politie").unwrap();
        current("nothing: there is no policy yet");
        current("nothing again");

        let roles: &[(&str, &[&str], &[&str])] =
            &[("wijkteam", ALL, ALL), ("politie", &["basis", "justitie"], &["basis"])];
        let zvh = "zorg_en_veiligheidshuis";
        s.set_policy(&policy_with_level(2, roles, zvh, ("politie", &["basis", "zorg"])), 1).unwrap();
        current("the first policy");
        mint(s, &documents, a1);
        current("the first keys");
        let escalate = eenplan_server::storage::MembershipUpdate {
            level: zvh.into(),
            add: vec![(piet, "politie".into())],
            ..entry(Q, a1)
        };
        s.append_membership(&escalate).unwrap();
        current("Q was escalated to the ZVH with Piet in it");
        current("nothing since");
        let back = eenplan_server::storage::MembershipUpdate { seq: 3, signed: vec![3; 40], ..entry(Q, a1) };
        s.append_membership(&back).unwrap();
        current("Q went back to its regular level");
        let without_piet = eenplan_server::storage::MembershipUpdate {
            seq: 4,
            signed: vec![4; 40],
            remove: vec![piet],
            ..entry(Q, a1)
        };
        s.append_membership(&without_piet).unwrap();
        current("Q's chain took Piet out");
        assert_eq!(commit(s, &commitment(doc(P, 0), 2, Some(a1), 2)), CommitmentOutcome::Stored);
        current("a new epoch of P's basis");
        let more: &[(&str, &[&str], &[&str])] =
            &[("wijkteam", ALL, ALL), ("politie", &["basis", "zorg", "justitie"], &["basis"])];
        s.set_policy(&policy(3, more), 2).unwrap();
        current("a policy by which the police reads zorg too");
        s.set_policy(&policy(4, &[("wijkteam", ALL, ALL), ("politie", &["zorg"], &[])]), 3).unwrap();
        current("a policy by which the police reads only zorg");
        s.change_role(piet, "wijkteam", &[(p1, vec![4, 0xAA])], 4).unwrap();
        current("Piet became wijkteam");
        s.add_participant(Q, piet, "wijkteam").unwrap();
        current("Piet joined Q again");
        s.remove_participant(P, piet, 5).unwrap();
        current("Piet left P");
        s.erase_plan(Q, 6).unwrap();
        current("Q was erased");
        assert!(s.user_access(piet, asked).unwrap().unwrap().readable.is_empty(), "nothing is left to read");
        assert!(s.user_access(UserId(piet.0 + 1_000), asked).unwrap().is_none(), "an unknown user");
    }

    /// Under a policy by which the police reads basis and justitie and writes basis: Ann
    /// (wijkteam) and Piet (politie), with a device each.
    fn ann_and_piet_of_the_police(s: &dyn Storage) -> (UserId, UserId, DeviceId, DeviceId) {
        let roles: &[(&str, &[&str], &[&str])] =
            &[("wijkteam", ALL, ALL), ("politie", &["basis", "justitie"], &["basis"])];
        s.set_policy(&policy(2, roles), 1).unwrap();
        let ann = user(s, "Ann");
        let piet = user_with_role(s, "Piet", "politie");
        (ann, piet, device(s, ann, 1), device(s, piet, 2))
    }

    /// A sync's first read (`sync_session`) is the device, its user and the user's access
    /// stamp of one snapshot; the access it serves by that stamp is the access of that
    /// snapshot, from the remembered core only while the core was read under the same stamp.
    /// A session read before a change is never served a core read after it, nor one read
    /// before it once a newer read replaced it: it is read whole again. An unknown device has
    /// no session; a revoked one has, for the route to refuse.
    pub fn a_sync_session_serves_the_access_of_the_snapshot_it_read(s: &dyn Storage) {
        let (ann, piet, a1, p1) = ann_and_piet_of_the_police(s);
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, piet, "politie").unwrap();
        let documents: Vec<DocumentId> = (0..4).map(|c| doc(P, c)).collect();
        mint(s, &documents, a1);
        let readable = |session: &eenplan_server::storage::SyncSession| {
            s.session_access(&session.stamp).unwrap().unwrap().readable
        };

        let before = s.sync_session(p1, &documents).unwrap().unwrap();
        assert_eq!(readable(&before), [doc(P, 0), doc(P, 3)], "basis and justitie");
        let warm = s.sync_session(p1, &documents).unwrap().unwrap();
        let access = s.session_access(&warm.stamp).unwrap().unwrap();
        assert_eq!(access.epochs, [(doc(P, 0), 1), (doc(P, 3), 1)], "the epochs read with the session");
        assert_eq!(access.organisation, warm.user.as_ref().unwrap().1);

        // Piet leaves P after `before` was read: that session is served what it read (its
        // core is remembered under its stamp), a session read after the change nothing.
        s.remove_participant(P, piet, 3).unwrap();
        assert_eq!(readable(&before), [doc(P, 0), doc(P, 3)], "as of the session's snapshot");
        let after = s.sync_session(p1, &documents).unwrap().unwrap();
        assert!(readable(&after).is_empty(), "a session read after Piet left reads nothing of P");
        // The core is now the one read after the change; the older session's stamp does not
        // match it, so its access is read whole, as it is now.
        assert!(readable(&before).is_empty(), "never the newer core under the older stamp");
        assert!(readable(&after).is_empty());
        access_is_current(s, piet, &documents, "Piet left P");

        assert!(s.sync_session(DeviceId([0xEE; 16]), &documents).unwrap().is_none(), "an unknown device");
        // Every column of the device filled: its name, session, nonce, revocation, wipe.
        let name =
            StoredName { label: "Werktelefoon".into(), platform: "ios".into(), signature: vec![2; 64] };
        s.record_device_name(p1, &name).unwrap();
        s.record_session(p1, Some([6; 32]), 8).unwrap();
        s.revoke_device(p1, &revocation(1), 10).unwrap();
        assert!(wipe(s, p1, b"wiped", 12));
        let revoked = s.sync_session(p1, &[]).unwrap().unwrap();
        assert_eq!(revoked.device.state, DeviceState::Revoked, "the route refuses it");
        assert_eq!(revoked.device.name, Some(name));
        assert_eq!((revoked.device.wiped_at, revoked.device.wipe_nonce_hash), (Some(12), Some([6; 32])));
        assert_eq!(revoked.device, s.device(p1).unwrap().unwrap());
    }

    /// The sessions of syncs read together (`sync_sessions`: one statement on PostgreSQL,
    /// what syncs that arrive together read) are, each in its place, the session each reads
    /// alone: the devices, users, stamps and epochs of its own documents, whatever the others
    /// asked for. An unknown device has none among the others; a revoked one has its own.
    /// Syncs that push nothing name no documents: a group of only those, and one ending with
    /// one, read alike. Seventy asks at once (more than the 64 a burst's statement holds)
    /// are read alike, none lost; an unknown compartment is refused as bad input, as it is
    /// alone.
    pub fn sessions_read_together_are_the_sessions_each_reads_alone(s: &dyn Storage) {
        let (ann, piet, a1, p1) = ann_and_piet_of_the_police(s);
        s.register_plan(P, ann, a1, 1).unwrap();
        s.register_plan(Q, ann, a1, 1).unwrap();
        s.add_participant(P, piet, "politie").unwrap();
        let of_p: Vec<DocumentId> = (0..4).map(|c| doc(P, c)).collect();
        mint(s, &of_p, a1);
        let a2 = device(s, ann, 3);
        s.revoke_device(a2, &revocation(1), 10).unwrap();
        let unknown = DeviceId([0xEE; 16]);
        let ask =
            |device: DeviceId, documents: &[DocumentId]| SessionAsk { device, documents: documents.to_vec() };
        let mixed = [doc(Q, 2), doc(P, 1), doc(Q, 0), doc(P, 1), doc(P, 3)];
        let asks = vec![
            ask(p1, &of_p),
            ask(unknown, &of_p),
            ask(a1, &[]),
            ask(p1, &[doc(P, 0)]),
            ask(a1, &mixed),
            ask(a2, &of_p[1..]),
            ask(unknown, &[]),
            ask(a1, &of_p),
        ];
        let alone = |asks: &[SessionAsk]| -> Vec<_> {
            asks.iter().map(|ask| s.sync_session(ask.device, &ask.documents).unwrap()).collect()
        };
        let together = s.sync_sessions(&asks).unwrap();
        assert_eq!(together, alone(&asks));
        let epochs =
            |n: usize| s.session_access(&together[n].as_ref().unwrap().stamp).unwrap().unwrap().epochs;
        assert_eq!(
            epochs(4),
            [(doc(Q, 2), 0), (doc(P, 1), 1), (doc(Q, 0), 0), (doc(P, 1), 1), (doc(P, 3), 1)]
        );
        assert_eq!(epochs(3), [(doc(P, 0), 1)], "Piet's own document, not the others'");
        assert_eq!(together[5].as_ref().unwrap().device.state, DeviceState::Revoked);
        assert!(together[1].is_none() && together[6].is_none(), "an unknown device");
        assert_eq!(s.sync_sessions(&[]).unwrap(), []);

        let pulls: Vec<SessionAsk> = [p1, a1, unknown, a2, p1].iter().map(|d| ask(*d, &[])).collect();
        assert_eq!(s.sync_sessions(&pulls).unwrap(), alone(&pulls), "syncs that push nothing");
        let ending_empty: Vec<SessionAsk> = asks.iter().chain(&pulls[..1]).cloned().collect();
        assert_eq!(s.sync_sessions(&ending_empty).unwrap(), alone(&ending_empty), "the last names none");
        let burst: Vec<SessionAsk> = (0..70).map(|n| asks[n % asks.len()].clone()).collect();
        assert_eq!(s.sync_sessions(&burst).unwrap(), alone(&burst), "seventy at once");

        let bad =
            vec![ask(p1, &of_p), ask(a1, &[DocumentId { plan: P, compartment: DocumentId::COMPARTMENTS }])];
        assert!(
            matches!(s.sync_sessions(&bad), Err(StorageError::InvalidState(_))),
            "an unknown compartment"
        );
        assert!(
            matches!(s.sync_session(a1, &bad[1].documents), Err(StorageError::InvalidState(_))),
            "as it is alone"
        );
        assert_eq!(s.sync_sessions(&bad[..1]).unwrap(), alone(&bad[..1]), "the same ask without it");
    }

    /// Syncs that read their sessions at the same time (eight threads, each its own device
    /// and documents, one naming none, fifty reads each) each get their own session, the one
    /// it reads alone. Where the backend reads them in groups (`groups`: PostgreSQL), some
    /// were read together, and no group read failed. Syncs that name more than 64 documents
    /// never join a group (a device in bad faith naming many cannot slow the others').
    pub fn syncs_reading_their_sessions_at_once_each_get_their_own(s: &dyn Storage, groups: bool) {
        let (ann, piet, a1, _) = ann_and_piet_of_the_police(s);
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, piet, "politie").unwrap();
        mint(s, &(0..4).map(|c| doc(P, c)).collect::<Vec<_>>(), a1);
        let devices: Vec<(UserId, DeviceId)> = (0..8u8)
            .map(|n| {
                let user = if n % 2 == 0 { ann } else { piet };
                (user, device(s, user, 10 + n))
            })
            .collect();
        let few: Vec<SessionAsk> = (0..8u8)
            .zip(&devices)
            .map(|(n, (_, device))| {
                let count = if n == 7 { 0 } else { 1 + n % 4 };
                let documents = (0..count).map(|c| doc(if n < 4 { P } else { Q }, c)).collect();
                SessionAsk { device: *device, documents }
            })
            .collect();
        let grouped = sessions_read_at_once(s, &few);
        if groups {
            assert!(grouped > 0, "400 reads at once, none read together");
        } else {
            assert_eq!(grouped, 0, "a backend that reads each session alone");
        }
        let many: Vec<SessionAsk> = devices
            .iter()
            .map(|(_, device)| {
                let documents = (0..65u8).map(|n| doc(if n % 2 == 0 { P } else { Q }, n % 4)).collect();
                SessionAsk { device: *device, documents }
            })
            .collect();
        assert_eq!(sessions_read_at_once(s, &many), 0, "65 documents each: every one reads alone");
    }

    /// Reads each of `asks` fifty times, each on a thread of its own and all at once, and
    /// asserts that every read is the session read alone before; how many of them were read
    /// in groups.
    fn sessions_read_at_once(s: &dyn Storage, asks: &[SessionAsk]) -> u64 {
        let alone: Vec<_> =
            asks.iter().map(|ask| s.sync_session(ask.device, &ask.documents).unwrap()).collect();
        let before = s.remembered_reads();
        std::thread::scope(|scope| {
            for (ask, expected) in asks.iter().zip(&alone) {
                scope.spawn(move || {
                    for n in 0..50 {
                        let read = s.sync_session(ask.device, &ask.documents).unwrap();
                        assert_eq!(&read, expected, "read {n} of device {:?}", ask.device);
                    }
                });
            }
        });
        let after = s.remembered_reads();
        assert_eq!(after.session_group_read_failures, before.session_group_read_failures);
        after.sessions_read_in_groups - before.sessions_read_in_groups
    }

    /// Asserts that what `user`'s sync answer on `device` from `since` takes from the user's
    /// remembered access is what the single reads say now: the documents without a key, the
    /// rotations asked for, the policy, and the documents sent from their start because they
    /// were granted after the cursor (of `with_bundles`, those holding bundles).
    fn answer_is_current(
        s: &dyn Storage,
        (user, device): (UserId, DeviceId),
        since: u64,
        with_bundles: &[DocumentId],
        after: &str,
    ) {
        let answer = s.answer(&answer_query(user, device, since, BIG)).unwrap();
        assert_eq!(answer.unminted, s.unminted_documents(user).unwrap(), "the unminted, after {after}");
        assert_eq!(answer.rotations, s.rotations_for(user).unwrap(), "the rotations, after {after}");
        assert_eq!(answer.policy, s.policy().unwrap().map(|p| p.signed), "the policy, after {after}");
        let granted: Vec<DocumentId> = s
            .readable_documents(user)
            .unwrap()
            .into_iter()
            .filter(|(d, granted)| *granted > since && with_bundles.contains(d))
            .map(|(d, _)| d)
            .collect();
        let mut sent: Vec<DocumentId> = answer.batch.bundles.iter().map(|b| b.document).collect();
        sent.dedup();
        assert_eq!(sent, granted, "the documents sent from their start, after {after}");
    }

    /// A sync answer takes the user's readable documents with their grant positions, the
    /// documents without a key and the rotations from the remembered access (the
    /// `AccessCache`): each change of what they depend on is seen by the next answer, also a
    /// chain entry that only grants again or only queues a rotation.
    pub fn a_sync_answer_read_again_follows_every_change_of_what_it_depends_on(s: &dyn Storage) {
        let (ann, piet, a1, p1) = ann_and_piet_of_the_police(s);
        assert!(s.register_chartered_plan(&charter(Q, ann, a1)).unwrap());
        let with_piet =
            eenplan_server::storage::MembershipUpdate { add: vec![(piet, "politie".into())], ..entry(Q, a1) };
        s.append_membership(&with_piet).unwrap();
        // Basis and justitie are Piet's; justitie gets no key yet.
        let minted = [doc(Q, 0), doc(Q, 1), doc(Q, 2)];
        mint(s, &minted, a1);
        push(s, &minted.iter().enumerate().map(|(i, &d)| changes(d, i as u64, a1)).collect::<Vec<_>>());
        let since = s.head().unwrap();
        let piets = (piet, p1);
        answer_is_current(s, piets, since, &minted, "the first keys");
        answer_is_current(s, piets, since, &minted, "nothing since");
        assert_eq!(s.unminted_documents(piet).unwrap(), [doc(Q, 3)]);

        let regrant = eenplan_server::storage::MembershipUpdate {
            seq: 3,
            signed: vec![3; 40],
            regrant: vec![piet],
            ..entry(Q, a1)
        };
        s.append_membership(&regrant).unwrap();
        answer_is_current(s, piets, since, &minted, "a chain entry that only grants Piet Q again");
        let sent = s.answer(&answer_query(piet, p1, since, BIG)).unwrap().batch.bundles;
        assert_eq!(sent.iter().map(|b| b.document).collect::<Vec<_>>(), [doc(Q, 0)], "basis from its start");

        let rotate = eenplan_server::storage::MembershipUpdate {
            seq: 4,
            signed: vec![4; 40],
            rotate: vec![doc(Q, 0)],
            ..entry(Q, a1)
        };
        s.append_membership(&rotate).unwrap();
        answer_is_current(s, piets, since, &minted, "a chain entry that only queues basis's rotation");
        assert_eq!(s.rotations_for(piet).unwrap(), [(doc(Q, 0), 2)]);
        rotate_to_epoch_2(s, doc(Q, 0), vec![], 20);
        answer_is_current(s, piets, since, &minted, "basis moved to epoch 2");
        assert!(s.rotations_for(piet).unwrap().is_empty());
        mint(s, &[doc(Q, 3)], a1);
        answer_is_current(s, piets, since, &minted, "justitie's first key");
        assert!(s.unminted_documents(piet).unwrap().is_empty());
        s.set_policy(&policy(3, &[("wijkteam", ALL, ALL), ("politie", &["zorg"], &[])]), 2).unwrap();
        answer_is_current(s, piets, since, &minted, "a policy by which the police reads only zorg");
        // Zorg changes after the cursor, and then Piet leaves Q: nothing of it is his.
        push(s, &[changes(doc(Q, 1), 100, a1)]);
        let without_piet = eenplan_server::storage::MembershipUpdate {
            seq: 5,
            signed: vec![5; 40],
            remove: vec![piet],
            ..entry(Q, a1)
        };
        s.append_membership(&without_piet).unwrap();
        answer_is_current(s, piets, since, &minted, "Q's chain took Piet out");
        assert!(s.answer(&answer_query(piet, p1, since, BIG)).unwrap().batch.bundles.is_empty());
        let unknown = s.answer(&answer_query(UserId(piet.0 + 1_000), p1, since, BIG)).unwrap();
        assert!(
            unknown.batch.bundles.is_empty() && unknown.unminted.is_empty() && unknown.rotations.is_empty()
        );
        assert_eq!(unknown.policy, s.policy().unwrap().map(|p| p.signed), "an unknown user gets the policy");
    }

    pub fn a_device_asked_for_a_snapshot_holds_other_devices_off_for_ten_minutes_from_its_first_ask(
        s: &dyn Storage,
    ) {
        let (ann, bob, a1, b1) = ann_and_bob_in_p(s);
        let d0 = doc(P, 0);
        mint(s, &[d0], a1);
        seal(s, a1, &[envelope(b1, d0, 1, 1)]);
        push(s, &(0..1_001).map(|id| changes(d0, id, a1)).collect::<Vec<_>>());
        let head = s.head().unwrap();
        let bobs = |now| AnswerQuery { now, ..answer_query(bob, b1, 0, BIG) };
        let anns = |now| AnswerQuery { now, ..answer_query(ann, a1, 0, BIG) };
        assert_eq!(s.answer(&bobs(ASKED_AT)).unwrap().snapshot_candidates, [d0]);
        assert_eq!(s.request_snapshots(b1, &[d0], head, ASKED_AT).unwrap(), [d0]);

        // Bob's device is asked again while the tail is long (it may have declined: one
        // snapshot per document per sync); nobody else is, for ten minutes.
        let hold_off = ASKED_AT + SNAPSHOT_HOLD_OFF_MS;
        for now in [ASKED_AT + 1, hold_off - 1] {
            assert_eq!(s.answer(&bobs(now)).unwrap().snapshot_candidates, [d0], "asked again at {now}");
            assert_eq!(s.request_snapshots(b1, &[d0], head, now).unwrap(), [d0]);
            assert!(s.answer(&anns(now)).unwrap().snapshot_candidates.is_empty(), "Bob's ask at {now}");
            assert!(s.request_snapshots(a1, &[d0], head, now).unwrap().is_empty());
        }
        // Ten minutes after its first ask, however often it was renewed, Bob's request no
        // longer holds Ann's device off: a device that never delivers cannot keep compaction
        // from others.
        assert_eq!(s.answer(&anns(hold_off)).unwrap().snapshot_candidates, [d0], "Bob's first ask is old");
        assert_eq!(s.request_snapshots(a1, &[d0], head, hold_off).unwrap(), [d0]);
        // Either one's snapshot is taken (both were asked to cover the same head).
        push(s, &[snapshot(d0, 5_000, b1, head)]);
        push(s, &[snapshot(d0, 5_001, a1, head)]);

        // A device with its outstanding requests at the bound is not asked for another.
        let others: Vec<DocumentId> =
            (0..MAX_SNAPSHOT_REQUESTS_PER_DEVICE as u8).map(|plan| doc([plan; 16], 1)).collect();
        let d1 = doc(P, 1);
        mint(s, &[d1], a1);
        seal(s, a1, &[envelope(b1, d1, 1, 2)]);
        push(s, &(0..1_001).map(|id| changes(d1, 10_000 + id, a1)).collect::<Vec<_>>());
        let later = hold_off + SNAPSHOT_HOLD_OFF_MS;
        assert_eq!(s.answer(&bobs(later)).unwrap().snapshot_candidates, [d1]);
        assert_eq!(s.request_snapshots(b1, &others, 0, later).unwrap(), others);
        assert!(
            s.answer(&bobs(later)).unwrap().snapshot_candidates.is_empty(),
            "sixteen requests outstanding"
        );
    }

    /// A device's held keys are remembered with its missing-key list (the `KeyShareCache`);
    /// the tails are read for every complete answer. Each change of either is seen by the
    /// next answer, which asks for what the whole reads (`held_tails`) say is due.
    pub fn a_snapshot_candidate_follows_every_change_of_the_keys_held_and_the_tails(s: &dyn Storage) {
        let (_, bob, a1, b1) = ann_and_bob_in_p(s);
        let (d0, d1, d2, d3) = (doc(P, 0), doc(P, 1), doc(P, 2), doc(P, 3));
        mint(s, &[d0, d1, d2], a1);
        mint(s, &[d3], b1);
        let query = answer_query(bob, b1, 0, BIG);
        let candidates = |expected: &[DocumentId], after: &str| {
            let asked = s.answer(&query).unwrap().snapshot_candidates;
            assert_eq!(asked, expected, "after {after}");
            let due: Vec<DocumentId> = s
                .held_tails(b1)
                .unwrap()
                .into_iter()
                .filter(|held| held.current_key_held && held.tail.wants_snapshot())
                .map(|held| held.document)
                .collect();
            assert_eq!(asked, due, "the whole reads, after {after}");
        };
        let mut ids = 0..;
        let mut long = |document: DocumentId| {
            push(s, &(0..1_001).map(|_| changes(document, ids.next().unwrap(), a1)).collect::<Vec<_>>());
        };
        long(d0);
        candidates(&[], "Bob holds no key of d0 yet");
        assert_eq!(seal(s, a1, &[envelope(b1, d0, 1, 1)]), [EnvelopeOutcome::Stored]);
        candidates(&[d0], "Bob's key of d0 arrived");
        candidates(&[d0], "nothing since");
        long(d1);
        // d2 holds no bundle: no tail, between two that have one.
        assert_eq!(
            seal(s, a1, &[envelope(b1, d1, 1, 2), envelope(b1, d2, 1, 2)]),
            [EnvelopeOutcome::Stored, EnvelopeOutcome::Stored]
        );
        candidates(&[d0, d1], "a second long tail");
        // Two large changes of the key Bob made himself: long by bytes, not by count.
        push(s, &[bundle(d3, 900_000, a1, 10_000), bundle(d3, 900_001, a1, 10_000)]);
        candidates(&[d0, d1, d3], "a tail long by its bytes");
        let head = s.head().unwrap();
        push(s, &[requested_snapshot(s, d0, 1_000_000, a1, head)]);
        candidates(&[d1, d3], "d0's snapshot ended its tail");
        long(d0);
        candidates(&[d0, d1, d3], "a long tail after the snapshot");
        assert_eq!(commit(s, &commitment(d0, 2, Some(a1), 9)), CommitmentOutcome::Stored);
        candidates(&[d1, d3], "Bob's key of d0 is of epoch 1");
        assert_eq!(seal(s, a1, &[envelope(b1, d0, 2, 3)]), [EnvelopeOutcome::Stored]);
        candidates(&[d0, d1, d3], "Bob's key of epoch 2 arrived");
        for held in s.held_tails(b1).unwrap() {
            assert_eq!(held.tail, s.document_stats(held.document).unwrap().tail(), "the tails read whole");
        }
        s.remove_participant(P, bob, 30).unwrap();
        assert!(s.answer(&query).unwrap().snapshot_candidates.is_empty(), "Bob left P");
    }

    /// A sync answer asks for its mailbox, the documents with news and its snapshot
    /// candidates' tails with its facts, guessed from what the server remembers of the user
    /// and the device; it takes each only for the very read it then makes. Remembered state
    /// that no longer holds, and a mailbox cursor beyond the log, make it read again. Every
    /// answer equals the page read without reads ahead (`pull_page`) and asks for the
    /// snapshots the whole reads name.
    pub fn an_answer_takes_a_read_made_ahead_only_for_the_very_read_it_makes(s: &dyn Storage) {
        let three: &[&str] = &["basis", "zorg", "veiligheid"];
        s.set_policy(&policy(2, &[("regisseur", ALL, ALL), ("wijkteam", three, three)]), 1).unwrap();
        let (ann, bob) = (user_with_role(s, "Ann", "regisseur"), user(s, "Bob"));
        let (a1, b1) = (device(s, ann, 1), device(s, bob, 2));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        let (d0, d1, d2, d3) = (doc(P, 0), doc(P, 1), doc(P, 2), doc(P, 3));
        mint(s, &[d0, d1, d2, d3], a1);
        seal(s, a1, &[envelope(b1, d0, 1, 1), envelope(b1, d1, 1, 2)]);
        push(s, &(0..1_001).map(|id| changes(d0, id, a1)).collect::<Vec<_>>());
        push(s, &[changes(d1, 2_000, a1), changes(d2, 2_001, a1)]);
        // d1's tail is short: 17 bundles of 1,700 bytes (with the two numbers swapped, long).
        push(s, &(0..15).map(|id| changes(d1, 2_010 + id, a1)).collect::<Vec<_>>());
        // (served, read) of the mailbox, the news and the tails.
        let counts = || {
            let r = s.remembered_reads();
            [
                (r.mailbox_ahead_served, r.mailbox_ahead_read),
                (r.news_ahead_served, r.news_ahead_read),
                (r.tails_ahead_served, r.tails_ahead_read),
            ]
        };
        let answer = |query: &AnswerQuery, expected: [(u64, u64); 3], after: &str| {
            let before = counts();
            let answer = s.answer(query).unwrap();
            let now = counts();
            assert_eq!(answer.batch, s.pull_page(&query.pull).unwrap(), "the page, after {after}");
            let due: Vec<DocumentId> = s
                .held_tails(b1)
                .unwrap()
                .into_iter()
                .filter(|held| held.current_key_held && held.tail.wants_snapshot())
                .filter(|held| s.readable_documents(bob).unwrap().iter().any(|(d, _)| *d == held.document))
                .map(|held| held.document)
                .collect();
            // Only a complete answer asks for snapshots.
            let due = if answer.batch.complete { due } else { Vec::new() };
            assert_eq!(answer.snapshot_candidates, due, "the snapshots due, after {after}");
            let counted: Vec<(u64, u64)> =
                (0..3).map(|i| (now[i].0 - before[i].0, now[i].1 - before[i].1)).collect();
            assert_eq!(
                counted[..2],
                expected[..2],
                "reads ahead (served, read) of mailbox and news, after {after}"
            );
            // PostgreSQL reads the tails ahead; SQLite, without round trips to spare, only when
            // an answer weighs them: how often they were weighed is the same on both.
            let weighed = |(served, read): (u64, u64)| served + read;
            assert_eq!(weighed(counted[2]), weighed(expected[2]), "tails weighed, after {after}");
            assert!(counted[2].0 <= expected[2].0, "tails served, after {after}");
            answer
        };
        let first = answer(&answer_query(bob, b1, 0, BIG), [(1, 0), (0, 1), (0, 1)], "nothing remembered");
        assert_eq!(first.batch.envelopes.len(), 2);
        assert_eq!(first.snapshot_candidates, [d0]);
        let since = first.batch.head;

        push(s, &[changes(d1, 2_002, a1), changes(d2, 2_003, a1)]);
        let news = answer(&answer_query(bob, b1, since, BIG), [(1, 0), (1, 0), (1, 0)], "Ann's news");
        let sent: Vec<u64> = news.batch.bundles.iter().map(|b| b.seq).collect();
        assert_eq!(sent.len(), 2, "d1's and d2's news: {sent:?}");

        // Bob joins Q, and his cursor passes the grant in a pull that leaves the remembered
        // access as it was: Q's basis is followed now, and its news must not be taken from a
        // read made without it.
        s.register_plan(Q, ann, a1, 1).unwrap();
        let q0 = doc(Q, 0);
        mint(s, &[q0], a1);
        s.add_participant(Q, bob, "wijkteam").unwrap();
        let cursor = s.pull_page(&PullRequest::new(bob, b1, since, BIG)).unwrap().head;
        push(s, &[changes(q0, 2_100, a1)]);
        let joined = answer(&answer_query(bob, b1, cursor, BIG), [(1, 0), (0, 1), (1, 0)], "Bob joined Q");
        assert_eq!(joined.batch.bundles.iter().map(|b| b.document).collect::<Vec<_>>(), [q0], "Q's news");

        // Justitie becomes Bob's: d3, followed since the grant, is missing from the remembered
        // access, and its news must not be taken from a read made without it.
        push(s, &[changes(d3, 2_004, a1)]);
        s.set_policy(&policy(3, &[("regisseur", ALL, ALL), ("wijkteam", ALL, ALL)]), 2).unwrap();
        let wider = answer(&answer_query(bob, b1, since, BIG), [(1, 0), (0, 1), (1, 0)], "a wider policy");
        assert!(wider.batch.bundles.iter().any(|b| b.document == d3), "d3's news");
        answer(&answer_query(bob, b1, since, BIG), [(1, 0), (1, 0), (1, 0)], "nothing since");

        // Bob's key of d3 arrives: the remembered held keys lack it, and so did the tails.
        push(s, &(0..1_001).map(|id| changes(d3, 3_000 + id, a1)).collect::<Vec<_>>());
        seal(s, a1, &[envelope(b1, d3, 1, 3)]);
        let keyed = answer(&answer_query(bob, b1, since, BIG), [(1, 0), (1, 0), (0, 1)], "Bob's key of d3");
        assert_eq!(keyed.snapshot_candidates, [d0, d3]);
        // d0's snapshot: its tail now starts from a snapshot's size.
        let head = s.head().unwrap();
        push(s, &[requested_snapshot(s, d0, 9_000, a1, head)]);
        let compacted = answer(&answer_query(bob, b1, since, BIG), [(1, 0), (1, 0), (1, 0)], "d0's snapshot");
        assert_eq!(compacted.snapshot_candidates, [d3]);
        let head = s.head().unwrap();
        answer(&answer_query(bob, b1, head, BIG), [(1, 0), (0, 0), (1, 0)], "an idle sync: no news read");
        // One envelope per page: the read is the page's, one more than fits.
        let mut one = answer_query(bob, b1, since, BIG);
        (one.pull.max_envelopes, one.pull.envelopes_after) = (1, 0);
        let paged = answer(&one, [(1, 0), (0, 0), (0, 0)], "one envelope per page");
        assert_eq!((paged.batch.envelopes.len(), paged.batch.complete), (1, false));

        // A mailbox cursor beyond the log starts the mailbox over: not the read asked ahead.
        let head = s.head().unwrap();
        let mut beyond = answer_query(bob, b1, head, BIG);
        beyond.pull.envelopes_after = head + 10;
        let over = answer(&beyond, [(0, 1), (0, 0), (1, 0)], "a mailbox cursor beyond the log");
        assert_eq!(over.batch.envelopes.len(), 3, "every key again");
    }

    /// An answer that what the server remembers says will need no more than its facts'
    /// statement is tried as that one statement, where the backend saves round trips by it
    /// (`saves`: PostgreSQL): it is then the answer a read transaction gives. One that asks
    /// for a second statement (news to read) runs again in a transaction, with the same
    /// page, its reads ahead counted once; the device's next eight answers run in a
    /// transaction at once, the ninth is tried as one statement again. A long tail, whose
    /// snapshot asks are a second read, counts its tails once too. Every answer counts its
    /// remembered access and missing-key list once, and a complete one its held keys once,
    /// however often it ran.
    pub fn an_answer_tried_as_one_statement_is_the_answer_a_transaction_reads(s: &dyn Storage, saves: bool) {
        let (_, bob, a1, b1) = ann_and_bob_in_p(s);
        let (d0, d1) = (doc(P, 0), doc(P, 1));
        mint(s, &[d0, d1], a1);
        seal(s, a1, &[envelope(b1, d0, 1, 1), envelope(b1, d1, 1, 2)]);
        push(s, &[changes(d0, 1, a1), changes(d1, 2, a1)]);
        // (sufficed, again) of the tries, then (served, read) of the mailbox, the news and
        // the tails, then of the remembered access, missing-key list and held keys.
        let counts = || {
            let r = s.remembered_reads();
            [
                (r.one_statement_answers, r.one_statement_answers_again),
                (r.mailbox_ahead_served, r.mailbox_ahead_read),
                (r.news_ahead_served, r.news_ahead_read),
                (r.tails_ahead_served, r.tails_ahead_read),
                (r.accesses_served, r.accesses_read),
                (r.missing_keys_served, r.missing_keys_read),
                (r.held_keys_served, r.held_keys_read),
            ]
        };
        let answer = |query: &AnswerQuery, tried: (u64, u64), after: &str| {
            let before = counts();
            let answer = s.answer(query).unwrap();
            let now = counts();
            assert_eq!(answer.batch, s.pull_page(&query.pull).unwrap(), "the page, after {after}");
            let counted: Vec<(u64, u64)> =
                (0..7).map(|i| (now[i].0 - before[i].0, now[i].1 - before[i].1)).collect();
            let tried = if saves { tried } else { (0, 0) };
            assert_eq!(counted[0], tried, "tried as one statement (sufficed, again), after {after}");
            for (read, (served, made)) in ["mailbox", "news", "tails", "held keys"]
                .iter()
                .zip(counted[1..4].iter().chain(&counted[6..]))
            {
                assert!(served + made <= 1, "{read} counted once, after {after}: {counted:?}");
            }
            for (read, (served, made)) in ["access", "missing keys"].iter().zip(&counted[4..6]) {
                assert_eq!(served + made, 1, "{read} counted once, after {after}: {counted:?}");
            }
            (answer, counted)
        };
        let idle = |s: &dyn Storage| answer_query(bob, b1, s.head().unwrap(), BIG);
        // Bob's access and keys stay remembered from the first answer: the test runs well
        // within the minute a remembered read may be served (`MAX_AGE`), past which every
        // answer here would be guessed to need a transaction.
        let (first, _) = answer(&idle(s), (0, 0), "nothing remembered: a transaction");
        let (tried, _) = answer(&idle(s), (1, 0), "an idle sync, remembered");
        assert_eq!(tried, first, "one statement reads what the transaction read");

        let since = first.batch.head;
        push(s, &[changes(d1, 3, a1)]);
        let news = answer_query(bob, b1, since, BIG);
        let (again, counted) = answer(&news, (0, 1), "Ann's news: the bundles are a second read, a miss");
        assert_eq!(again.batch.bundles.len(), 1, "d1's news");
        assert_eq!(
            counted[1..3],
            [(1, 0), (1, 0)],
            "the kept read took its mailbox and news ahead, counted once"
        );
        for n in 1..8 {
            let (read, _) = answer(&news, (0, 0), &format!("{n} after the miss"));
            assert_eq!(read, again, "a transaction, after {n}");
        }
        let (in_transaction, _) = answer(&idle(s), (0, 0), "the eighth after the miss");
        let (tried, _) = answer(&idle(s), (1, 0), "the ninth: one statement again");
        assert_eq!(tried, in_transaction, "one statement reads what the transaction read");

        push(s, &(0..1_001).map(|id| changes(d0, 10 + id, a1)).collect::<Vec<_>>());
        let (long, counted) = answer(&idle(s), (0, 1), "a long tail: its snapshot asks are a second read");
        assert_eq!(long.snapshot_candidates, [d0]);
        assert_eq!(counted[3].0 + counted[3].1, 1, "the tails weighed once: {counted:?}");
        assert_eq!(counted[6].0 + counted[6].1, 1, "a complete answer's held keys counted once: {counted:?}");
    }

    /// Answers begun before a commit, whose first statements a group read together after it
    /// ([`Storage::read_answer_facts`]), are the answers a transaction reads at that moment:
    /// each from its own facts, as of the group's statement, with no read of its own when
    /// the rest is remembered. An answer whose facts show more to read reads again, whole;
    /// one finished for another query than it was begun for never takes the facts. Where a
    /// backend does not group (`groups` false: SQLite) no answer wants facts, and each reads
    /// its own.
    pub fn answers_whose_facts_a_group_read_are_the_answers_a_transaction_reads(
        s: &dyn Storage,
        groups: bool,
    ) {
        let (ann, bob, a1, b1) = ann_and_bob_in_p(s);
        let a2 = device(s, ann, 3);
        // Ann's membership entry: Q's charter.
        assert!(s.register_chartered_plan(&charter(Q, ann, a1)).unwrap());
        let (d0, d1) = (doc(P, 0), doc(P, 1));
        mint(s, &[d0, d1], a1);
        seal(s, a1, &[envelope(b1, d0, 1, 1), envelope(b1, d1, 1, 2), envelope(a2, d0, 1, 3)]);
        push(s, &[changes(d0, 1, a1), changes(d1, 2, a1)]);
        let devices = [(ann, a1), (ann, a2), (bob, b1)];
        let idle = |s: &dyn Storage, (user, device): (UserId, DeviceId)| {
            answer_query(user, device, s.head().unwrap(), BIG)
        };
        // Each device's first answer reads its access and keys, which the next ones are
        // served from (within the minute a remembered read may be served).
        for &d in &devices {
            s.answer(&idle(s, d)).unwrap();
        }
        // (served from one statement, read again) of the answers tried without a transaction.
        let tries = || {
            let r = s.remembered_reads();
            (r.one_statement_answers, r.one_statement_answers_again)
        };
        let tried_since = |before: (u64, u64)| {
            let now = tries();
            (now.0 - before.0, now.1 - before.1)
        };
        let group_read = |queries: &[AnswerQuery]| -> Vec<AnswerStart> {
            let mut starts: Vec<AnswerStart> = queries.iter().map(|q| s.begin_answer(q)).collect();
            assert!(starts.iter().all(|start| start.wants_facts() == groups), "{starts:?}");
            s.read_answer_facts(&mut starts.iter_mut().collect::<Vec<_>>()).unwrap();
            assert!(starts.iter().all(|start| !start.wants_facts()), "every answer's facts read: {starts:?}");
            starts
        };

        // Bob's facts show news, Ann's devices' none: in one group, each answer takes its own
        // facts. Bob's reads again, whole; the others need no read of their own.
        let since = s.head().unwrap();
        push(s, &[changes(d0, 3, a1)]);
        let news = answer_query(bob, b1, since, BIG);
        let queries = [idle(s, (ann, a1)), news.clone(), idle(s, (ann, a2))];
        let before = tries();
        let answers: Vec<AnswerReads> = queries
            .iter()
            .zip(group_read(&queries))
            .map(|(q, start)| s.answer_from(q, start).unwrap())
            .collect();
        assert_eq!(tried_since(before), if groups { (2, 1) } else { (0, 0) }, "(served, read again)");
        assert_eq!(answers[1].batch.bundles.len(), 1, "d0's news");
        let transaction: Vec<AnswerReads> = queries.iter().map(|q| s.answer(q).unwrap()).collect();
        assert_eq!(answers, transaction, "nothing was committed in between");

        // A commit after the group's statement, which its answers do not see.
        let queries = [idle(s, (ann, a1)), idle(s, (ann, a2))];
        let transaction: Vec<AnswerReads> = queries.iter().map(|q| s.answer(q).unwrap()).collect();
        let before = tries();
        let starts = group_read(&queries);
        let head = s.head().unwrap();
        if groups {
            push(s, &[changes(d1, 4, a1)]);
        }
        let answers: Vec<AnswerReads> =
            queries.iter().zip(starts).map(|(q, start)| s.answer_from(q, start).unwrap()).collect();
        assert_eq!(answers, transaction, "as of the group's statement");
        assert!(answers.iter().all(|answer| answer.batch.head == head), "the head the group read");
        assert_eq!(tried_since(before), if groups { (2, 0) } else { (0, 0) }, "(served, read again)");

        // A2's answer begun with a membership cursor past Q's charter and finished for one
        // before it: the facts read past the charter lack it, and are not taken.
        let from_start = idle(s, (ann, a2));
        let mut past = from_start.clone();
        past.membership_after = s.head().unwrap();
        let start = group_read(std::slice::from_ref(&past)).pop().unwrap();
        let answer = s.answer_from(&from_start, start).unwrap();
        assert_eq!(answer.membership.entries.len(), 1, "Q's charter: {:?}", answer.membership);
        assert!(s.answer(&past).unwrap().membership.entries.is_empty(), "none past the head");
        assert_eq!(answer, s.answer(&from_start).unwrap());

        // More answers than one statement reads (64), among them a device that holds no key
        // (its slice of the tails empty, between full ones) and A2's news: each answer is the
        // one read after it alone, nothing having been committed in between. (Bob's first
        // answers here still wait for a transaction after his miss above: they want no
        // facts.)
        let cor = user(s, "Cor");
        s.add_participant(P, cor, "wijkteam").unwrap();
        let c1 = device(s, cor, 4);
        let since = s.head().unwrap();
        push(s, &[changes(d1, 5, a1)]);
        for &d in &[(ann, a1), (ann, a2), (cor, c1), (bob, b1)] {
            s.answer(&idle(s, d)).unwrap();
        }
        let queries: Vec<AnswerQuery> = (0..140)
            .map(|n| match n % 4 {
                0 => idle(s, (ann, a1)),
                1 => idle(s, (cor, c1)),
                2 => answer_query(ann, a2, since, BIG),
                _ => idle(s, (bob, b1)),
            })
            .collect();
        let mut starts: Vec<AnswerStart> = queries.iter().map(|q| s.begin_answer(q)).collect();
        let wanting = starts.iter().filter(|start| start.wants_facts()).count();
        assert!(if groups { wanting > 64 } else { wanting == 0 }, "{wanting} answers want their facts");
        let keyless = starts.iter().skip(1).step_by(4);
        assert!(keyless.clone().all(|start| start.wants_facts() == groups), "Cor's answers are in the group");
        s.read_answer_facts(&mut starts.iter_mut().collect::<Vec<_>>()).unwrap();
        assert_eq!(starts.iter().filter(|start| start.has_facts()).count(), wanting, "each read");
        let answers: Vec<AnswerReads> =
            queries.iter().zip(starts).map(|(q, start)| s.answer_from(q, start).unwrap()).collect();
        for (n, (q, answer)) in queries.iter().zip(answers).enumerate() {
            assert_eq!(answer, s.answer(q).unwrap(), "answer {n}");
        }

        // A membership cursor no server gave (past the largest position a database holds)
        // is the device's own business: it reads no entry, and fails neither its answer nor
        // the group's read of the others'.
        let mut beyond = idle(s, (ann, a1));
        beyond.membership_after = u64::MAX;
        let queries = [beyond, idle(s, (cor, c1))];
        let mut starts: Vec<AnswerStart> = queries.iter().map(|q| s.begin_answer(q)).collect();
        s.read_answer_facts(&mut starts.iter_mut().collect::<Vec<_>>()).unwrap();
        assert!(starts.iter().all(|start| start.has_facts() == groups), "{starts:?}");
        let answers: Vec<AnswerReads> =
            queries.iter().zip(starts).map(|(q, start)| s.answer_from(q, start).unwrap()).collect();
        assert!(answers[0].membership.entries.is_empty());
        for (q, answer) in queries.iter().zip(answers) {
            assert_eq!(answer, s.answer(q).unwrap());
        }
    }

    pub fn the_first_envelope_stays_and_key_requests_list_exactly_the_devices_lacking_an_envelope(
        s: &dyn Storage,
    ) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let dave = user(s, "Dave");
        let a1 = device(s, ann, 1);
        let a2 = device(s, ann, 2);
        let b1 = device(s, bob, 3);
        let d1 = device(s, dave, 4);
        s.create_enrolment(&[5; 32], bob, i64::MAX).unwrap();
        s.claim_enrolment(&[5; 32], &new_device(5), 1).unwrap();
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        let d = doc(P, 1);

        let mut want = vec![a1, a2, b1];
        want.sort();
        assert_eq!(s.devices_missing_envelope(d, 1).unwrap(), want, "active participants' devices only");

        seal(s, a1, &[envelope(a1, d, 1, 1), envelope(b1, d, 1, 2)]);
        assert_eq!(s.devices_missing_envelope(d, 1).unwrap(), [a2]);
        assert_eq!(s.devices_missing_envelope(d, 2).unwrap(), want, "another epoch is another key");
        assert_eq!(s.devices_missing_envelope(doc(P, 2), 1).unwrap(), want, "another document too");
        // Several keys at once: each key's devices, in the order asked.
        let keys = [(doc(P, 2), 1), (d, 1), (d, 2)];
        let batch: Vec<_> = keys
            .iter()
            .flat_map(|&(document, epoch)| {
                s.devices_missing_envelope(document, epoch)
                    .unwrap()
                    .into_iter()
                    .map(move |dev| (document, epoch, dev))
            })
            .collect();
        assert_eq!(s.devices_missing_envelopes(&keys).unwrap(), batch);
        assert_eq!(batch.len(), 2 * want.len() + 1);
        // What a sync answer lists: the same, for the keys each device holds.
        for (user, device) in [(ann, a1), (ann, a2), (bob, b1), (dave, d1)] {
            let [listed, key_by_key] = missing_both_ways(s, user, device);
            assert_eq!(listed, key_by_key, "{device:?}");
        }
        assert_eq!(missing_both_ways(s, bob, b1)[0], [(d, 1, a2)]);

        let outcomes = seal(s, a2, &[envelope(b1, d, 1, 9), envelope(b1, doc(P, 0), 1, 3)]);
        assert_eq!(outcomes, [EnvelopeOutcome::Exists, EnvelopeOutcome::Stored], "the first envelope stays");
        // In the order they were stored: each envelope takes the next log position.
        assert_eq!(s.envelopes_for(b1, 0).unwrap(), [envelope(b1, d, 1, 2), envelope(b1, doc(P, 0), 1, 3)]);
        assert!(s.envelopes_for(d1, 0).unwrap().is_empty());
        assert_eq!(seal(s, a1, &[envelope(DeviceId([9; 16]), d, 1, 1)]), [EnvelopeOutcome::NoRecipient]);

        // Losing access takes the user's envelopes for the plan with it.
        s.remove_participant(P, bob, 1).unwrap();
        assert!(s.envelopes_for(b1, 0).unwrap().is_empty());
        assert_eq!(s.devices_missing_envelope(d, 1).unwrap(), [a2]);
        assert_eq!(missing_both_ways(s, ann, a1), [vec![(d, 1, a2)], vec![(d, 1, a2)]]);
        assert!(missing_both_ways(s, bob, b1)[0].is_empty(), "a device without keys is asked for none");
        // A device that reported its wipe is sealed no key, even before anyone revoked it.
        s.record_session(a2, Some([7; 32]), 600).unwrap();
        assert!(wipe(s, a2, b"report", 601));
        assert_eq!(missing_both_ways(s, ann, a1), [vec![], vec![]], "a wiped device");
    }

    /// The answer's missing envelopes (one statement) against the key-by-key reads, in the
    /// states the single read's rules distinguish: a revoked device, a role that reads only
    /// some compartments, a document whose key the holder has at two epochs, an epoch made
    /// without a minter device (a rotation), the minter of the other epoch.
    pub fn missing_envelopes_agree_with_the_key_by_key_reads_across_revocation_roles_and_epochs(
        s: &dyn Storage,
    ) {
        let roles: &[(&str, &[&str], &[&str])] =
            &[("wijkteam", ALL, ALL), ("politie", &["basis", "justitie"], &["basis", "justitie"])];
        s.set_policy(&policy(2, roles), 1).unwrap();
        let (ann, bob) = (user(s, "Ann"), user(s, "Bob"));
        let piet = user_with_role(s, "Piet", "politie");
        let (a1, b1, b2, p1) = (device(s, ann, 1), device(s, bob, 2), device(s, bob, 3), device(s, piet, 4));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        s.add_participant(P, piet, "politie").unwrap();
        let [d0, d1, d3] = [doc(P, 0), doc(P, 1), doc(P, 3)];
        mint(s, &[d0, d1, d3], a1);
        seal(s, a1, &[envelope(b1, d0, 1, 1), envelope(b1, d1, 1, 2), envelope(p1, d0, 1, 3)]);
        s.revoke_device(b2, &revocation(1), 10).unwrap();
        rotate_to_epoch_2(
            s,
            d0,
            vec![
                envelope(a1, d0, 2, 5),
                envelope(DeviceId(eenplan_protocol::api::ESCROW_RECIPIENT), d0, 2, 7),
            ],
            20,
        );

        for (user, device) in [(ann, a1), (bob, b1), (piet, p1)] {
            let [listed, key_by_key] = missing_both_ways(s, user, device);
            assert_eq!(listed, key_by_key, "{device:?}");
            assert!(listed.iter().all(|&(_, _, missing)| missing != b2), "a revoked device gets no key");
            assert!(!listed.contains(&(d1, 1, p1)), "politie reads no zorg");
        }
        let listed = missing_both_ways(s, ann, a1)[0].clone();
        // Epoch 1 of d0 (minted by a1) reached everyone; epoch 2 (no minter) only a1.
        assert!(listed.contains(&(d0, 2, b1)) && listed.contains(&(d0, 2, p1)));
        assert!(!listed.iter().any(|&(document, epoch, _)| (document, epoch) == (d0, 1)));
        assert!(listed.contains(&(d3, 1, b1)) && listed.contains(&(d3, 1, p1)), "justitie: Bob and Piet");
        assert!(!listed.iter().any(|&(_, _, missing)| missing == a1), "a holder is not missing its key");
    }

    /// The answer's list is remembered between syncs (`domain::key_shares`); after every kind
    /// of change it depends on, each made so that nothing else the list depends on changes
    /// with it, it must still be what the key-by-key reads report now.
    pub fn the_missing_keys_an_answer_lists_follow_every_change_they_depend_on(s: &dyn Storage) {
        let roles: &[(&str, &[&str], &[&str])] =
            &[("wijkteam", ALL, ALL), ("politie", &["basis", "justitie"], &["basis", "justitie"])];
        s.set_policy(&policy(2, roles), 1).unwrap();
        let (ann, bob) = (user(s, "Ann"), user(s, "Bob"));
        let piet = user_with_role(s, "Piet", "politie");
        let (a1, b1, p1) = (device(s, ann, 1), device(s, bob, 2), device(s, piet, 4));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        let [d0, d1, d2] = [doc(P, 0), doc(P, 1), doc(P, 2)];
        mint(s, &[d0, d1], a1);
        // Ann's list, asked twice (the second answer is the one a remembered list would
        // serve); every other device's agrees with its key-by-key reads too.
        let listed = |step: &str| -> Vec<(DocumentId, u32, DeviceId)> {
            for (user, device) in [(bob, b1), (piet, p1)] {
                let [listed, key_by_key] = missing_both_ways(s, user, device);
                assert_eq!(listed, key_by_key, "{step}: {device:?}");
            }
            let [first, key_by_key] = missing_both_ways(s, ann, a1);
            assert_eq!(first, key_by_key, "{step}");
            assert_eq!(missing_both_ways(s, ann, a1)[0], first, "{step}: asked again");
            first
        };
        assert_eq!(listed("Bob's device lacks both keys"), [(d0, 1, b1), (d1, 1, b1)]);

        seal(s, a1, &[envelope(b1, d0, 1, 1)]);
        assert_eq!(listed("an envelope stored"), [(d1, 1, b1)]);
        mint(s, &[d2], a1);
        assert_eq!(listed("a key made (a commitment alone)"), [(d1, 1, b1), (d2, 1, b1)]);
        let b2 = device(s, bob, 3);
        assert_eq!(
            listed("a device activated"),
            [(d0, 1, b2), (d1, 1, b1), (d1, 1, b2), (d2, 1, b1), (d2, 1, b2)]
        );
        s.revoke_device(b2, &revocation(1), 10).unwrap();
        assert_eq!(listed("a device revoked"), [(d1, 1, b1), (d2, 1, b1)]);
        s.add_participant(P, piet, "politie").unwrap();
        assert_eq!(
            listed("a participant added (politie reads basis)"),
            [(d0, 1, p1), (d1, 1, b1), (d2, 1, b1)]
        );
        let justitie_only: &[(&str, &[&str], &[&str])] =
            &[("wijkteam", ALL, ALL), ("politie", &["justitie"], &["justitie"])];
        s.set_policy(&policy(3, justitie_only), 20).unwrap();
        assert_eq!(
            listed("a policy that takes basis from politie (Piet holds nothing)"),
            [(d1, 1, b1), (d2, 1, b1)]
        );
        s.set_policy(&policy(4, roles), 30).unwrap();
        assert_eq!(listed("a policy that gives it back"), [(d0, 1, p1), (d1, 1, b1), (d2, 1, b1)]);
        s.change_role(bob, "politie", &[(b1, vec![2, 0xAA])], 40).unwrap();
        assert_eq!(listed("a role that reads less (Bob held none of it)"), [(d0, 1, p1)]);
        s.change_role(piet, "wijkteam", &[(p1, vec![4, 0xAA])], 50).unwrap();
        assert_eq!(listed("a role that reads more"), [(d0, 1, p1), (d1, 1, p1), (d2, 1, p1)]);
        assert!(wipe(s, p1, b"report", 60));
        assert_eq!(listed("a device reported wiped"), []);
        s.record_session(p1, None, 70).unwrap();
        assert_eq!(listed("a session that forgets the wipe report"), [(d0, 1, p1), (d1, 1, p1), (d2, 1, p1)]);
        s.remove_participant(P, piet, 80).unwrap();
        assert_eq!(listed("a participant removed"), []);
        rotate_to_epoch_2(s, d0, vec![envelope(a1, d0, 2, 5)], 90);
        assert_eq!(listed("a new epoch"), [(d0, 2, b1)]);

        // A plan's level: at the Zorg- en Veiligheidshuis, politie reads zorg too.
        let zvh = "zorg_en_veiligheidshuis";
        s.set_policy(&policy_with_level(5, roles, zvh, ("politie", ALL)), 100).unwrap();
        assert!(s.register_chartered_plan(&charter(Q, ann, a1)).unwrap());
        s.append_membership(&eenplan_server::storage::MembershipUpdate {
            add: vec![(bob, "politie".into())],
            ..entry(Q, a1)
        })
        .unwrap();
        let q1 = doc(Q, 1);
        mint(s, &[q1], a1);
        assert!(!listed("politie reads no zorg at the base level").contains(&(q1, 1, b1)));
        let escalated = eenplan_server::storage::MembershipUpdate {
            seq: 3,
            signed: vec![3; 40],
            level: zvh.into(),
            ..entry(Q, a1)
        };
        s.append_membership(&escalated).unwrap();
        assert!(listed("the plan escalated").contains(&(q1, 1, b1)));
    }

    pub fn envelopes_are_delivered_once_after_the_cursor_and_escrow_ones_kept_apart(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let a1 = device(s, ann, 1);
        s.register_plan(P, ann, a1, 1).unwrap();
        seal(s, a1, &[envelope(a1, doc(P, 0), 1, 1)]);
        let cursor = s.pull(ann, a1, 0, BIG).unwrap().head;
        assert_eq!(s.envelopes_for(a1, 0).unwrap().len(), 1);
        assert!(s.envelopes_for(a1, cursor).unwrap().is_empty(), "nothing new after the cursor");
        seal(s, a1, &[envelope(a1, doc(P, 1), 1, 2)]);
        assert_eq!(s.envelopes_for(a1, cursor).unwrap(), [envelope(a1, doc(P, 1), 1, 2)]);

        let escrow = DeviceId(eenplan_protocol::api::ESCROW_RECIPIENT);
        seal(s, a1, &[envelope(escrow, doc(P, 0), 1, 7), envelope(escrow, doc(P, 3), 1, 8)]);
        assert_eq!(
            s.escrow_envelopes(P).unwrap(),
            [envelope(escrow, doc(P, 0), 1, 7), envelope(escrow, doc(P, 3), 1, 8)]
        );
        assert!(s.escrow_envelopes([9; 16]).unwrap().is_empty());
        assert_eq!(seal(s, a1, &[envelope(escrow, doc(P, 0), 1, 99)]), [EnvelopeOutcome::Exists]);
        assert_eq!(
            s.escrow_envelopes(P).unwrap()[0],
            envelope(escrow, doc(P, 0), 1, 7),
            "the first one stays"
        );
        assert!(s.envelopes_for(escrow, 0).unwrap().is_empty(), "no device receives escrow envelopes");
    }

    pub fn an_envelope_batch_of_a_sealer_revoked_meanwhile_stores_none_of_it(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let a1 = device(s, ann, 1);
        let a2 = device(s, ann, 2);
        // The request was checked while a2 was active; the revocation commits before the write.
        s.revoke_device(a2, &revocation(1), 1).unwrap();
        let batch = [envelope(a1, doc(P, 0), 1, 1), envelope(a1, doc(P, 1), 1, 2)];
        assert_eq!(s.put_envelopes(a2, &batch), Err(StorageError::DeviceNotActive));
        assert!(s.envelopes_for(a1, 0).unwrap().is_empty());
        assert_eq!(s.put_envelopes(DeviceId([9; 16]), &batch), Err(StorageError::NotFound));
    }

    pub fn a_recipients_refusal_withdraws_the_sealers_envelope_and_keeps_that_sealer_out(s: &dyn Storage) {
        let (ann, bob) = (user(s, "Ann"), user(s, "Bob"));
        let (a1, a2, b1) = (device(s, ann, 1), device(s, ann, 2), device(s, bob, 3));
        let d = doc(P, 0);
        // b1 seals garbage to a1 first; a second envelope (a2's good one) is not taken.
        assert_eq!(seal(s, b1, &[envelope(a1, d, 1, 0xBA)]), [EnvelopeOutcome::Stored]);
        assert_eq!(seal(s, a2, &[envelope(a1, d, 1, 0x60)]), [EnvelopeOutcome::Exists]);
        // A complaint naming another sealer, or about an envelope a1 does not hold, changes
        // nothing.
        let about = |sealer, epoch| EnvelopeRefusal { document: d, epoch, sealer };
        assert_eq!(s.refuse_envelopes(a1, &[about(a2, 1), about(b1, 2)]).unwrap(), 0);
        assert_eq!(s.envelopes_for(a1, 0).unwrap(), [envelope(a1, d, 1, 0xBA)]);
        // The complaint about b1's envelope withdraws it.
        assert_eq!(s.refuse_envelopes(a1, &[about(b1, 1)]).unwrap(), 1);
        assert!(s.envelopes_for(a1, 0).unwrap().is_empty());
        assert!(s.held_keys(a1).unwrap().is_empty(), "a1 no longer counts as holding the key");
        // b1 is not heard again for it; another sealer is.
        assert_eq!(seal(s, b1, &[envelope(a1, d, 1, 0xBB)]), [EnvelopeOutcome::SealerRefused]);
        assert_eq!(seal(s, b1, &[envelope(a1, d, 2, 0xBC)]), [EnvelopeOutcome::Stored], "another epoch");
        assert_eq!(seal(s, a2, &[envelope(a1, d, 1, 0x60)]), [EnvelopeOutcome::Stored]);
        assert_eq!(s.envelopes_for(a1, 0).unwrap(), [envelope(a1, d, 2, 0xBC), envelope(a1, d, 1, 0x60)]);
        // A revoked device complains no more.
        s.revoke_device(a1, &revocation(1), 5).unwrap();
        assert_eq!(s.refuse_envelopes(a1, &[about(a2, 1)]), Err(StorageError::DeviceNotActive));
    }

    pub fn an_administrators_envelope_can_be_refused_without_shutting_out_anyone(s: &dyn Storage) {
        let (ann, bob) = (user(s, "Ann"), user(s, "Bob"));
        let (a1, a2, b1) = (device(s, ann, 1), device(s, ann, 2), device(s, bob, 3));
        s.register_plan(P, bob, b1, 1).unwrap();
        s.add_participant(P, ann, "wijkteam").unwrap();
        let d = doc(P, 0);
        mint(s, &[d], b1);
        s.revoke_device(a1, &revocation(1), 5).unwrap();
        let rotation = CompletedRotation {
            document: d,
            new_epoch: 2,
            commitment: vec![2; 150],
            minter_device: None,
            envelopes: vec![envelope(a2, d, 2, 0x77)],
            now: 6,
        };
        s.complete_rotation(&rotation).unwrap();
        // Storage does not know who sealed the administrator's envelope; whoever a2 names,
        // the envelope goes, and nobody is refused for it.
        let refusal = EnvelopeRefusal { document: d, epoch: 2, sealer: b1 };
        assert_eq!(s.refuse_envelopes(a2, &[refusal]).unwrap(), 1);
        assert!(s.envelopes_for(a2, 0).unwrap().is_empty());
        assert_eq!(seal(s, b1, &[envelope(a2, d, 2, 0x78)]), [EnvelopeOutcome::Stored]);
    }

    pub fn a_device_revoked_meanwhile_registers_mints_and_pushes_nothing(s: &dyn Storage) {
        let (ann, bob) = (user(s, "Ann"), user(s, "Bob"));
        let (a1, b1) = (device(s, ann, 1), device(s, bob, 2));
        s.register_plan(P, bob, b1, 1).unwrap();
        s.add_participant(P, ann, "wijkteam").unwrap();
        // Q is Bob's alone, so revoking Ann's device queues no rotation of it.
        s.register_plan(Q, bob, b1, 1).unwrap();
        mint(s, &[doc(Q, 0)], b1);
        // Ann's device was authenticated, then revoked before its writes ran.
        s.revoke_device(a1, &revocation(1), 5).unwrap();
        let head = s.head().unwrap();
        assert_eq!(s.register_plan([0xC3; 16], ann, a1, 6), Err(StorageError::DeviceNotActive));
        assert!(s.participants([0xC3; 16]).unwrap().is_empty());
        let minted = s.put_commitment(&commitment(doc(P, 1), 1, Some(a1), 1), policy_version(s));
        assert_eq!(minted, Err(StorageError::DeviceNotActive));
        assert_eq!(s.current_epoch(doc(P, 1)).unwrap(), 0);
        let d = doc(Q, 0);
        let pushed = s.push_batch(&[changes(d, 1, a1), snapshot(d, 2, a1, 0), changes(d, 3, b1)]).unwrap();
        let refused = PushOutcome::Refused { reason: eenplan_protocol::sync::REJECT_AUTHOR_REVOKED };
        assert_eq!(pushed[..2], [refused, refused]);
        assert_eq!(pushed[2], PushOutcome::Appended { seq: head + 1 }, "Bob's bundle is written");
    }

    pub fn a_commitment_must_name_the_policy_in_force_and_a_document_its_minter_reads(s: &dyn Storage) {
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL), ("ggz", &["basis"], &["basis"])]), 1).unwrap();
        let (ann, gert) = (user(s, "Ann"), user_with_role(s, "Gert", "ggz"));
        let (a1, g1) = (device(s, ann, 1), device(s, gert, 2));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, gert, "ggz").unwrap();
        let older = s.put_commitment(&commitment(doc(P, 0), 1, Some(a1), 1), 1).unwrap();
        assert_eq!(older, CommitmentOutcome::OtherPolicy { current: 2 });
        let unnamed = s.put_commitment(&commitment(doc(P, 0), 1, Some(a1), 1), 0).unwrap();
        assert_eq!(unnamed, CommitmentOutcome::OtherPolicy { current: 2 });
        let newer = s.put_commitment(&commitment(doc(P, 0), 1, Some(a1), 1), 3).unwrap();
        assert_eq!(newer, CommitmentOutcome::OtherPolicy { current: 2 });
        assert_eq!(s.current_epoch(doc(P, 0)).unwrap(), 0, "none of them counts");
        assert_eq!(
            commit(s, &commitment(doc(P, 1), 1, Some(g1), 2)),
            CommitmentOutcome::NoAccess,
            "ggz reads no zorg"
        );
        assert_eq!(commit(s, &commitment(doc(P, 0), 1, Some(a1), 3)), CommitmentOutcome::Stored);
    }

    pub fn a_session_records_its_time_and_nonce_and_forgets_a_wipe_report(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let a1 = device(s, ann, 1);
        let fresh = s.device(a1).unwrap().unwrap();
        assert_eq!((fresh.last_session_at, fresh.wipe_nonce_hash), (None, None));
        assert!(!s.record_session(a1, Some([4; 32]), 100).unwrap().wipe_report_cleared);
        // A session that registers no nonce keeps the last one.
        s.record_session(a1, None, 200).unwrap();
        let seen = s.device(a1).unwrap().unwrap();
        assert_eq!((seen.last_session_at, seen.wipe_nonce_hash), (Some(200), Some([4; 32])));
        assert!(wipe(s, a1, b"a replayed report", 300));
        assert_eq!(s.device(a1).unwrap().unwrap().wiped_at, Some(300));
        assert!(
            s.record_session(a1, Some([5; 32]), 400).unwrap().wipe_report_cleared,
            "it is alive after all"
        );
        let after = s.device(a1).unwrap().unwrap();
        assert_eq!((after.wiped_at, after.wipe_nonce_hash), (None, Some([5; 32])));
        assert_eq!(s.record_session(DeviceId([9; 16]), None, 1), Err(StorageError::NotFound));
    }

    pub fn a_devices_name_and_last_seen_time_are_kept_and_never_go_back(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let code = [40; 32];
        s.create_enrolment(&code, ann, i64::MAX).unwrap();
        let name =
            StoredName { label: "Ann's Android".into(), platform: "android".into(), signature: vec![1; 64] };
        let a1 = DeviceId([40; 16]);
        s.claim_enrolment(&code, &NewDevice { name: Some(name.clone()), ..new_device(40) }, 5).unwrap();
        let fresh = s.device(a1).unwrap().unwrap();
        assert_eq!((fresh.name.as_ref(), fresh.last_seen()), (Some(&name), None));
        let renamed =
            StoredName { label: "Werktelefoon".into(), platform: "ios".into(), signature: vec![2; 64] };
        s.record_device_name(a1, &renamed).unwrap();
        assert_eq!(s.device(a1).unwrap().unwrap().name, Some(renamed.clone()));
        assert_eq!(s.record_device_name(DeviceId([41; 16]), &renamed), Err(StorageError::NotFound));
        s.record_last_seen(a1, 1_000).unwrap();
        s.record_last_seen(a1, 900).unwrap();
        assert_eq!(s.device(a1).unwrap().unwrap().last_seen(), Some(1_000), "an earlier time never wins");
        s.record_session(a1, None, 2_000).unwrap();
        assert_eq!(s.device(a1).unwrap().unwrap().last_seen(), Some(2_000), "a session is a sighting");
        s.record_last_seen(DeviceId([41; 16]), 1).unwrap();
    }

    pub fn a_wipe_report_is_stored_only_while_the_device_stands_as_it_was_judged(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let a1 = device(s, ann, 1);
        s.record_session(a1, Some([4; 32]), 100).unwrap();
        let judged = WipeGuard::of(&s.device(a1).unwrap().unwrap());
        // A session registers a new nonce between the judgement and the write.
        s.record_session(a1, Some([5; 32]), 150).unwrap();
        assert!(!s.record_wipe(a1, b"report", &judged, 160).unwrap());
        assert_eq!(s.device(a1).unwrap().unwrap().wiped_at, None);
        // So does a revocation.
        let judged = WipeGuard::of(&s.device(a1).unwrap().unwrap());
        s.revoke_device(a1, &revocation(1), 170).unwrap();
        assert!(!s.record_wipe(a1, b"report", &judged, 180).unwrap());
        let judged = WipeGuard::of(&s.device(a1).unwrap().unwrap());
        assert!(s.record_wipe(a1, b"report", &judged, 190).unwrap());
        assert_eq!(s.device(a1).unwrap().unwrap().wiped_at, Some(190));
    }

    pub fn a_batch_with_an_unknown_compartment_is_refused_whole(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let a1 = device(s, ann, 1);
        let bad = DocumentId { plan: P, compartment: 4 };
        let head = s.head().unwrap();
        let refused = s.push_batch(&[changes(doc(P, 0), 1, a1), changes(bad, 2, a1)]);
        assert!(matches!(refused, Err(StorageError::InvalidState(_))));
        assert_eq!(s.head().unwrap(), head);
        assert_eq!(s.document_stats(doc(P, 0)).unwrap().bundles, 0);
        let refused = s.put_envelopes(a1, &[envelope(a1, doc(P, 0), 1, 1), envelope(a1, bad, 1, 1)]);
        assert!(matches!(refused, Err(StorageError::InvalidState(_))));
        assert!(s.envelopes_for(a1, 0).unwrap().is_empty());
    }

    pub fn a_pushed_batch_is_durable_and_whole_across_reopen(b: &mut dyn Backend) {
        let (ann, bob) = (user(b.storage(), "Ann"), user(b.storage(), "Bob"));
        let a1 = device(b.storage(), ann, 1);
        let b1 = device(b.storage(), bob, 2);
        b.storage().register_plan(P, ann, a1, 1).unwrap();
        b.storage().add_participant(P, bob, "wijkteam").unwrap();
        let batch: Vec<NewBundle> = (0..200).map(|i| changes(doc(P, (i % 4) as u8), i, a1)).collect();
        let pushed = push(b.storage(), &batch);
        b.reopen();
        let s = b.storage();
        assert_eq!(s.head().unwrap(), *pushed.last().unwrap());
        let batch_got = s.pull(bob, b1, 0, BIG).unwrap();
        assert_eq!(seqs(&batch_got), pushed);
        let bytes: Vec<&[u8]> = batch_got.bundles.iter().map(|b| b.bytes.as_slice()).collect();
        assert_eq!(bytes, batch.iter().map(|b| b.bytes.as_slice()).collect::<Vec<_>>());
    }

    pub fn everything_survives_reopen(b: &mut dyn Backend) {
        let s = b.storage();
        s.init_network(&network(), &admin(7, "Beheer"), &open_policy()).unwrap();
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let a1 = device(s, ann, 1);
        s.create_enrolment(&[2; 32], bob, i64::MAX).unwrap();
        s.create_enrolment(&[3; 32], bob, i64::MAX).unwrap();
        s.claim_enrolment(&[2; 32], &new_device(2), 7).unwrap();
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "ggz").unwrap();
        let c = push(s, &[changes(doc(P, 0), 1, a1)]);
        push(s, &[requested_snapshot(s, doc(P, 0), 2, a1, c[0])]);
        s.request_snapshots(a1, &[doc(P, 1)], c[0], ASKED_AT).unwrap();
        seal(s, a1, &[envelope(a1, doc(P, 0), 1, 1)]);
        mint(s, &[doc(P, 0), doc(P, 1)], a1);
        let a2 = device(s, ann, 9);
        s.record_session(a2, Some([6; 32]), 7).unwrap();
        s.revoke_device(a2, &revocation(4), 8).unwrap();
        assert!(wipe(s, a2, b"report", 9));
        let policy_and_keys = |s: &dyn Storage| {
            (
                s.policy().unwrap(),
                s.commitment(doc(P, 0), 1).unwrap(),
                s.current_epoch(doc(P, 1)).unwrap(),
                s.rotation_tasks(10).unwrap(),
                s.wipe_order(a2).unwrap(),
                s.held_keys(a1).unwrap(),
                s.snapshot_requests(a1, ASKED_AT).unwrap(),
            )
        };
        let keys_before = policy_and_keys(s);
        assert_eq!(keys_before.3.len(), 2, "the revocation queued both documents with a key");
        assert_eq!(keys_before.6, [(doc(P, 1), c[0])], "the consumed request is gone");
        let before = (
            s.orgs().unwrap(),
            s.users().unwrap(),
            s.devices().unwrap(),
            s.participants(P).unwrap(),
            s.head().unwrap(),
            s.pull(bob, DeviceId([2; 16]), 0, BIG).unwrap(),
            s.envelopes_for(a1, 0).unwrap(),
            s.document_stats(doc(P, 0)).unwrap(),
        );

        b.reopen();
        let s = b.storage();
        assert_eq!(policy_and_keys(s), keys_before);
        assert_eq!(s.device(a2).unwrap().unwrap().wiped_at, Some(9));
        assert_eq!(s.network().unwrap(), Some(network()));
        assert_eq!(s.admin(&[7; 32]).unwrap(), Some(admin(7, "Beheer")));
        let after = (
            s.orgs().unwrap(),
            s.users().unwrap(),
            s.devices().unwrap(),
            s.participants(P).unwrap(),
            s.head().unwrap(),
            s.pull(bob, DeviceId([2; 16]), 0, BIG).unwrap(),
            s.envelopes_for(a1, 0).unwrap(),
            s.document_stats(doc(P, 0)).unwrap(),
        );
        assert_eq!(before, after);
        assert_eq!(s.pending_devices().unwrap().len(), 1);
        // The used code stays used, the unused one still works.
        assert_eq!(s.claim_enrolment(&[2; 32], &new_device(8), 7), Err(StorageError::NotFound));
        assert_eq!(s.claim_enrolment(&[3; 32], &new_device(3), 7).unwrap(), bob);
    }

    pub fn a_pull_running_beside_pushes_never_skips_a_committed_bundle(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let a1 = device(s, ann, 1);
        let a2 = device(s, ann, 2);
        let b1 = device(s, bob, 3);
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        let received = std::thread::scope(|scope| {
            let pushers: Vec<_> = [(a1, 0u64), (a2, 1_000_000)]
                .into_iter()
                .map(|(author, base)| {
                    scope.spawn(move || {
                        for round in 0..40u64 {
                            let batch: Vec<NewBundle> = (0..5)
                                .map(|i| changes(doc(P, (i % 4) as u8), base + round * 5 + i, author))
                                .collect();
                            push(s, &batch);
                        }
                    })
                })
                .collect();
            let mut cursor = 0;
            let mut received = Vec::new();
            while pushers.iter().any(|p| !p.is_finished()) {
                let batch = s.pull(bob, b1, cursor, 2_000).unwrap();
                received.extend(seqs(&batch));
                cursor = batch.head;
            }
            for pusher in pushers {
                pusher.join().unwrap();
            }
            received.extend(sync(s, bob, b1, cursor, 2_000).0);
            received
        });
        assert_eq!(received.len(), 400);
        assert_eq!(received.iter().collect::<BTreeSet<_>>().len(), 400, "nothing twice");
    }

    // The sharing policy, key epochs, rotations, revocation and wipe.

    pub fn the_policy_decides_which_compartments_a_user_reads_and_a_role_without_reads_gets_nothing(
        s: &dyn Storage,
    ) {
        let narrow = policy(
            2,
            &[
                ("wijkteam", &["basis", "zorg", "veiligheid"], &["basis", "zorg"]),
                ("politie", &["basis", "veiligheid", "justitie"], &["justitie"]),
            ],
        );
        s.set_policy(&narrow, 2).unwrap();
        assert_eq!(s.policy().unwrap(), Some(narrow));
        let ann = user(s, "Ann");
        let piet = user_with_role(s, "Piet", "politie");
        let gert = user_with_role(s, "Gert", "ggz");
        let (a1, p1, g1) = (device(s, ann, 1), device(s, piet, 2), device(s, gert, 3));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, piet, "politie").unwrap();
        s.add_participant(P, gert, "ggz").unwrap();
        let x = push(s, &(0..4).map(|c| changes(doc(P, c), u64::from(c), a1)).collect::<Vec<_>>());

        let readable =
            |user| s.readable_documents(user).unwrap().into_iter().map(|(d, _)| d).collect::<Vec<_>>();
        assert_eq!(readable(ann), [doc(P, 0), doc(P, 1), doc(P, 2)]);
        assert_eq!(readable(piet), [doc(P, 0), doc(P, 2), doc(P, 3)]);
        assert!(readable(gert).is_empty(), "a role the policy does not name reads nothing");
        assert_eq!(sync(s, piet, p1, 0, BIG).0, [x[0], x[2], x[3]], "never the zorg document");
        assert!(sync(s, gert, g1, 0, BIG).0.is_empty());

        let reader_ids =
            |d| s.readers(d).unwrap().into_iter().map(|r| r.device.device_id).collect::<Vec<_>>();
        assert_eq!(reader_ids(doc(P, 1)), [a1]);
        assert_eq!(reader_ids(doc(P, 3)), [p1]);
        let mut both = vec![a1, p1];
        both.sort();
        assert_eq!(reader_ids(doc(P, 2)), both);
        assert_eq!(s.devices_missing_envelope(doc(P, 3), 1).unwrap(), [p1]);
        assert_eq!(s.unminted_documents(gert).unwrap(), []);
    }

    pub fn a_policy_must_be_newer_than_the_stored_one(s: &dyn Storage) {
        let two = policy(2, &[("wijkteam", &["basis"], &[])]);
        s.set_policy(&two, 2).unwrap();
        for version in [1, 2] {
            let refused = s.set_policy(&policy(version, &[("wijkteam", ALL, ALL)]), 3);
            assert!(matches!(refused, Err(StorageError::Conflict(_))), "version {version}");
        }
        assert_eq!(s.policy().unwrap(), Some(two));
    }

    pub fn a_policy_that_takes_a_read_or_write_away_queues_exactly_the_rotations_of_documents_with_a_key(
        s: &dyn Storage,
    ) {
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL), ("politie", ALL, ALL)]), 1).unwrap();
        let ann = user(s, "Ann");
        let piet = user_with_role(s, "Piet", "politie");
        let (a1, p1) = (device(s, ann, 1), device(s, piet, 2));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.register_plan(Q, ann, a1, 1).unwrap();
        s.add_participant(P, piet, "politie").unwrap();
        // P/veiligheid has no key yet; nothing to rotate there.
        mint(s, &[doc(P, 0), doc(P, 1), doc(P, 3), doc(Q, 1)], a1);
        seal(
            s,
            a1,
            &[envelope(p1, doc(P, 1), 1, 1), envelope(p1, doc(P, 3), 1, 2), envelope(a1, doc(P, 1), 1, 3)],
        );

        let taken = policy(3, &[("wijkteam", ALL, ALL), ("politie", &["basis", "justitie"], &["basis"])]);
        // P/zorg (read lost) and P/justitie (write lost, read kept); Q has no politie
        // participant.
        assert_eq!(s.set_policy(&taken, 5).unwrap(), 2);
        let tasks = s.rotation_tasks(10).unwrap();
        let mut queued = tasks.iter().map(|t| (t.document, t.current_epoch, t.queued_at)).collect::<Vec<_>>();
        queued.sort_by_key(|(d, _, _)| d.compartment);
        assert_eq!(queued, [(doc(P, 1), 1, 5), (doc(P, 3), 1, 5)]);
        assert!(s.rotation_pending(doc(P, 1)).unwrap() && s.rotation_pending(doc(P, 3)).unwrap());
        assert!(!s.rotation_pending(doc(P, 2)).unwrap() && !s.rotation_pending(doc(Q, 1)).unwrap());
        assert_eq!(
            s.envelopes_for(p1, 0).unwrap(),
            [envelope(p1, doc(P, 3), 1, 2)],
            "the lost read's key is gone, the kept read's stays"
        );
        assert_eq!(s.envelopes_for(a1, 0).unwrap().len(), 1, "others keep theirs");
        assert_eq!(s.pending_rotations().unwrap(), 2);
    }

    pub fn a_policy_that_gives_a_read_sends_the_newly_readable_history(s: &dyn Storage) {
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL), ("politie", &["basis"], &["basis"])]), 1).unwrap();
        let ann = user(s, "Ann");
        let piet = user_with_role(s, "Piet", "politie");
        let (a1, p1) = (device(s, ann, 1), device(s, piet, 2));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, piet, "politie").unwrap();
        let x = push(s, &[changes(doc(P, 0), 1, a1), changes(doc(P, 3), 2, a1)]);
        let (got, cursor) = sync(s, piet, p1, 0, BIG);
        assert_eq!(got, [x[0]]);

        s.set_policy(
            &policy(3, &[("wijkteam", ALL, ALL), ("politie", &["basis", "justitie"], &["basis"])]),
            2,
        )
        .unwrap();
        let (got, _) = sync(s, piet, p1, cursor, BIG);
        assert!(got.contains(&x[1]), "the justitie history arrives although it is older than the cursor");
    }

    pub fn every_policy_version_stays_readable_by_version(s: &dyn Storage) {
        let first = s.policy().unwrap().unwrap();
        let two = policy(2, &[("wijkteam", &["basis"], &[])]);
        s.set_policy(&two, 2).unwrap();
        assert_eq!(s.policy_version(first.policy.version).unwrap(), Some(first.signed));
        assert_eq!(s.policy_version(2).unwrap(), Some(two.signed));
        assert_eq!(s.policy_version(9).unwrap(), None);
    }

    pub fn a_role_change_recertifies_every_device_keeps_the_old_certificates_and_rotates_what_is_lost(
        s: &dyn Storage,
    ) {
        let roles: &[(&str, &[&str], &[&str])] = &[
            ("wijkteam", ALL, ALL),
            ("ggz", &["basis", "zorg"], &["basis", "zorg"]),
            ("politie", &["basis", "justitie"], &["basis", "justitie"]),
        ];
        s.set_policy(&policy(2, roles), 1).unwrap();
        let ann = user(s, "Ann");
        let gert = user_with_role(s, "Gert", "ggz");
        let (a1, g1, g2) = (device(s, ann, 1), device(s, gert, 2), device(s, gert, 3));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, gert, "ggz").unwrap();
        mint(s, &[doc(P, 0), doc(P, 1), doc(P, 3)], a1);
        seal(s, a1, &[envelope(g1, doc(P, 0), 1, 1), envelope(g1, doc(P, 1), 1, 2)]);
        let x = push(s, &[changes(doc(P, 3), 1, a1)]);
        let (got, cursor) = sync(s, gert, g1, 0, BIG);
        assert!(!got.contains(&x[0]), "ggz reads no justitie");

        // Refused unless it names exactly the user's active devices; nothing changes then.
        for wrong in
            [vec![(g1, vec![2, 0xAA])], vec![(g1, vec![2, 0xAA]), (g2, vec![3, 0xAA]), (a1, vec![1])]]
        {
            let refused = s.change_role(gert, "politie", &wrong, 10);
            assert!(matches!(refused, Err(StorageError::InvalidState(_))), "{refused:?}");
        }
        assert_eq!(s.user(gert).unwrap().unwrap().role, "ggz");
        assert_eq!(s.pending_rotations().unwrap(), 0);
        assert!(matches!(s.change_role(UserId(999), "politie", &[], 10), Err(StorageError::NotFound)));

        let pending =
            s.change_role(gert, "politie", &[(g1, vec![2, 0xAA]), (g2, vec![3, 0xAA])], 10).unwrap();
        assert_eq!(pending, 1, "zorg: read and write lost; basis kept; justitie gained");
        assert_eq!(s.rotation_tasks(10).unwrap().iter().map(|t| t.document).collect::<Vec<_>>(), [doc(P, 1)]);
        assert_eq!(s.user(gert).unwrap().unwrap().role, "politie");
        let record = s.device(g1).unwrap().unwrap();
        assert_eq!((record.certificate, record.certified_at), (Some(vec![2, 0xAA]), 10));
        assert_eq!(s.older_certificates(g1).unwrap(), [vec![2, 0xCE]]);
        assert_eq!(s.older_certificates(a1).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(
            s.envelopes_for(g1, 0).unwrap().iter().map(|e| e.document).collect::<Vec<_>>(),
            [doc(P, 0)]
        );
        // The justitie history arrives although it is older than the cursor.
        let (got, _) = sync(s, gert, g1, cursor, BIG);
        assert!(got.contains(&x[0]));
    }

    pub fn the_first_key_commitment_wins_and_the_current_epoch_is_the_highest(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let (a1, a2) = (device(s, ann, 1), device(s, ann, 2));
        s.register_plan(P, ann, a1, 1).unwrap();
        let d = doc(P, 0);
        assert_eq!(s.current_epoch(d).unwrap(), 0);
        assert_eq!(s.unminted_documents(ann).unwrap(), (0..4).map(|c| doc(P, c)).collect::<Vec<_>>());

        assert_eq!(commit(s, &commitment(d, 1, Some(a1), 1)), CommitmentOutcome::Stored);
        assert_eq!(
            commit(s, &commitment(d, 1, Some(a2), 2)),
            CommitmentOutcome::Exists,
            "the second is ignored"
        );
        assert_eq!(s.commitment(d, 1).unwrap(), Some(commitment(d, 1, Some(a1), 1)));
        assert_eq!(s.current_epoch(d).unwrap(), 1);
        assert_eq!(s.unminted_documents(ann).unwrap(), (1..4).map(|c| doc(P, c)).collect::<Vec<_>>());
        assert_eq!(s.held_keys(a1).unwrap(), [(d, 1)], "the minter holds the key it made");
        assert!(s.held_keys(a2).unwrap().is_empty());
        assert!(s.devices_missing_envelope(d, 1).unwrap() == [a2], "the minter is not asked for");

        assert_eq!(commit(s, &commitment(d, 3, None, 3)), CommitmentOutcome::Stored);
        assert_eq!(s.current_epoch(d).unwrap(), 3);
        assert_eq!(s.commitment(d, 2).unwrap(), None);
        seal(s, a1, &[envelope(a2, d, 3, 4)]);
        assert_eq!(s.held_keys(a2).unwrap(), [(d, 3)]);
        let bad = DocumentId { plan: P, compartment: 4 };
        assert!(matches!(
            s.put_commitment(&commitment(bad, 1, None, 1), 1),
            Err(StorageError::InvalidState(_))
        ));
    }

    pub fn revocation_is_atomic_and_idempotent_deletes_envelopes_and_queues_what_the_device_could_read(
        s: &dyn Storage,
    ) {
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let (phone, laptop, b1) = (device(s, ann, 1), device(s, ann, 2), device(s, bob, 3));
        s.register_plan(P, ann, phone, 1).unwrap();
        s.register_plan(Q, bob, b1, 1).unwrap();
        // P/zorg and P/veiligheid have no key: nothing of them to rotate. Q is not Ann's.
        mint(s, &[doc(P, 0), doc(P, 3)], phone);
        mint(s, &[doc(Q, 0)], b1);
        seal(s, phone, &[envelope(phone, doc(P, 3), 1, 1), envelope(laptop, doc(P, 3), 1, 2)]);

        assert_eq!(s.revoke_device(phone, &revocation(7), 50).unwrap(), 2);
        // Everything at once, as one commit.
        let record = s.device(phone).unwrap().unwrap();
        assert_eq!((record.state, record.revoked_at), (DeviceState::Revoked, Some(50)));
        assert!(s.envelopes_for(phone, 0).unwrap().is_empty());
        assert_eq!(s.envelopes_for(laptop, 0).unwrap().len(), 1);
        assert_eq!(s.wipe_order(phone).unwrap(), Some(revocation(7).wipe_order));
        let queued: Vec<DocumentId> = s.rotation_tasks(10).unwrap().into_iter().map(|t| t.document).collect();
        assert_eq!(queued, [doc(P, 0), doc(P, 3)]);

        assert_eq!(s.revoke_device(phone, &revocation(8), 60).unwrap(), 2, "again: the same answer");
        assert_eq!(s.wipe_order(phone).unwrap(), Some(revocation(7).wipe_order));
        assert_eq!(s.device(phone).unwrap().unwrap().revoked_at, Some(50));
        assert!(s.readers(doc(P, 0)).unwrap().iter().all(|r| r.device.device_id != phone));

        // A pending device never held a key: revoking it queues nothing more.
        s.create_enrolment(&[9; 32], ann, i64::MAX).unwrap();
        s.claim_enrolment(&[9; 32], &new_device(9), 1).unwrap();
        assert_eq!(s.revoke_device(DeviceId([9; 16]), &revocation(9), 70).unwrap(), 2);
    }

    pub fn a_revoked_devices_wipe_order_waits_and_a_wipe_report_is_recorded_once(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let (phone, laptop) = (device(s, ann, 1), device(s, ann, 2));
        assert_eq!(s.wipe_order(laptop).unwrap(), None, "no order for an active device");
        s.revoke_device(phone, &revocation(3), 10).unwrap();
        assert_eq!(s.wipe_order(phone).unwrap(), Some(revocation(3).wipe_order));
        assert_eq!(s.wipe_order(DeviceId([9; 16])).unwrap(), None);

        assert_eq!(s.device(phone).unwrap().unwrap().wiped_at, None);
        assert!(wipe(s, phone, b"signed report", 20));
        assert!(wipe(s, phone, b"another report", 30));
        assert_eq!(s.device(phone).unwrap().unwrap().wiped_at, Some(20));
        let anyone = WipeGuard { state: DeviceState::Active, last_session_at: None, wipe_nonce_hash: None };
        assert_eq!(s.record_wipe(DeviceId([9; 16]), b"r", &anyone, 1), Err(StorageError::NotFound));
        // A device that wiped itself (too many wrong passphrases) no longer receives keys.
        s.register_plan(P, ann, laptop, 1).unwrap();
        assert!(wipe(s, laptop, b"report", 40));
        assert!(s.readers(doc(P, 0)).unwrap().is_empty());
    }

    pub fn removing_a_participant_queues_the_plans_documents_it_could_read(s: &dyn Storage) {
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL), ("ggz", &["basis", "zorg"], &["zorg"])]), 1)
            .unwrap();
        let ann = user(s, "Ann");
        let gert = user_with_role(s, "Gert", "ggz");
        let (a1, g1) = (device(s, ann, 1), device(s, gert, 2));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.register_plan(Q, ann, a1, 1).unwrap();
        s.add_participant(P, gert, "ggz").unwrap();
        s.add_participant(Q, gert, "ggz").unwrap();
        mint(s, &(0..4).flat_map(|c| [doc(P, c), doc(Q, c)]).collect::<Vec<_>>(), a1);
        seal(s, a1, &[envelope(g1, doc(P, 1), 1, 1), envelope(g1, doc(Q, 1), 1, 2)]);

        assert_eq!(s.remove_participant(P, gert, 9).unwrap(), 2, "P/basis and P/zorg, what ggz reads");
        let queued: Vec<DocumentId> = s.rotation_tasks(10).unwrap().into_iter().map(|t| t.document).collect();
        assert_eq!(queued, [doc(P, 0), doc(P, 1)]);
        assert_eq!(s.envelopes_for(g1, 0).unwrap(), [envelope(g1, doc(Q, 1), 1, 2)]);
        // A plan without a membership chain rotates by the administrator's rekey: its devices
        // are asked to make no rotation, in an answer or by the single reads.
        assert_eq!(s.rotations_for(ann).unwrap(), []);
        assert_eq!(s.answer(&answer_query(ann, a1, 0, BIG)).unwrap().rotations, []);
        assert_eq!(s.remove_participant(P, gert, 10).unwrap(), 2, "a non-participant changes nothing");
    }

    pub fn a_membership_chain_appends_in_order_grants_removes_rotates_and_pages_whole_chains(
        s: &dyn Storage,
    ) {
        use eenplan_server::storage::MembershipUpdate;
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL), ("ggz", &["basis", "zorg"], &["zorg"])]), 1)
            .unwrap();
        let ann = user(s, "Ann");
        let gert = user_with_role(s, "Gert", "ggz");
        let (a1, g1) = (device(s, ann, 1), device(s, gert, 2));
        let charter = charter(P, ann, a1);
        assert!(s.register_chartered_plan(&charter).unwrap());
        assert!(s.register_chartered_plan(&charter).unwrap(), "a retry by the creator changes nothing");
        assert_eq!(s.roster(P).unwrap(), Some((1, vec![0xA1])));
        s.register_plan(Q, ann, a1, 5).unwrap();
        assert_eq!(s.roster(Q).unwrap(), None, "a plan without a chain");
        assert!(matches!(s.roster([0xCC; 16]), Err(StorageError::NotFound)));
        mint(s, &(0..4).map(|c| doc(P, c)).collect::<Vec<_>>(), a1);

        let add = MembershipUpdate {
            level: "zorg_en_veiligheidshuis".into(),
            add: vec![(gert, "ggz".into())],
            ..entry(P, a1)
        };
        assert_eq!(s.append_membership(&add).unwrap(), 0);
        assert!(
            matches!(s.append_membership(&add), Err(StorageError::Conflict(_))),
            "the first at a position wins"
        );
        assert!(s.is_participant(P, gert).unwrap());
        assert_eq!(s.plan_levels_of_user(gert).unwrap(), [(P, "zorg_en_veiligheidshuis".to_string())]);
        assert_eq!(s.membership_entries(P, 0).unwrap(), [vec![1; 40], vec![2; 40]]);
        assert_eq!(s.membership_entries(P, 1).unwrap(), [vec![2; 40]]);
        // Gert joined after both entries' positions: his first page holds the whole chain.
        let page = s.membership_for(gert, 0, (10, BIG)).unwrap();
        assert_eq!(page.entries, [vec![1; 40], vec![2; 40]]);
        assert_eq!(s.membership_for(gert, page.through, (10, BIG)).unwrap().entries, Vec::<Vec<u8>>::new());
        assert_eq!(s.membership_for(ann, 0, (1, BIG)).unwrap().entries.len(), 1, "one group at a time");

        let remove = MembershipUpdate {
            seq: 3,
            signed: vec![3; 40],
            roster: vec![0xA3],
            level: "lokaal".into(),
            add: vec![],
            remove: vec![gert],
            rotate: vec![doc(P, 0), doc(P, 1)],
            ..add
        };
        assert_eq!(s.append_membership(&remove).unwrap(), 2);
        assert!(!s.is_participant(P, gert).unwrap());
        assert_eq!(s.rotations_for(ann).unwrap(), [(doc(P, 0), 2), (doc(P, 1), 2)]);
        assert_eq!(s.rotations_for(gert).unwrap(), []);
        // A leaver hears of their removal, by the signed entry, and of nothing after it.
        let farewell = s.membership_for(gert, page.through, (10, BIG)).unwrap();
        assert_eq!(farewell.entries, [vec![3; 40]]);
        assert_eq!(
            s.membership_for(gert, farewell.through, (10, BIG)).unwrap().entries,
            Vec::<Vec<u8>>::new(),
            "a leaver hears no more"
        );
        // A sync answer reads the same pages and rotations in one go.
        let answer = |user, device, after| {
            s.answer(&AnswerQuery { membership_after: after, ..answer_query(user, device, 0, BIG) }).unwrap()
        };
        let (for_gert, for_ann) = (answer(gert, g1, page.through), answer(ann, a1, 0));
        assert_eq!((for_gert.membership, for_gert.rotations), (farewell, vec![]));
        assert_eq!(for_ann.membership, s.membership_for(ann, 0, (10, BIG)).unwrap());
        assert!(!for_ann.membership.entries.is_empty());
        assert_eq!(for_ann.rotations, [(doc(P, 0), 2), (doc(P, 1), 2)]);
        assert_eq!(for_ann.unminted, s.unminted_documents(ann).unwrap());
        // A device revoked meanwhile appends nothing.
        s.revoke_device(a1, &revocation(1), 20).unwrap();
        let late = MembershipUpdate { seq: 4, signed: vec![4; 40], rotate: vec![], remove: vec![], ..remove };
        assert!(matches!(s.append_membership(&late), Err(StorageError::DeviceNotActive)));
    }

    pub fn a_members_erasure_replaces_the_document_by_its_base_and_deletes_every_older_epoch(
        s: &dyn Storage,
    ) {
        use eenplan_server::storage::{MemberErasure, MembershipUpdate};
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL)]), 1).unwrap();
        let ann = user(s, "Ann");
        let a1 = device(s, ann, 1);
        let charter = charter(P, ann, a1);
        s.register_chartered_plan(&charter).unwrap();
        mint(s, &[doc(P, 0), doc(P, 1)], a1);
        let escrow = DeviceId(eenplan_protocol::api::ESCROW_RECIPIENT);
        let key = |d: DocumentId, to: DeviceId, epoch: u32| Envelope {
            recipient: to,
            document: d,
            epoch,
            bytes: vec![epoch as u8; 90],
        };
        seal(s, a1, &[key(doc(P, 0), escrow, 1), key(doc(P, 0), a1, 1), key(doc(P, 1), a1, 1)]);
        let before =
            push(s, &[changes(doc(P, 0), 1, a1), changes(doc(P, 0), 2, a1), changes(doc(P, 1), 3, a1)]);
        let covers = before[1];
        let update = |seq: u32, covers: u64, base_id: u64| MembershipUpdate {
            seq,
            signed: vec![seq as u8; 40],
            roster: vec![0xA0 + seq as u8],
            erasure: Some(MemberErasure {
                document: doc(P, 0),
                epoch: 2,
                covers,
                base: NewBundle { epoch: 2, ..snapshot(doc(P, 0), base_id, a1, covers) },
                commitment: commitment(doc(P, 0), 2, Some(a1), 2),
                envelopes: vec![key(doc(P, 0), escrow, 2), key(doc(P, 0), a1, 2)],
            }),
            now: 7,
            ..entry(P, a1)
        };
        // A bundle of the document after what the base covers: refused whole, nothing changes.
        let late = push(s, &[changes(doc(P, 0), 4, a1)]);
        assert!(matches!(s.append_erasure(&update(2, covers, 10)), Err(StorageError::Conflict(_))));
        assert_eq!(s.roster(P).unwrap().map(|(seq, _)| seq), Some(1));
        assert_eq!(s.current_epoch(doc(P, 0)).unwrap(), 1);
        // A base covering positions the log has not reached: refused, nothing changes.
        let beyond = s.head().unwrap() + 1;
        let refused = s.append_erasure(&update(2, beyond, 13));
        assert!(matches!(refused, Err(StorageError::InvalidState(_))), "{refused:?}");
        assert_eq!(s.roster(P).unwrap().map(|(seq, _)| seq), Some(1));
        // A second device of Ann's that follows the document from here.
        let a2 = device(s, ann, 2);
        let (_, followed) = sync(s, ann, a2, 0, BIG);
        // Covering everything: the older bundles, envelopes (escrow's too) and commitment go.
        let erased = s.append_erasure(&update(2, late[0], 11)).unwrap();
        assert_eq!((erased.bundles, erased.envelopes, erased.escrow_envelopes), (3, 1, 1));
        assert_eq!(s.current_epoch(doc(P, 0)).unwrap(), 2);
        assert!(s.commitment(doc(P, 0), 1).unwrap().is_none());
        assert!(s.escrow_envelopes(P).unwrap().iter().all(|e| e.document != doc(P, 0) || e.epoch == 2));
        // The other compartment is untouched; the base is the document's only bundle and a
        // device behind it receives it.
        assert_eq!(s.document_stats(doc(P, 1)).unwrap().bundles, 1);
        assert_eq!(s.document_stats(doc(P, 0)).unwrap().bundles, 1);
        let pulled = s.pull(ann, DeviceId([9; 16]), 0, 1 << 20).unwrap();
        assert!(pulled.bundles.iter().any(|b| b.bundle_id == id16(11)), "the base is delivered");
        let next = s.pull(ann, a2, followed, 1 << 20).unwrap();
        assert!(next.bundles.iter().any(|b| b.bundle_id == id16(11)), "the base reaches a follower");
        // A push under the erased epoch is refused; a second erasure at the same epoch too.
        let refused = s.push_batch(&[changes(doc(P, 0), 5, a1)]).unwrap();
        assert!(matches!(refused[0], PushOutcome::Refused { .. }), "{refused:?}");
        assert!(s.append_erasure(&update(3, u64::MAX >> 2, 12)).is_err());
    }

    pub fn a_closed_plan_is_listed_and_erasing_it_leaves_only_a_tombstone_that_refuses_registration(
        s: &dyn Storage,
    ) {
        use eenplan_server::storage::MembershipUpdate;
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL)]), 1).unwrap();
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let (a1, b1) = (device(s, ann, 1), device(s, bob, 2));
        for plan in [P, Q] {
            let charter = charter(plan, ann, a1);
            assert!(s.register_chartered_plan(&charter).unwrap());
            mint(s, &(0..4).map(|c| doc(plan, c)).collect::<Vec<_>>(), a1);
        }
        let add = MembershipUpdate { add: vec![(bob, "wijkteam".into())], ..entry(P, a1) };
        s.append_membership(&add).unwrap();
        let escrow = DeviceId(eenplan_protocol::api::ESCROW_RECIPIENT);
        seal(
            s,
            a1,
            &[
                envelope(b1, doc(P, 0), 1, 7),
                envelope(escrow, doc(P, 0), 1, 8),
                envelope(b1, doc(Q, 0), 1, 9),
            ],
        );
        push(s, &[changes(doc(P, 0), 1, a1), changes(doc(P, 1), 2, a1), changes(doc(Q, 0), 3, a1)]);
        assert_eq!(s.closed_plans().unwrap(), [], "nothing is closed yet");
        assert_eq!(s.closed_at(P).unwrap(), None);

        let close = MembershipUpdate {
            seq: 3,
            signed: vec![3; 40],
            add: vec![],
            closed_at: Some(50),
            erasure: None,
            now: 50,
            ..add
        };
        s.append_membership(&close).unwrap();
        assert_eq!(s.closed_plans().unwrap(), [(P, 50)]);
        assert_eq!(s.closed_at(P).unwrap(), Some(50));
        assert_eq!(s.erased_at(P).unwrap(), None);

        let erased = s.erase_plan(P, 70).unwrap();
        assert_eq!(
            (erased.envelopes, erased.escrow_envelopes, erased.bundles, erased.already),
            (1, 1, 2, false)
        );
        assert_eq!(s.erased_at(P).unwrap(), Some(70));
        assert_eq!(s.closed_plans().unwrap(), [], "an erased plan is no longer listed");
        assert!(s.escrow_envelopes(P).unwrap().is_empty());
        assert!(matches!(s.roster(P), Err(StorageError::NotFound)));
        assert!(s.membership_entries(P, 0).unwrap().is_empty());
        assert!(!s.is_participant(P, bob).unwrap());
        assert_eq!(
            s.envelopes_for(b1, 0).unwrap(),
            [envelope(b1, doc(Q, 0), 1, 9)],
            "another plan keeps its keys"
        );
        assert_eq!(s.document_stats(doc(P, 0)).unwrap().bundles, 0);
        assert_eq!(s.document_stats(doc(Q, 0)).unwrap().bundles, 1);
        assert_eq!(s.current_epoch(doc(P, 0)).unwrap(), 0, "its commitments went too");

        // The tombstone: the plan cannot be registered again, by anyone; erasing again
        // removes nothing more.
        assert!(!s.register_plan(P, ann, a1, 80).unwrap());
        assert!(matches!(s.roster(P), Err(StorageError::NotFound)));
        let again = s.erase_plan(P, 90).unwrap();
        assert_eq!((again.erased_at, again.already, again.bundles), (70, true, 0));
        assert!(matches!(s.erase_plan([0xCC; 16], 90), Err(StorageError::NotFound)));
    }

    pub fn a_push_during_a_rotation_or_under_an_old_epoch_is_refused_in_the_writing_transaction(
        s: &dyn Storage,
    ) {
        use eenplan_protocol::sync::{REJECT_ROTATING, REJECT_STALE_EPOCH};
        let ann = user(s, "Ann");
        let (phone, laptop) = (device(s, ann, 1), device(s, ann, 2));
        s.register_plan(P, ann, laptop, 1).unwrap();
        let d = doc(P, 0);
        mint(s, &[d], laptop);
        assert!(matches!(s.push_batch(&[changes(d, 1, laptop)]).unwrap()[0], PushOutcome::Appended { .. }));
        s.revoke_device(phone, &revocation(1), 10).unwrap();
        assert_eq!(
            s.push_batch(&[changes(d, 2, laptop)]).unwrap(),
            [PushOutcome::Refused { reason: REJECT_ROTATING }]
        );
        let escrow = DeviceId(eenplan_protocol::api::ESCROW_RECIPIENT);
        rotate_to_epoch_2(s, d, vec![envelope(laptop, d, 2, 5), envelope(escrow, d, 2, 7)], 20);
        let head = s.head().unwrap();
        assert_eq!(
            s.push_batch(&[changes(d, 3, laptop)]).unwrap(),
            [PushOutcome::Refused { reason: REJECT_STALE_EPOCH }]
        );
        let renewed = NewBundle { epoch: 2, ..changes(d, 4, laptop) };
        assert!(matches!(s.push_batch(&[renewed]).unwrap()[0], PushOutcome::Appended { .. }));
        // The refused push took no log position.
        assert_eq!(s.head().unwrap(), head + 1);
    }

    /// A push the route checked while its author's user still took part in the plan reaches
    /// the group commit after the user left: the leaving queued a rotation of what the user
    /// could read in the same transaction, so the writing transaction refuses the push, and
    /// once the rotation is done the push's epoch is stale. Nothing of it reaches the log.
    pub fn a_push_checked_before_its_author_left_the_plan_is_refused_in_the_writing_transaction(
        s: &dyn Storage,
    ) {
        use eenplan_protocol::sync::{REJECT_ROTATING, REJECT_STALE_EPOCH};
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let (a1, b1) = (device(s, ann, 1), device(s, bob, 2));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        let d = doc(P, 0);
        mint(s, &[d], a1);
        seal(s, a1, &[envelope(b1, d, 1, 1)]);
        assert!(matches!(s.push_batch(&[changes(d, 1, b1)]).unwrap()[0], PushOutcome::Appended { .. }));

        assert!(s.remove_participant(P, bob, 10).unwrap() > 0, "what Bob read waits for a new key");
        let head = s.head().unwrap();
        assert_eq!(
            s.push_batch(&[changes(d, 2, b1)]).unwrap(),
            [PushOutcome::Refused { reason: REJECT_ROTATING }]
        );
        assert_eq!(s.head().unwrap(), head, "the refused push took no log position");
        rotate_to_epoch_2(
            s,
            d,
            vec![envelope(a1, d, 2, 5), envelope(DeviceId(eenplan_protocol::api::ESCROW_RECIPIENT), d, 2, 7)],
            20,
        );
        let head = s.head().unwrap();
        assert_eq!(
            s.push_batch(&[changes(d, 3, b1)]).unwrap(),
            [PushOutcome::Refused { reason: REJECT_STALE_EPOCH }]
        );
        assert_eq!(s.head().unwrap(), head, "the refused push took no log position");
    }

    /// Runs without [`prepare`]: a database from before policies. The answer reads in one
    /// transaction (PostgreSQL: one statement with a row per fact) must treat the missing
    /// policy as the single reads do: nothing readable, no policy to send, and no document
    /// asked to be keyed, since no role reads one.
    pub fn an_answer_without_a_stored_policy_reads_nothing_and_sends_no_policy(s: &dyn Storage) {
        assert!(s.policy().unwrap().is_none());
        let (_, bob, a1, b1) = ann_and_bob_in_p(s);
        push(s, &[changes(doc(P, 0), 1, a1)]);
        let answer = s.answer(&answer_query(bob, b1, 0, BIG)).unwrap();
        assert_eq!(answer.policy, None, "no policy is stored");
        assert!(s.readable_documents(bob).unwrap().is_empty());
        assert!(answer.batch.bundles.is_empty(), "nothing is readable without a policy");
        assert!(answer.batch.complete);
        assert_eq!(answer.unminted, s.unminted_documents(bob).unwrap());
        assert!(answer.unminted.is_empty(), "no role reads a compartment");
        assert_eq!(answer.rotations, s.rotations_for(bob).unwrap());
        assert!(answer.snapshot_candidates.is_empty());
        let access = s.user_access(bob, &[doc(P, 0)]).unwrap().unwrap();
        assert!(access.policy.is_none() && access.readable.is_empty());
        assert_eq!(access.epochs, [], "no epoch of what the user cannot read");
    }

    /// An organisation that never stored an audit key: the answer sends none and its cursor
    /// is 0, while another organisation's key is not sent either.
    pub fn an_answer_for_an_organisation_without_audit_keys_sends_none(s: &dyn Storage) {
        let (_, bob, _, b1) = ann_and_bob_in_p(s);
        let other = s.add_org("Veilig Thuis", 48).unwrap();
        let key = AuditKeyRecord { org: other, version: 1, signed: vec![7; 100], stored_at: 9 };
        assert!(s.put_audit_key(&key).unwrap());
        let answer = s.answer(&answer_query(bob, b1, 0, BIG)).unwrap();
        assert_eq!(answer.audit_key, None, "Bob's organisation has no audit key");
        assert_eq!(answer.audit_through, 0);
        assert_eq!(answer.audit_through, s.audit_through(b1).unwrap());
        assert_eq!(answer.policy, Some(open_policy().signed));
    }

    /// The chain names the role a member had when added; a role change since may have given
    /// them more to read. A membership entry that removes them rotates what the server lets
    /// them read, not only what the entry names: else the removed member would keep the
    /// current key of a compartment its role gained, and a push checked before the entry
    /// would be appended under it.
    pub fn a_membership_entry_that_removes_a_user_rotates_everything_the_user_reads_now(s: &dyn Storage) {
        use eenplan_protocol::sync::REJECT_ROTATING;
        use eenplan_server::storage::MembershipUpdate;
        let roles: &[(&str, &[&str], &[&str])] = &[
            ("wijkteam", ALL, ALL),
            ("ggz", &["basis"], &["basis"]),
            ("ggz-zorg", &["basis", "zorg"], &["basis", "zorg"]),
        ];
        s.set_policy(&policy(2, roles), 1).unwrap();
        let ann = user(s, "Ann");
        let gert = user_with_role(s, "Gert", "ggz");
        let (a1, g1) = (device(s, ann, 1), device(s, gert, 2));
        let charter = charter(P, ann, a1);
        assert!(s.register_chartered_plan(&charter).unwrap());
        mint(s, &(0..4).map(|c| doc(P, c)).collect::<Vec<_>>(), a1);
        let add = MembershipUpdate { add: vec![(gert, "ggz".into())], ..entry(P, a1) };
        s.append_membership(&add).unwrap();
        assert_eq!(s.change_role(gert, "ggz-zorg", &[(g1, vec![2, 0xAA])], 7).unwrap(), 0, "a gained read");
        seal(s, a1, &[envelope(g1, doc(P, 0), 1, 1), envelope(g1, doc(P, 1), 1, 2)]);
        let checked = changes(doc(P, 1), 1, g1);

        // The entry names only basis: the compartment the chain's role reads.
        let remove = MembershipUpdate {
            seq: 3,
            signed: vec![3; 40],
            roster: vec![0xA3],
            add: vec![],
            remove: vec![gert],
            rotate: vec![doc(P, 0)],
            now: 8,
            ..add
        };
        assert_eq!(s.append_membership(&remove).unwrap(), 2, "basis and zorg wait for a new key");
        assert_eq!(s.rotations_for(ann).unwrap(), [(doc(P, 0), 2), (doc(P, 1), 2)]);
        assert_eq!(s.push_batch(&[checked]).unwrap(), [PushOutcome::Refused { reason: REJECT_ROTATING }]);
    }

    pub fn completing_a_rotation_is_refused_for_a_wrong_epoch_and_settles_only_older_tasks(s: &dyn Storage) {
        let ann = user(s, "Ann");
        let (phone, laptop, tablet) = (device(s, ann, 1), device(s, ann, 2), device(s, ann, 3));
        s.register_plan(P, ann, laptop, 1).unwrap();
        mint(s, &[doc(P, 0), doc(P, 1)], laptop);
        assert_eq!(s.revoke_device(phone, &revocation(1), 10).unwrap(), 2);
        let d = doc(P, 0);
        let done = |epoch: u32, envelopes: Vec<Envelope>| CompletedRotation {
            document: d,
            new_epoch: epoch,
            commitment: vec![epoch as u8; 150],
            minter_device: None,
            envelopes,
            now: 20,
        };
        let escrow = DeviceId(eenplan_protocol::api::ESCROW_RECIPIENT);
        let sealed = |epoch| {
            vec![envelope(laptop, d, epoch, 5), envelope(tablet, d, epoch, 6), envelope(escrow, d, epoch, 7)]
        };
        for wrong in [1, 3] {
            assert!(matches!(
                s.complete_rotation(&done(wrong, sealed(wrong))),
                Err(StorageError::InvalidState(_))
            ));
        }
        // A recipient revoked meanwhile: nothing of it is stored.
        s.revoke_device(tablet, &revocation(2), 15).unwrap();
        assert!(matches!(s.complete_rotation(&done(2, sealed(2))), Err(StorageError::InvalidState(_))));
        assert_eq!((s.current_epoch(d).unwrap(), s.envelopes_for(laptop, 0).unwrap().len()), (1, 0));
        assert!(s.rotation_pending(d).unwrap());

        let head = s.head().unwrap();
        let laptop_and_escrow = vec![envelope(laptop, d, 2, 5), envelope(escrow, d, 2, 7)];
        assert_eq!(s.complete_rotation(&done(2, laptop_and_escrow)).unwrap(), 1, "P/zorg still waits");
        assert_eq!(s.current_epoch(d).unwrap(), 2);
        assert_eq!(
            s.commitment(d, 2).unwrap(),
            Some(commitment(d, 2, None, 2)).map(|c| CommitmentRecord {
                signed: vec![2; 150],
                stored_at: 20,
                ..c
            })
        );
        assert_eq!(
            s.envelopes_for(laptop, head).unwrap(),
            [envelope(laptop, d, 2, 5)],
            "delivered after the cursor"
        );
        assert!(s.escrow_envelopes(P).unwrap().contains(&envelope(escrow, d, 2, 7)));
        assert!(!s.rotation_pending(d).unwrap() && s.rotation_pending(doc(P, 1)).unwrap());
        assert!(
            matches!(s.complete_rotation(&done(3, vec![])), Err(StorageError::InvalidState(_))),
            "no task"
        );

        // A revocation during a rotation queues the document at its new epoch: it waits for 3.
        let laptop2 = device(s, ann, 4);
        s.revoke_device(laptop2, &revocation(3), 30).unwrap();
        assert!(s.rotation_pending(d).unwrap());
        assert_eq!(s.rotation_tasks(10).unwrap().iter().find(|t| t.document == d).unwrap().current_epoch, 2);
        assert_eq!(s.complete_rotation(&done(3, vec![envelope(laptop, d, 3, 8)])).unwrap(), 1);
        assert!(!s.rotation_pending(d).unwrap());
    }

    pub fn rotation_tasks_list_every_reader_with_the_epochs_it_holds(s: &dyn Storage) {
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL), ("ggz", &["basis"], &["basis"])]), 1).unwrap();
        let ann = user(s, "Ann");
        let bob = user(s, "Bob");
        let gert = user_with_role(s, "Gert", "ggz");
        let (a1, a2, b1, g1) = (device(s, ann, 1), device(s, ann, 2), device(s, bob, 3), device(s, gert, 4));
        s.register_plan(P, ann, a1, 1).unwrap();
        s.add_participant(P, bob, "wijkteam").unwrap();
        s.add_participant(P, gert, "ggz").unwrap();
        let d = doc(P, 1);
        mint(s, &[d], a1);
        seal(s, a1, &[envelope(b1, d, 1, 1)]);
        s.revoke_device(a2, &revocation(1), 5).unwrap();
        let tasks = s.rotation_tasks(1).unwrap();
        assert_eq!(tasks.len(), 1, "the limit holds");
        let task = s.rotation_tasks(10).unwrap().into_iter().find(|t| t.document == d).unwrap();
        let readers: Vec<(DeviceId, Vec<u32>)> =
            task.readers.into_iter().map(|r| (r.device.device_id, r.held_epochs)).collect();
        // Not the revoked a2, not Gert (ggz does not read zorg).
        assert_eq!(readers, [(a1, vec![1]), (b1, vec![1])]);
        assert!(!readers.iter().any(|(id, _)| *id == g1));
    }

    // The property: random pushes, snapshots, envelopes, grants, new devices and pulls with
    // random page sizes.

    #[derive(Debug, Clone)]
    pub enum Op {
        /// `count` change bundles by device `device % devices` to one document of a plan its
        /// user may write.
        Push {
            device: usize,
            plan: usize,
            compartment: u8,
            count: usize,
            size: usize,
        },
        /// A snapshot of one document by a device that holds all of it up to its cursor.
        Snapshot {
            device: usize,
            plan: usize,
            compartment: u8,
        },
        /// A key envelope for a device.
        Envelope {
            device: usize,
        },
        /// One page.
        Pull {
            device: usize,
            max_bytes: usize,
        },
        Grant {
            user: usize,
            plan: usize,
        },
        NewDevice {
            user: usize,
        },
    }

    pub fn op(snapshots: bool) -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let snapshot_weight = if snapshots { 2 } else { 0 };
        prop_oneof![
            5 => (0..16usize, 0..2usize, 0..4u8, 1..4usize, 1..300usize).prop_map(|(device, plan, compartment, count, size)| Op::Push { device, plan, compartment, count, size }),
            snapshot_weight => (0..16usize, 0..2usize, 0..4u8).prop_map(|(device, plan, compartment)| Op::Snapshot { device, plan, compartment }),
            1 => (0..16usize).prop_map(|device| Op::Envelope { device }),
            4 => (0..16usize, 0..1_200usize).prop_map(|(device, max_bytes)| Op::Pull { device, max_bytes }),
            1 => (0..3usize, 0..2usize).prop_map(|(user, plan)| Op::Grant { user, plan }),
            1 => (0..3usize).prop_map(|user| Op::NewDevice { user }),
        ]
    }

    struct Dev {
        id: DeviceId,
        user: usize,
        cursor: u64,
        /// Bundle ids received, to catch anything delivered twice.
        received: HashSet<[u8; 16]>,
        /// The seqs of the changes this device holds, per document: received, written, or
        /// inside a snapshot it received.
        holds: HashMap<DocumentId, BTreeSet<u64>>,
        /// The epochs of the envelopes put for it, and of those it received.
        envelopes_put: BTreeSet<u32>,
        /// The mailbox cursor.
        mailbox: u64,
        envelopes_received: BTreeSet<u32>,
    }

    struct Logged {
        document: DocumentId,
        author: DeviceId,
        kind: BundleKind,
    }

    /// What a receiver checks a snapshot of `document` covering `covers` against: each
    /// author's newest change up to it, in author order.
    fn expected_witnesses(log: &BTreeMap<u64, Logged>, document: DocumentId, covers: u64) -> Vec<u64> {
        let mut newest: BTreeMap<DeviceId, u64> = BTreeMap::new();
        for (&seq, l) in log.range(..=covers) {
            if l.document == document && l.kind == BundleKind::Changes {
                newest.insert(l.author, seq);
            }
        }
        newest.into_values().collect()
    }

    /// Runs `ops`, then syncs every device to the end with pages of `final_budget` bytes, and
    /// checks that each device holds every change of every document its user may read, got
    /// every snapshot with exactly its witnesses and every envelope once, and was never sent
    /// anything twice. Without snapshots that means each device received exactly the other
    /// devices' bundles.
    pub fn every_device_ends_up_with_every_change_it_may_read_and_nothing_twice(
        s: &dyn Storage,
        ops: &[Op],
        snapshots: bool,
        final_budget: usize,
    ) {
        let plans = [P, Q];
        let users: Vec<UserId> = ["Ann", "Bob", "Carol"].iter().map(|n| user(s, n)).collect();
        let mut devs: Vec<Dev> = Vec::new();
        let mut next_tag = 1u8;
        let mut add_device = |s: &dyn Storage, devs: &mut Vec<Dev>, user: usize| {
            let id = device(s, users[user], next_tag);
            next_tag += 1;
            devs.push(Dev {
                id,
                user,
                cursor: 0,
                received: HashSet::new(),
                holds: HashMap::new(),
                envelopes_put: BTreeSet::new(),
                mailbox: 0,
                envelopes_received: BTreeSet::new(),
            });
        };
        for u in 0..3 {
            add_device(s, &mut devs, u);
        }
        s.register_plan(P, users[0], devs[0].id, 1).unwrap();
        s.register_plan(Q, users[1], devs[1].id, 1).unwrap();

        let mut log: BTreeMap<u64, Logged> = BTreeMap::new();
        let mut snapshot_holds: HashMap<[u8; 16], BTreeSet<u64>> = HashMap::new();
        let mut next_id = 1u64;
        let mut next_epoch = 1u32;

        let page = |s: &dyn Storage,
                    dev: &mut Dev,
                    log: &BTreeMap<u64, Logged>,
                    snapshot_holds: &HashMap<[u8; 16], BTreeSet<u64>>,
                    max_bytes: usize|
         -> bool {
            let user = users[dev.user];
            let grants: HashMap<PlanId, u64> = plans
                .iter()
                .filter_map(|&p| {
                    s.participants(p)
                        .unwrap()
                        .into_iter()
                        .find(|x| x.user == user)
                        .map(|x| (p, x.granted_at_seq))
                })
                .collect();
            let mut request = PullRequest::new(user, dev.id, dev.cursor, max_bytes);
            request.envelopes_after = dev.mailbox;
            let batch = s.pull_page(&request).unwrap();
            let sizes = batch.bundles.iter().chain(&batch.witnesses).map(|b| b.bytes.len());
            let total: usize = sizes.chain(batch.envelopes.iter().map(|e| e.bytes.len())).sum();
            if total > max_bytes {
                // Only one unit (a bundle, a snapshot with its witnesses, an envelope) may.
                assert_eq!(
                    batch.bundles.len() + batch.envelopes.len(),
                    1,
                    "an oversized page of several units"
                );
            }
            let mut witnesses = batch.witnesses.iter();
            for b in &batch.bundles {
                assert!(grants.contains_key(&b.document.plan), "a bundle of an unreadable plan");
                assert_ne!(b.author, dev.id, "a device's own bundle came back");
                assert!(dev.received.insert(b.bundle_id), "bundle {} delivered twice", b.seq);
                assert_eq!(log[&b.seq].document, b.document);
                let holds = dev.holds.entry(b.document).or_default();
                match b.kind {
                    BundleKind::Changes => {
                        holds.insert(b.seq);
                    }
                    BundleKind::Snapshot { covers } => {
                        holds.extend(&snapshot_holds[&b.bundle_id]);
                        let want = expected_witnesses(log, b.document, covers);
                        let got: Vec<u64> = witnesses.by_ref().take(want.len()).map(|w| w.seq).collect();
                        assert_eq!(got, want, "the witnesses of snapshot {}", b.seq);
                    }
                }
            }
            assert!(witnesses.next().is_none(), "witnesses without a snapshot");
            for e in &batch.envelopes {
                assert_eq!(e.recipient, dev.id);
                assert!(dev.envelopes_received.insert(e.epoch), "envelope {} delivered twice", e.epoch);
            }
            if batch.complete {
                assert_eq!(batch.head, s.head().unwrap());
            } else {
                assert!(
                    !batch.bundles.is_empty() || !batch.envelopes.is_empty(),
                    "an empty page that is not the end"
                );
            }
            dev.cursor = batch.head;
            dev.mailbox = batch.envelopes_through;
            batch.complete
        };

        for op in ops {
            match *op {
                Op::Push { device, plan, compartment, count, size } => {
                    let index = device % devs.len();
                    let dev = &mut devs[index];
                    if !s.is_participant(plans[plan], users[dev.user]).unwrap() {
                        continue;
                    }
                    let document = doc(plans[plan], compartment);
                    let items: Vec<NewBundle> = (0..count as u64)
                        .map(|i| bundle(document, next_id + i, dev.id, size + i as usize))
                        .collect();
                    next_id += count as u64;
                    for seq in push(s, &items) {
                        log.insert(seq, Logged { document, author: dev.id, kind: BundleKind::Changes });
                        dev.holds.entry(document).or_default().insert(seq);
                    }
                }
                Op::Snapshot { device, plan, compartment } => {
                    let index = device % devs.len();
                    let dev = &mut devs[index];
                    // A snapshot covers a log position; a resume token is none.
                    if eenplan_protocol::sync::is_resume_token(dev.cursor) {
                        continue;
                    }
                    let document = doc(plans[plan], compartment);
                    let covered: BTreeSet<u64> = log
                        .range(..=dev.cursor)
                        .filter(|(_, l)| l.document == document && l.kind == BundleKind::Changes)
                        .map(|(&seq, _)| seq)
                        .collect();
                    let holds = dev.holds.get(&document).cloned().unwrap_or_default();
                    // Only a device that really holds what it claims may snapshot.
                    if covered.is_empty() || !covered.is_subset(&holds) {
                        continue;
                    }
                    let item = requested_snapshot(s, document, next_id, dev.id, dev.cursor);
                    next_id += 1;
                    snapshot_holds.insert(item.bundle_id, covered);
                    let seq = push(s, &[item])[0];
                    let kind = BundleKind::Snapshot { covers: dev.cursor };
                    log.insert(seq, Logged { document, author: dev.id, kind });
                }
                Op::Envelope { device } => {
                    let index = device % devs.len();
                    let dev = &mut devs[index];
                    seal(s, dev.id, &[envelope(dev.id, doc(P, 0), next_epoch, 9)]);
                    dev.envelopes_put.insert(next_epoch);
                    next_epoch += 1;
                }
                Op::Pull { device, max_bytes } => {
                    let index = device % devs.len();
                    page(s, &mut devs[index], &log, &snapshot_holds, max_bytes);
                }
                Op::Grant { user, plan } => s.add_participant(plans[plan], users[user], "wijkteam").unwrap(),
                Op::NewDevice { user } => {
                    if devs.len() < 8 {
                        add_device(s, &mut devs, user);
                    }
                }
            }
        }

        for dev in &mut devs {
            let mut rounds = 0;
            while !page(s, dev, &log, &snapshot_holds, final_budget) {
                rounds += 1;
                assert!(rounds < 10_000, "sync does not finish");
            }
            assert_eq!(dev.envelopes_received, dev.envelopes_put, "every envelope, once");
            let user = users[dev.user];
            for (&seq, logged) in &log {
                let readable = s.is_participant(logged.document.plan, user).unwrap();
                if logged.kind == BundleKind::Changes {
                    let held = dev.holds.get(&logged.document).is_some_and(|h| h.contains(&seq));
                    assert_eq!(
                        held,
                        readable || logged.author == dev.id,
                        "change {seq} on device {:?}",
                        dev.id
                    );
                }
            }
            if !snapshots {
                // Every received bundle is another device's, of a readable plan, and new.
                let want = log
                    .values()
                    .filter(|l| l.author != dev.id && s.is_participant(l.document.plan, user).unwrap())
                    .count();
                assert_eq!(dev.received.len(), want, "exactly the other devices' bundles");
            }
        }
    }

    // The access log.

    fn audit_upload(device: DeviceId, org: OrgId, first: u64, last: u64, byte: u8) -> NewAuditUpload {
        NewAuditUpload {
            device,
            org,
            first,
            last,
            head: [byte; 32],
            key_version: 1,
            bytes: vec![byte; 300],
            digest: [byte; 32],
            received_at: 5_000,
        }
    }

    pub fn audit_uploads_are_stored_once_and_an_overlapping_other_upload_is_kept_as_evidence(
        s: &dyn Storage,
    ) {
        let org = org(s);
        let phone = device(s, user(s, "Wim"), 0x31);
        let first = audit_upload(phone, org, 1, 10, 1);
        assert_eq!(s.put_audit_uploads(std::slice::from_ref(&first)).unwrap(), [true]);
        // The same upload again (a lost answer), also twice in one batch: no new row.
        assert_eq!(s.put_audit_uploads(&[first.clone(), first.clone()]).unwrap(), [false, false]);
        // A different run over positions 5..=12: a fork to judge, never dropped.
        let other = audit_upload(phone, org, 5, 12, 2);
        assert_eq!(s.put_audit_uploads(&[other, audit_upload(phone, org, 13, 13, 3)]).unwrap(), [true, true]);
        let stored = s.audit_uploads(org, 0, 100).unwrap();
        let positions: Vec<(u64, u64)> = stored.iter().map(|u| (u.first, u.last)).collect();
        assert_eq!(positions, [(1, 10), (5, 12), (13, 13)]);
        assert_eq!(stored[0].bytes, vec![1; 300]);
        assert_eq!((stored[0].device, stored[0].head, stored[0].key_version), (phone, [1; 32], 1));
        assert_eq!(s.audit_through(phone).unwrap(), 13);
        assert_eq!(s.audit_through(DeviceId([0x77; 16])).unwrap(), 0);
    }

    pub fn audit_uploads_page_by_a_rising_id_per_organisation(s: &dyn Storage) {
        let noord = org(s);
        let zuid = s.add_org("Wijkteam Zuid", 48).unwrap();
        let wim = device(s, user(s, "Wim"), 0x32);
        let ans = device(s, s.add_user(zuid, "Ans", "wijkteam").unwrap(), 0x33);
        for n in 0..7u8 {
            s.put_audit_uploads(&[audit_upload(wim, noord, u64::from(n) + 1, u64::from(n) + 1, 10 + n)])
                .unwrap();
            s.put_audit_uploads(&[audit_upload(ans, zuid, u64::from(n) + 1, u64::from(n) + 1, 40 + n)])
                .unwrap();
        }
        let mut after = 0;
        let mut seen = Vec::new();
        loop {
            let page = s.audit_uploads(noord, after, 3).unwrap();
            assert!(page.len() <= 3);
            let Some(last) = page.last() else { break };
            assert!(page.windows(2).all(|w| w[0].id < w[1].id));
            assert!(page.iter().all(|u| u.device == wim && u.org == noord));
            after = last.id;
            seen.extend(page.iter().map(|u| u.first));
        }
        assert_eq!(seen, (1..=7).collect::<Vec<_>>(), "each upload once, in the order stored");
        assert_eq!(s.audit_uploads(zuid, 0, 100).unwrap().len(), 7);
    }

    pub fn a_revoked_device_stores_no_audit_upload(s: &dyn Storage) {
        let org = org(s);
        let phone = device(s, user(s, "Wim"), 0x34);
        s.revoke_device(phone, &revocation(1), 2_000).unwrap();
        assert_eq!(
            s.put_audit_uploads(&[audit_upload(phone, org, 1, 1, 1)]),
            Err(StorageError::DeviceNotActive)
        );
        assert!(s.audit_uploads(org, 0, 100).unwrap().is_empty());
    }

    pub fn audit_keys_keep_every_version_and_only_a_higher_one_is_taken(s: &dyn Storage) {
        let org = org(s);
        let key = |version, byte| AuditKeyRecord { org, version, signed: vec![byte; 100], stored_at: 9 };
        assert!(s.audit_keys(org).unwrap().is_empty());
        assert!(s.put_audit_key(&key(1, 1)).unwrap());
        assert!(!s.put_audit_key(&key(1, 1)).unwrap(), "a retry stores nothing");
        assert!(matches!(s.put_audit_key(&key(1, 2)), Err(StorageError::Conflict(_))));
        assert!(s.put_audit_key(&key(3, 3)).unwrap());
        assert!(matches!(s.put_audit_key(&key(2, 4)), Err(StorageError::Conflict(_))));
        let versions: Vec<(u32, u8)> =
            s.audit_keys(org).unwrap().iter().map(|k| (k.version, k.signed[0])).collect();
        assert_eq!(versions, [(1, 1), (3, 3)]);
        let unknown = AuditKeyRecord { org: OrgId(9_999), ..key(1, 1) };
        assert_eq!(s.put_audit_key(&unknown), Err(StorageError::NotFound));
    }

    pub fn the_server_chain_only_grows_at_its_end_and_pages_in_order(s: &dyn Storage) {
        let event = |seq, byte| ServerEventRecord { seq, signed: vec![byte; 90], at: 7 };
        assert_eq!(s.last_server_event().unwrap(), None);
        assert!(matches!(s.append_server_events(&[event(2, 2)]), Err(StorageError::Conflict(_))));
        s.append_server_events(&[event(1, 1), event(2, 2), event(3, 3)]).unwrap();
        // A gap, or a position stored before: nothing of the batch is stored.
        assert!(matches!(
            s.append_server_events(&[event(4, 4), event(6, 6)]),
            Err(StorageError::Conflict(_))
        ));
        assert!(matches!(s.append_server_events(&[event(3, 9)]), Err(StorageError::Conflict(_))));
        assert_eq!(s.last_server_event().unwrap(), Some(event(3, 3)));
        s.append_server_events(&[event(4, 4)]).unwrap();
        let page: Vec<u64> = s.server_events(1, 2).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(page, [2, 3]);
        assert_eq!(s.server_events(0, 100).unwrap().len(), 4);
    }

    pub fn the_server_audit_key_and_the_access_log_survive_reopen(b: &mut dyn Backend) {
        let seed = b.storage().server_audit_seed().unwrap();
        assert_ne!(seed, [0; 32]);
        assert_ne!(seed, b.storage().server_secret().unwrap(), "a key of its own");
        let s = b.storage();
        let org = org(s);
        let phone = device(s, user(s, "Wim"), 0x35);
        s.put_audit_uploads(&[audit_upload(phone, org, 1, 4, 1)]).unwrap();
        s.append_server_events(&[ServerEventRecord { seq: 1, signed: vec![1; 90], at: 7 }]).unwrap();
        b.reopen();
        let s = b.storage();
        assert_eq!(s.server_audit_seed().unwrap(), seed);
        assert_eq!(s.audit_through(phone).unwrap(), 4);
        assert_eq!(s.last_server_event().unwrap().map(|e| e.seq), Some(1));
    }
}

/// The rows whose triggers SQLite's migration 19 and PostgreSQL's 7 add, changed past the
/// storage API: each change bumps the key-share version of exactly the users it concerns,
/// whatever write path makes it. (The storage API's own paths bump those users already
/// through other rows, a chain entry through its plan's level; these triggers keep a path
/// added later from serving a stale remembered answer.) `run` executes one statement on the
/// backend's database and returns its first row's first column; `bytes` writes a byte
/// string literal; `rosters` are the backend's own changes of plan Q's roster, each with the
/// names of the users it concerns (Ann and Bob take part in Q, Cas in P).
fn the_answers_remembered_rows_bump_the_users_they_concern(
    s: &dyn Storage,
    run: &mut dyn FnMut(&str) -> Option<i64>,
    bytes: fn(&[u8]) -> String,
    rosters: &[(String, &[&str])],
) {
    use fixtures::*;
    s.set_policy(&policy(2, &[("wijkteam", ALL, ALL)]), 1).unwrap();
    let (ann, bob, cas) = (user(s, "Ann"), user(s, "Bob"), user(s, "Cas"));
    let (a1, c1) = (device(s, ann, 1), device(s, cas, 2));
    assert!(s.register_chartered_plan(&charter(Q, ann, a1)).unwrap());
    let with_bob =
        eenplan_server::storage::MembershipUpdate { add: vec![(bob, "wijkteam".into())], ..entry(Q, a1) };
    s.append_membership(&with_bob).unwrap();
    s.register_plan(P, cas, c1, 1).unwrap();
    let q = bytes(&Q);
    let named = |names: &[&str]| -> Vec<UserId> {
        [("Ann", ann), ("Bob", bob), ("Cas", cas)]
            .iter()
            .filter(|(n, _)| names.contains(n))
            .map(|&(_, u)| u)
            .collect()
    };
    let mut steps = vec![
        (
            format!("UPDATE participants SET granted_at_seq = granted_at_seq + 1 WHERE user_id = {}", bob.0),
            vec![bob],
        ),
        (
            format!("UPDATE participants SET granted_at_seq = granted_at_seq WHERE user_id = {}", bob.0),
            vec![],
        ),
        (
            format!(
                "INSERT INTO rotations (plan_id, compartment, queued_epoch, queued_at) VALUES ({q}, 1, 1, 0)"
            ),
            vec![ann, bob],
        ),
        ("UPDATE rotations SET queued_at = 5".to_string(), vec![ann, bob]),
        ("DELETE FROM rotations".to_string(), vec![ann, bob]),
    ];
    steps.extend(rosters.iter().map(|(sql, names)| (sql.clone(), named(names))));
    let versions = |run: &mut dyn FnMut(&str) -> Option<i64>| {
        [ann, bob, cas]
            .map(|u| run(&format!("SELECT key_share_version FROM users WHERE user_id = {}", u.0)).unwrap())
    };
    for (sql, concerned) in steps {
        let before = versions(run);
        run(&sql);
        let after = versions(run);
        let bumped: Vec<UserId> = [ann, bob, cas]
            .into_iter()
            .zip(before.iter().zip(&after))
            .filter(|(_, (b, a))| a > b)
            .map(|(u, _)| u)
            .collect();
        assert_eq!(bumped, concerned, "bumped by {sql}");
    }
}

/// Instantiates every check for one backend. `$fresh` makes a new, empty [`Backend`].
macro_rules! conformance_suite {
    ($fresh:expr) => {
        conformance_suite!(@storage $fresh;
            the_network_can_be_initialised_only_once,
            administrators_are_added_after_initialisation_and_only_once,
            organisation_names_and_user_names_within_an_organisation_are_unique,
            enrolment_codes_are_one_time_and_expire,
            a_claim_that_fails_leaves_the_code_unused,
            claiming_creates_a_pending_device_that_activation_makes_active_and_revocation_revoked,
            revocation_deletes_the_devices_envelopes_and_refuses_new_ones,
            revocation_lists_are_kept_every_version_in_order_and_first_writer_wins,
            registering_a_plan_is_idempotent_for_its_creator_and_refused_for_others,
            participants_can_be_added_updated_and_removed,
            push_is_idempotent_by_bundle_id_within_and_across_batches,
            a_batch_appends_its_new_bundles_consecutively_around_stored_and_repeated_ids,
            sequence_numbers_strictly_increase,
            pull_returns_only_readable_documents_never_the_pullers_own_bundles_in_seq_order,
            a_non_participant_pulls_nothing,
            pages_respect_max_bytes_and_continue_where_they_stopped,
            a_participant_added_later_receives_the_whole_history_on_its_next_pull,
            the_worked_example_of_the_storage_docs_holds,
            a_big_history_block_is_split_across_pages_and_loses_and_repeats_nothing,
            a_block_under_way_keeps_the_snapshots_it_started_with,
            a_block_under_way_survives_a_regrant_and_a_token_of_another_device_starts_over,
            a_snapshot_makes_a_from_scratch_pull_return_the_snapshot_and_the_tail_only,
            a_device_far_behind_gets_the_snapshot_instead_of_hundreds_of_changes,
            document_stats_count_the_bundles_and_the_tail_after_the_latest_snapshot,
            the_tails_an_answer_weighs_are_the_documents_statistics_after_every_write_to_the_log,
            a_snapshot_request_cannot_cover_more_than_the_log_holds,
            a_snapshot_is_stored_only_against_its_authors_request_for_exactly_its_covers_and_once,
            snapshot_requests_are_bounded_per_device_one_device_at_a_time_and_expire,
            witnesses_are_each_authors_newest_change_up_to_what_the_snapshot_covers,
            history_requests_page_a_readable_documents_whole_change_log_within_the_budget,
            envelopes_go_ahead_of_the_log_on_a_cursor_of_their_own_each_once,
            a_sync_answer_and_a_users_access_read_in_one_transaction_what_the_single_reads_report,
            a_users_access_holds_what_the_role_reads_at_each_plans_level_across_plans,
            a_users_access_read_again_follows_every_change_of_what_it_depends_on,
            a_sync_session_serves_the_access_of_the_snapshot_it_read,
            sessions_read_together_are_the_sessions_each_reads_alone,
            a_sync_answer_read_again_follows_every_change_of_what_it_depends_on,
            a_device_asked_for_a_snapshot_holds_other_devices_off_for_ten_minutes_from_its_first_ask,
            the_first_envelope_stays_and_key_requests_list_exactly_the_devices_lacking_an_envelope,
            a_snapshot_candidate_follows_every_change_of_the_keys_held_and_the_tails,
            an_answer_takes_a_read_made_ahead_only_for_the_very_read_it_makes,
            an_envelope_batch_of_a_sealer_revoked_meanwhile_stores_none_of_it,
            a_recipients_refusal_withdraws_the_sealers_envelope_and_keeps_that_sealer_out,
            an_administrators_envelope_can_be_refused_without_shutting_out_anyone,
            a_device_revoked_meanwhile_registers_mints_and_pushes_nothing,
            a_commitment_must_name_the_policy_in_force_and_a_document_its_minter_reads,
            a_session_records_its_time_and_nonce_and_forgets_a_wipe_report,
            a_devices_name_and_last_seen_time_are_kept_and_never_go_back,
            a_wipe_report_is_stored_only_while_the_device_stands_as_it_was_judged,
            missing_envelopes_agree_with_the_key_by_key_reads_across_revocation_roles_and_epochs,
            the_missing_keys_an_answer_lists_follow_every_change_they_depend_on,
            envelopes_are_delivered_once_after_the_cursor_and_escrow_ones_kept_apart,
            a_batch_with_an_unknown_compartment_is_refused_whole,
            a_pull_running_beside_pushes_never_skips_a_committed_bundle,
            the_policy_decides_which_compartments_a_user_reads_and_a_role_without_reads_gets_nothing,
            a_policy_must_be_newer_than_the_stored_one,
            a_policy_that_takes_a_read_or_write_away_queues_exactly_the_rotations_of_documents_with_a_key,
            a_policy_that_gives_a_read_sends_the_newly_readable_history,
            every_policy_version_stays_readable_by_version,
            a_role_change_recertifies_every_device_keeps_the_old_certificates_and_rotates_what_is_lost,
            the_first_key_commitment_wins_and_the_current_epoch_is_the_highest,
            revocation_is_atomic_and_idempotent_deletes_envelopes_and_queues_what_the_device_could_read,
            a_revoked_devices_wipe_order_waits_and_a_wipe_report_is_recorded_once,
            removing_a_participant_queues_the_plans_documents_it_could_read,
            a_membership_chain_appends_in_order_grants_removes_rotates_and_pages_whole_chains,
            a_closed_plan_is_listed_and_erasing_it_leaves_only_a_tombstone_that_refuses_registration,
            a_members_erasure_replaces_the_document_by_its_base_and_deletes_every_older_epoch,
            completing_a_rotation_is_refused_for_a_wrong_epoch_and_settles_only_older_tasks,
            a_push_during_a_rotation_or_under_an_old_epoch_is_refused_in_the_writing_transaction,
            a_push_checked_before_its_author_left_the_plan_is_refused_in_the_writing_transaction,
            a_membership_entry_that_removes_a_user_rotates_everything_the_user_reads_now,
            an_answer_for_an_organisation_without_audit_keys_sends_none,
            rotation_tasks_list_every_reader_with_the_epochs_it_holds,
            audit_uploads_are_stored_once_and_an_overlapping_other_upload_is_kept_as_evidence,
            audit_uploads_page_by_a_rising_id_per_organisation,
            a_revoked_device_stores_no_audit_upload,
            audit_keys_keep_every_version_and_only_a_higher_one_is_taken,
            the_server_chain_only_grows_at_its_end_and_pages_in_order,
        );
        conformance_suite!(@bare $fresh;
            an_answer_without_a_stored_policy_reads_nothing_and_sends_no_policy,
        );
        conformance_suite!(@backend $fresh;
            the_server_secret_is_stable_across_reopen,
            an_admin_signature_is_taken_once_across_reopen_until_it_is_stale,
            push_is_idempotent_across_reopen,
            a_pushed_batch_is_durable_and_whole_across_reopen,
            everything_survives_reopen,
            the_server_audit_key_and_the_access_log_survive_reopen,
        );

        proptest::proptest! {
            #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]

            #[test]
            fn every_bundle_reaches_every_other_participant_device_exactly_once(
                ops in proptest::collection::vec(suite::op(false), 1..40),
                final_budget in 0..1_500usize,
            ) {
                let backend = $fresh;
                suite::prepare(backend.storage());
                suite::every_device_ends_up_with_every_change_it_may_read_and_nothing_twice(
                    backend.storage(), &ops, false, final_budget);
            }

            #[test]
            fn with_snapshots_every_device_still_ends_up_with_every_change_and_nothing_twice(
                ops in proptest::collection::vec(suite::op(true), 1..40),
                final_budget in 0..1_500usize,
            ) {
                let backend = $fresh;
                suite::prepare(backend.storage());
                suite::every_device_ends_up_with_every_change_it_may_read_and_nothing_twice(
                    backend.storage(), &ops, true, final_budget);
            }

            #[test]
            fn with_tiny_pages_every_device_still_ends_up_with_every_change_and_nothing_twice(
                ops in proptest::collection::vec(suite::op(true), 1..40),
                final_budget in 0..300usize,
            ) {
                let backend = $fresh;
                suite::prepare(backend.storage());
                suite::every_device_ends_up_with_every_change_it_may_read_and_nothing_twice(
                    backend.storage(), &ops, true, final_budget);
            }
        }
    };
    (@bare $fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let backend = $fresh;
                suite::$name(backend.storage());
            }
        )*
    };
    (@storage $fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let backend = $fresh;
                suite::prepare(backend.storage());
                suite::$name(backend.storage());
            }
        )*
    };
    (@backend $fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let mut backend = $fresh;
                suite::prepare(backend.storage());
                suite::$name(&mut backend);
            }
        )*
    };
}

mod sqlite {
    use super::*;

    struct Sqlite {
        dir: tempfile::TempDir,
        storage: Option<SqliteStorage>,
    }

    impl Sqlite {
        fn fresh() -> Sqlite {
            let dir = tempfile::tempdir().unwrap();
            let storage = SqliteStorage::open(dir.path().join("server.db")).unwrap();
            Sqlite { dir, storage: Some(storage) }
        }
    }

    impl Backend for Sqlite {
        fn storage(&self) -> &dyn Storage {
            self.storage.as_ref().unwrap()
        }

        fn reopen(&mut self) {
            self.storage = None;
            self.storage = Some(SqliteStorage::open(self.dir.path().join("server.db")).unwrap());
        }
    }

    conformance_suite!(Sqlite::fresh());

    /// Erasure is crypto-erasure only if the deleted envelopes and bundles are gone from the
    /// file and its WAL, not merely unlinked from the b-tree.
    #[test]
    fn an_erased_plans_bytes_are_in_neither_the_database_file_nor_its_wal() {
        use super::fixtures::*;
        let backend = Sqlite::fresh();
        let s = backend.storage();
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL)]), 1).unwrap();
        let ann = user(s, "Ann");
        let a1 = device(s, ann, 1);
        let (key, sealed) = store_a_closed_plan(s, a1, ann);
        let roster = closing_roster();
        let needles =
            [&key.bytes[..64], &key.bytes[1100..], &sealed.bytes[..64], &sealed.bytes[19_900..], &roster];
        let db = backend.dir.path().join("server.db");
        let files = [db.clone(), db.with_extension("db-wal")];
        let held = |needle: &[u8]| {
            files.iter().any(|path| {
                std::fs::read(path).unwrap_or_default().windows(needle.len()).any(|w| w == needle)
            })
        };
        // The search sees each of them before the erasure.
        assert!(needles.iter().all(|needle| held(needle)), "stored bytes not found");
        s.erase_plan(P, 10).unwrap();
        for path in &files {
            let bytes = std::fs::read(path).unwrap_or_default();
            for erased in needles {
                assert!(
                    !bytes.windows(erased.len()).any(|w| w == erased),
                    "erased bytes remain in {}",
                    path.display()
                );
            }
        }
    }

    /// The roster the closing entry of [`store_a_closed_plan`] leaves: recognisable bytes,
    /// as long as a plan's roster after a few membership changes.
    pub(super) fn closing_roster() -> Vec<u8> {
        (0..1_500).map(|i| 0x7E ^ (i as u8)).collect()
    }

    /// Plan P with one escrow envelope and one bundle of recognisable bytes, closed (so that
    /// it may be erased): (the envelope, the bundle).
    pub(super) fn store_a_closed_plan(s: &dyn Storage, a1: DeviceId, ann: UserId) -> (Envelope, NewBundle) {
        use super::fixtures::*;
        use eenplan_server::storage::MembershipUpdate;
        let charter = charter(P, ann, a1);
        s.register_chartered_plan(&charter).unwrap();
        mint(s, &[doc(P, 0)], a1);
        let escrow = DeviceId(eenplan_protocol::api::ESCROW_RECIPIENT);
        let marked = |byte: u8, len: usize| -> Vec<u8> { (0..len).map(|i| byte ^ (i as u8)).collect() };
        let key = Envelope { recipient: escrow, document: doc(P, 0), epoch: 1, bytes: marked(0x3C, 1200) };
        s.put_envelopes(a1, std::slice::from_ref(&key)).unwrap();
        let sealed = NewBundle { bytes: marked(0x5D, 20_000), ..changes(doc(P, 0), 1, a1) };
        push(s, std::slice::from_ref(&sealed));
        let close = MembershipUpdate { roster: closing_roster(), closed_at: Some(9), now: 9, ..entry(P, a1) };
        s.append_membership(&close).unwrap();
        (key, sealed)
    }

    #[test]
    fn the_answers_remembered_rows_bump_the_users_they_concern() {
        let backend = Sqlite::fresh();
        let conn = rusqlite::Connection::open(backend.dir.path().join("server.db")).unwrap();
        let mut run = |sql: &str| -> Option<i64> {
            let mut stmt = conn.prepare(sql).unwrap();
            let mut rows = stmt.query([]).unwrap();
            rows.next().unwrap().map(|row| row.get(0).unwrap())
        };
        let bytes = |b: &[u8]| format!("X'{}'", b.iter().map(|x| format!("{x:02X}")).collect::<String>());
        let q = bytes(&fixtures::Q);
        let rosters: [(String, &[&str]); 4] = [
            (format!("DELETE FROM plan_rosters WHERE plan_id = {q}"), &["Ann", "Bob"]),
            (format!("INSERT INTO plan_rosters (plan_id, roster) VALUES ({q}, X'00')"), &["Ann", "Bob"]),
            (format!("UPDATE plan_rosters SET roster = X'01' WHERE plan_id = {q}"), &[]),
            (
                format!("UPDATE plan_rosters SET plan_id = {} WHERE plan_id = {q}", bytes(&fixtures::P)),
                &["Ann", "Bob", "Cas"],
            ),
        ];
        super::the_answers_remembered_rows_bump_the_users_they_concern(
            backend.storage(),
            &mut run,
            bytes,
            &rosters,
        );
    }

    #[test]
    fn an_answer_tried_as_one_statement_is_the_answer_a_transaction_reads() {
        let backend = Sqlite::fresh();
        suite::prepare(backend.storage());
        suite::an_answer_tried_as_one_statement_is_the_answer_a_transaction_reads(backend.storage(), false);
    }

    #[test]
    fn answers_whose_facts_a_group_read_are_the_answers_a_transaction_reads() {
        let backend = Sqlite::fresh();
        suite::prepare(backend.storage());
        suite::answers_whose_facts_a_group_read_are_the_answers_a_transaction_reads(backend.storage(), false);
    }

    #[test]
    fn syncs_reading_their_sessions_at_once_each_get_their_own() {
        let backend = Sqlite::fresh();
        suite::prepare(backend.storage());
        suite::syncs_reading_their_sessions_at_once_each_get_their_own(backend.storage(), false);
    }

    /// The tails SQLite keeps for the sync answers (migration 20) go with the bundles they
    /// count: an erased plan leaves no row of its documents' counts and sizes behind.
    #[test]
    fn an_erased_plans_document_tails_go_with_its_bundles() {
        use super::fixtures::*;
        let backend = Sqlite::fresh();
        let s = backend.storage();
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL)]), 1).unwrap();
        let ann = user(s, "Ann");
        store_a_closed_plan(s, device(s, ann, 1), ann);
        let conn = rusqlite::Connection::open(backend.dir.path().join("server.db")).unwrap();
        let tails_of_p = || -> i64 {
            conn.query_row("SELECT COUNT(*) FROM document_tails WHERE plan_id = ?1", [P.to_vec()], |row| {
                row.get(0)
            })
            .unwrap()
        };
        assert!(tails_of_p() > 0, "the closed plan's documents have tails");
        s.erase_plan(P, 10).unwrap();
        assert_eq!(tails_of_p(), 0, "an erased plan's tails remain");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.db");
        std::fs::write(&path, vec![0x5A; 8192]).unwrap();
        assert!(matches!(SqliteStorage::open(&path), Err(StorageError::Corrupt(_))));
    }
}

/// The same suite on PostgreSQL: one throw-away cluster per test process (started through
/// `scripts/postgres.sh`, installed from Debian's packages when missing), one fresh database
/// per test. Without PostgreSQL these tests fail; they never skip.
mod postgres {
    use super::*;
    use eenplan_server::storage::PostgresStorage;
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The database each test's database is a copy of: migrated once per process.
    const TEMPLATE: &str = "eenplan_template";

    struct Cluster {
        /// `postgres://eenplan@127.0.0.1:PORT`, without a database.
        base: String,
        dir: PathBuf,
    }

    fn script(args: &[&str]) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let out = std::process::Command::new(root.join("scripts/postgres.sh"))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run scripts/postgres.sh: {e}"));
        assert!(
            out.status.success(),
            "scripts/postgres.sh {args:?} failed; the PostgreSQL conformance tests need PostgreSQL \
             (Debian's `postgresql`, installed by scripts/install-test-deps.sh postgres):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    fn cluster() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(|| {
            script(&["install"]);
            // In the system's temporary directory, which the cluster's owner (the postgres user, when
            // the tests run as root) can reach; the script removes it when this process ends.
            let dir = std::env::temp_dir().join(format!("eenplan-pg-{}", std::process::id()));
            let pid = std::process::id().to_string();
            let url = script(&["start", dir.to_str().unwrap(), &free_port().to_string(), &pid]);
            let base = url
                .strip_suffix("/postgres")
                .expect("the script prints a URL ending in /postgres")
                .to_owned();
            let cluster = Cluster { base, dir };
            admin(&cluster, &format!("CREATE DATABASE {TEMPLATE}"));
            drop(PostgresStorage::open(&format!("{}/{TEMPLATE}", cluster.base)).unwrap());
            cluster
        })
    }

    /// Runs `sql` as the cluster's superuser, outside a transaction.
    fn admin(cluster: &Cluster, sql: &str) {
        let mut client =
            ::postgres::Client::connect(&format!("{}/postgres", cluster.base), ::postgres::NoTls)
                .expect("connect to the test cluster");
        client.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub(super) struct Postgres {
        url: String,
        name: String,
        storage: Option<PostgresStorage>,
    }

    impl Postgres {
        pub(super) fn fresh() -> Postgres {
            static NEXT: AtomicU64 = AtomicU64::new(1);
            let cluster = cluster();
            let name = format!("t_{}", NEXT.fetch_add(1, Ordering::Relaxed));
            admin(cluster, &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"));
            let url = format!("{}/{name}", cluster.base);
            let storage = PostgresStorage::open(&url).unwrap();
            Postgres { url, name, storage: Some(storage) }
        }

        /// The directory of this database's files in the cluster.
        fn files(&self) -> PathBuf {
            let mut client = ::postgres::Client::connect(&self.url, ::postgres::NoTls).unwrap();
            let oid: ::postgres::types::Oid = client
                .query_one("SELECT oid FROM pg_database WHERE datname = current_database()", &[])
                .unwrap()
                .get(0);
            client.batch_execute("CHECKPOINT").unwrap();
            cluster().dir.join("base").join(oid.to_string())
        }
    }

    impl Drop for Postgres {
        fn drop(&mut self) {
            self.storage = None;
            admin(cluster(), &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }

    impl Backend for Postgres {
        fn storage(&self) -> &dyn Storage {
            self.storage.as_ref().unwrap()
        }

        fn reopen(&mut self) {
            self.storage = None;
            self.storage = Some(PostgresStorage::open(&self.url).unwrap());
        }
    }

    conformance_suite!(Postgres::fresh());

    /// Whether any file under `dir` holds one of `needles`.
    fn files_hold(dir: &Path, needles: &[&[u8]]) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap_or_default();
            if needles.iter().any(|n| bytes.windows(n.len()).any(|w| w == *n)) {
                found.push(path);
            }
        }
        found
    }

    /// Ann, her device, and her closed plan `P` (its envelope and its big bundle), under a
    /// policy that lets her role read everything: what the erasure tests erase.
    fn ann_with_a_closed_plan(s: &dyn Storage) -> (UserId, DeviceId, Envelope, NewBundle) {
        use super::fixtures::*;
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL)]), 1).unwrap();
        let ann = user(s, "Ann");
        let a1 = device(s, ann, 1);
        let (key, sealed) = super::sqlite::store_a_closed_plan(s, a1, ann);
        (ann, a1, key, sealed)
    }

    /// PostgreSQL's counterpart of SQLite's file check: after an erasure (which purges), the
    /// deleted envelopes and bundles are in none of the database's table or index files. The
    /// same bytes are found there before the erasure, so the search is known to see them.
    #[test]
    fn an_erased_plans_bytes_are_in_none_of_the_databases_files() {
        use super::fixtures::*;
        let backend = Postgres::fresh();
        let s = backend.storage();
        let (ann, a1, key, sealed) = ann_with_a_closed_plan(s);
        // Live rows after the erased ones (a small envelope, bundles big enough for TOAST): a
        // plain VACUUM leaves the erased bytes in the free space of pages that stay, where only
        // pages that empty at a table's end would be cut off. (Checked: with `VACUUM` instead
        // of `VACUUM (FULL)` in purge_deleted this test fails.)
        let open = eenplan_server::storage::CharteredPlan {
            charter: vec![3; 40],
            roster: vec![0xB1],
            now: 11,
            ..charter(Q, ann, a1)
        };
        s.register_chartered_plan(&open).unwrap();
        mint(s, &[doc(Q, 0)], a1);
        let escrow = DeviceId(eenplan_protocol::api::ESCROW_RECIPIENT);
        let kept = Envelope { recipient: escrow, document: doc(Q, 0), epoch: 1, bytes: vec![7; 100] };
        s.put_envelopes(a1, &[kept]).unwrap();
        push(s, &(0..8).map(|i| bundle(doc(Q, 0), 1_000 + i, a1, 3_000)).collect::<Vec<_>>());
        let roster = super::sqlite::closing_roster();
        let needles =
            [&key.bytes[..64], &key.bytes[1100..], &sealed.bytes[..64], &sealed.bytes[19_900..], &roster];
        let dir = backend.files();
        for needle in needles {
            assert!(!files_hold(&dir, &[needle]).is_empty(), "stored bytes not found in {}", dir.display());
        }
        s.erase_plan(P, 10).unwrap();
        let dir = backend.files();
        assert_eq!(files_hold(&dir, &needles), Vec::<PathBuf>::new(), "erased bytes remain");
    }

    /// A database that lost commits (a standby promoted while behind) can show a server the
    /// versions it remembers accesses under with other rows. Such a failover breaks every
    /// connection, and a server whose connections broke reads each user's access again.
    #[test]
    fn after_its_connections_break_a_server_reads_each_users_access_again() {
        use super::fixtures::*;
        let db = Postgres::fresh();
        let s = db.storage();
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL), ("politie", &["basis"], &[])]), 1).unwrap();
        let ann = user(s, "Ann");
        let a1 = device(s, ann, 1);
        s.register_plan(P, ann, a1, 1).unwrap();
        let asked = [doc(P, 0), doc(P, 1)];
        let readable = |s: &dyn Storage| s.user_access(ann, &asked).map(|a| a.unwrap().readable);
        assert_eq!(readable(s).unwrap().len(), 4, "a wijkteam user reads all of P");
        // Ann's role changed without the triggers (replica mode): her versions stand, as
        // they would on a database that reached them again with other rows.
        let mut client = ::postgres::Client::connect(&db.url, ::postgres::NoTls).unwrap();
        client
            .batch_execute(
                "SET session_replication_role = replica;
                 UPDATE users SET role = 'politie' WHERE name = 'Ann';",
            )
            .unwrap();
        assert_eq!(readable(s).unwrap().len(), 4, "the remembered access, while its versions stand");
        client
            .batch_execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .unwrap();
        // Each broken connection fails its read once and leaves the pool.
        let read_again = (0..8).find_map(|_| readable(s).ok()).expect("a read on a new connection");
        assert_eq!(read_again, [doc(P, 0)], "the police reads only basis");
    }

    #[test]
    fn the_answers_remembered_rows_bump_the_users_they_concern() {
        let db = Postgres::fresh();
        let mut client = ::postgres::Client::connect(&db.url, ::postgres::NoTls).unwrap();
        let mut run =
            |sql: &str| -> Option<i64> { client.query(sql, &[]).unwrap().first().map(|row| row.get(0)) };
        let bytes =
            |b: &[u8]| format!("'\\x{}'::bytea", b.iter().map(|x| format!("{x:02x}")).collect::<String>());
        let q = bytes(&fixtures::Q);
        let rosters: [(String, &[&str]); 3] = [
            (format!("UPDATE plans SET roster = NULL WHERE plan_id = {q}"), &["Ann", "Bob"]),
            (format!("UPDATE plans SET roster = '\\x00' WHERE plan_id = {q}"), &["Ann", "Bob"]),
            (format!("UPDATE plans SET roster = '\\x01' WHERE plan_id = {q}"), &[]),
        ];
        super::the_answers_remembered_rows_bump_the_users_they_concern(
            db.storage(),
            &mut run,
            bytes,
            &rosters,
        );
    }

    #[test]
    fn an_answer_tried_as_one_statement_is_the_answer_a_transaction_reads() {
        let db = Postgres::fresh();
        suite::prepare(db.storage());
        suite::an_answer_tried_as_one_statement_is_the_answer_a_transaction_reads(db.storage(), true);
    }

    #[test]
    fn answers_whose_facts_a_group_read_are_the_answers_a_transaction_reads() {
        let db = Postgres::fresh();
        suite::prepare(db.storage());
        suite::answers_whose_facts_a_group_read_are_the_answers_a_transaction_reads(db.storage(), true);
    }

    #[test]
    fn syncs_reading_their_sessions_at_once_each_get_their_own() {
        let db = Postgres::fresh();
        suite::prepare(db.storage());
        suite::syncs_reading_their_sessions_at_once_each_get_their_own(db.storage(), true);
    }

    /// The tails PostgreSQL keeps for the sync answers (migration 6) go with the bundles they
    /// count: an erased plan leaves no row of its documents' counts and sizes behind.
    #[test]
    fn an_erased_plans_document_tails_go_with_its_bundles() {
        use super::fixtures::*;
        let backend = Postgres::fresh();
        let s = backend.storage();
        ann_with_a_closed_plan(s);
        let tails_of_p = || -> i64 {
            let mut client = ::postgres::Client::connect(&backend.url, ::postgres::NoTls).unwrap();
            let sql = "SELECT COUNT(*) FROM document_tails WHERE plan_id = $1";
            client.query_one(sql, &[&P.to_vec()]).unwrap().get(0)
        };
        assert!(tails_of_p() > 0, "the closed plan's documents have tails");
        s.erase_plan(P, 10).unwrap();
        assert_eq!(tails_of_p(), 0, "an erased plan's tails remain");
    }

    /// Migration 6 counts the tails of the bundles a database holds already: the database is
    /// taken back to schema 5 (the tables, functions and triggers of migrations 6 and 7
    /// dropped) and opened again.
    #[test]
    fn migration_6_counts_the_tails_of_the_bundles_stored_before_it() {
        use super::fixtures::*;
        let mut backend = Postgres::fresh();
        let s = backend.storage();
        s.set_policy(&policy(2, &[("wijkteam", ALL, ALL)]), 1).unwrap();
        let ann = user(s, "Ann");
        let a1 = device(s, ann, 1);
        s.register_plan(P, ann, a1, 1).unwrap();
        let documents = [doc(P, 0), doc(P, 1)];
        mint(s, &documents, a1);
        let c = push(s, &(0..6).map(|i| changes(doc(P, 0), i, a1)).collect::<Vec<_>>());
        push(s, &[requested_snapshot(s, doc(P, 0), 50, a1, c[3]), changes(doc(P, 1), 7, a1)]);
        let want = s.held_tails(a1).unwrap();
        assert_eq!(want.iter().map(|t| t.tail.bundles_since_snapshot).collect::<Vec<_>>(), [2, 1]);

        backend.storage = None;
        let mut client = ::postgres::Client::connect(&backend.url, ::postgres::NoTls).unwrap();
        client
            .batch_execute(
                "DROP TRIGGER document_tails_rows ON bundles;
                 DROP TRIGGER document_tails_statements ON bundles;
                 DROP TRIGGER document_tails_truncate ON bundles;
                 DROP FUNCTION document_tails_row(), document_tails_statement(), document_tails_truncated(),
                               document_tails_recount(BYTEA[], BIGINT[]);
                 DROP TABLE document_tails, document_tails_stale;
                 DROP TRIGGER key_share_grant ON participants;
                 DROP TRIGGER key_share_rotation ON rotations;
                 DROP TRIGGER key_share_charter ON plans;
                 DROP FUNCTION key_share_grant_row();
                 DELETE FROM schema_migrations WHERE version >= 6;",
            )
            .unwrap();
        backend.storage = Some(PostgresStorage::open(&backend.url).unwrap());
        let s = backend.storage();
        assert_eq!(s.held_tails(a1).unwrap(), want);
        for t in want {
            assert_eq!(t.tail, s.document_stats(t.document).unwrap().tail());
        }
    }

    /// A write transaction that was open when the erasure committed (a push on another
    /// instance, between two of its statements) holds a transaction id and no snapshot; VACUUM
    /// keeps the erased rows for it all the same. The purge waits for it to end, and then the
    /// erased bytes are gone. (Checked: with the wait looking at snapshots only, the purge runs
    /// at once and this test finds the bytes.)
    #[test]
    fn an_erasure_waits_for_a_write_transaction_that_began_before_it() {
        use super::fixtures::*;
        let backend = Postgres::fresh();
        let s = backend.storage();
        let (_, _, key, sealed) = ann_with_a_closed_plan(s);
        let needles = [&key.bytes[..64], &sealed.bytes[..64]];
        assert!(!files_hold(&backend.files(), &needles).is_empty(), "the stored bytes are not found");

        // A push on another instance, between two of its statements: an xid, no snapshot. (A
        // simple query: the extended protocol's portal would keep its snapshot until the next.)
        let mut writer = ::postgres::Client::connect(&backend.url, ::postgres::NoTls).unwrap();
        let mut open = writer.transaction().unwrap();
        open.batch_execute("SELECT txid_current()").unwrap();

        let erased = std::thread::scope(|scope| {
            let erasure = scope.spawn(|| s.erase_plan(P, 10));
            let mut watcher = ::postgres::Client::connect(&backend.url, ::postgres::NoTls).unwrap();
            // The purge polls; two polls seen mean that it is waiting. If it does not wait, it
            // ends first, and the writer ends after the purge.
            let mut polls_seen = std::collections::BTreeSet::new();
            while !erasure.is_finished() && polls_seen.len() < 2 {
                let polls = watcher
                    .query(
                        "SELECT query_start::text FROM pg_stat_activity
                          WHERE datname = current_database() AND pid <> pg_backend_pid()
                            AND query LIKE '%greatest(age(backend_xmin)%'",
                        &[],
                    )
                    .unwrap();
                polls_seen.extend(polls.iter().map(|row| row.get::<_, String>(0)));
            }
            open.commit().unwrap();
            erasure.join().unwrap()
        });
        erased.unwrap();
        assert_eq!(files_hold(&backend.files(), &needles), Vec::<PathBuf>::new(), "erased bytes remain");
    }
}
