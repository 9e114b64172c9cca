use ed25519_dalek::SigningKey;

use super::*;
use crate::certificate::{AdminBody, device_id_of};

struct Network {
    root: SigningKey,
    admin: SigningKey,
    admin_certificate: Vec<u8>,
}

struct Person {
    key: SigningKey,
    chain: CertificateChain,
}

const PLAN: [u8; 16] = [7; 16];

impl Network {
    fn new() -> Network {
        let root = SigningKey::from_bytes(&[1; 32]);
        let admin = SigningKey::from_bytes(&[2; 32]);
        let admin_certificate = Certificate::sign_admin(
            &AdminBody {
                admin_public: admin.verifying_key().to_bytes(),
                name: "beheer".into(),
                issued_at_ms: 0,
                organisation: None,
            },
            &root,
        )
        .to_bytes();
        Network { root, admin, admin_certificate }
    }

    fn root(&self) -> [u8; 32] {
        self.root.verifying_key().to_bytes()
    }

    fn person(&self, seed: u8, user: i64, name: &str, role: &str) -> Person {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let body = DeviceBody {
            device_id: device_id_of(key.verifying_key().as_bytes()),
            user_id: user,
            user_name: name.into(),
            organisation: "Zaanstad".into(),
            role: role.into(),
            signing_public: key.verifying_key().to_bytes(),
            agreement_public: vec![9; 32],
            valid_from_ms: 0,
            valid_until_ms: 1_000_000,
            issuer: self.admin.verifying_key().to_bytes(),
        };
        let chain = CertificateChain {
            certificate: Certificate::sign_device(&body, &self.admin).to_bytes(),
            admin_certificate: self.admin_certificate.clone(),
        };
        Person { key, chain }
    }
}

fn never_revoked(_: &DeviceBody, _: i64) -> bool {
    false
}

fn entry(roster: &Roster, by: &Person, act: Act) -> SignedEntry {
    Entry::next(roster, 100, Signer::Device(by.chain.clone()), act).sign(&by.key)
}

fn started(network: &Network, wim: &Person) -> Roster {
    let create = Entry::create(PLAN, 10, wim.chain.clone()).sign(&wim.key);
    let back = SignedEntry::from_bytes(&create.to_bytes()).unwrap();
    Roster::start(&back, &network.root(), &never_revoked).unwrap()
}

fn reads_justitie(role: &str, level: &str) -> bool {
    role == "pga_expert" || (role == "zvh_procesregisseur" && level == "zorg_en_veiligheidshuis")
}

#[test]
fn the_creator_holds_regie_and_only_the_regisseur_adds_participants() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let ggz = network.person(4, 2, "Gert", "ggz");
    let school = network.person(5, 3, "Sara", "school");
    let mut roster = started(&network, &wim);
    assert_eq!(roster.state().regisseur, 1);
    roster
        .apply(&entry(&roster, &wim, Act::Add(ggz.chain.clone())), &network.root(), &never_revoked)
        .unwrap();
    assert_eq!(roster.state().participant(2).unwrap().name, "Gert");
    let by_contributor = entry(&roster, &ggz, Act::Add(school.chain.clone()));
    assert_eq!(
        roster.apply(&by_contributor, &network.root(), &never_revoked),
        Err(MembershipError::NotRegisseur)
    );
    let by_outsider = entry(&roster, &school, Act::Remove(2));
    assert_eq!(
        roster.apply(&by_outsider, &network.root(), &never_revoked),
        Err(MembershipError::NotRegisseur)
    );
    assert_eq!(roster.seq(), 2);
}

#[test]
fn a_handover_moves_regie_only_when_the_named_participant_accepts() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let zoe = network.person(4, 2, "Zoë", "zvh_procesregisseur");
    let mut roster = started(&network, &wim);
    roster
        .apply(&entry(&roster, &wim, Act::Add(zoe.chain.clone())), &network.root(), &never_revoked)
        .unwrap();
    roster.apply(&entry(&roster, &wim, Act::Handover(2)), &network.root(), &never_revoked).unwrap();
    assert_eq!((roster.state().regisseur, roster.state().offered), (1, Some(2)));
    // Wim cannot accept on Zoë's behalf.
    let forged = entry(&roster, &wim, Act::Accept);
    assert_eq!(roster.apply(&forged, &network.root(), &never_revoked), Err(MembershipError::NotOffered));
    roster.apply(&entry(&roster, &zoe, Act::Accept), &network.root(), &never_revoked).unwrap();
    assert_eq!((roster.state().regisseur, roster.state().offered), (2, None));
    // Wim is a contributor now.
    let late = entry(&roster, &wim, Act::Remove(2));
    assert_eq!(roster.apply(&late, &network.root(), &never_revoked), Err(MembershipError::NotRegisseur));
}

#[test]
fn an_administrator_can_hand_over_regie_of_a_regisseur_who_is_gone() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let ans = network.person(4, 2, "Ans", "wijkteam");
    let mut roster = started(&network, &wim);
    roster
        .apply(&entry(&roster, &wim, Act::Add(ans.chain.clone())), &network.root(), &never_revoked)
        .unwrap();
    let by_admin =
        Entry::next(&roster, 100, Signer::Admin(network.admin_certificate.clone()), Act::Handover(2))
            .sign(&network.admin);
    roster.apply(&by_admin, &network.root(), &never_revoked).unwrap();
    roster.apply(&entry(&roster, &ans, Act::Accept), &network.root(), &never_revoked).unwrap();
    assert_eq!(roster.state().regisseur, 2);
    // An administrator key the root never certified signs nothing.
    let rogue = SigningKey::from_bytes(&[9; 32]);
    let forged = Entry::next(&roster, 100, Signer::Admin(network.admin_certificate.clone()), Act::Remove(1))
        .sign(&rogue);
    assert_eq!(roster.apply(&forged, &network.root(), &never_revoked), Err(MembershipError::BadSignature));
}

#[test]
fn escalation_adds_participants_offers_regie_and_deescalation_hands_it_back() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let zoe = network.person(4, 2, "Zoë", "zvh_procesregisseur");
    let pga = network.person(5, 3, "Piet", "pga_expert");
    let mut roster = started(&network, &wim);
    let up = Act::Escalate(Escalation {
        level: "zorg_en_veiligheidshuis".into(),
        grondslag: Grondslag::Convenant,
        step: 42,
        add: vec![zoe.chain.clone(), pga.chain.clone()],
        regie: Some(2),
    });
    roster.apply(&entry(&roster, &wim, up), &network.root(), &never_revoked).unwrap();
    roster.apply(&entry(&roster, &zoe, Act::Accept), &network.root(), &never_revoked).unwrap();
    assert_eq!(roster.state().level, "zorg_en_veiligheidshuis");
    assert_eq!(roster.state().regisseur, 2);
    let escalated = roster.seq();
    assert!(!roster.lost_readers_since(escalated, &reads_justitie));
    let down =
        Act::Deescalate(Deescalation { level: "lokaal".into(), step: 43, regie: 1, remove: vec![2, 3] });
    roster.apply(&entry(&roster, &zoe, down), &network.root(), &never_revoked).unwrap();
    assert_eq!(roster.state().regisseur, 1);
    assert_eq!(roster.state().participants.keys().copied().collect::<Vec<_>>(), vec![1]);
    // A key made while the ZVH took part must carry nothing new; one made now may.
    assert!(roster.lost_readers_since(escalated, &reads_justitie));
    assert!(!roster.lost_readers_since(roster.seq(), &reads_justitie));
    assert_eq!(roster.state_at(escalated).participants.len(), 3);
}

#[test]
fn a_level_change_that_takes_a_read_away_counts_as_a_lost_reader() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let zoe = network.person(4, 2, "Zoë", "zvh_procesregisseur");
    let mut roster = started(&network, &wim);
    let up = Act::Escalate(Escalation {
        level: "zorg_en_veiligheidshuis".into(),
        grondslag: Grondslag::Meldcode,
        step: 1,
        add: vec![zoe.chain.clone()],
        regie: None,
    });
    roster.apply(&entry(&roster, &wim, up), &network.root(), &never_revoked).unwrap();
    let at_zvh = roster.seq();
    let down = Act::Deescalate(Deescalation { level: "lokaal".into(), step: 2, regie: 1, remove: vec![] });
    roster.apply(&entry(&roster, &wim, down), &network.root(), &never_revoked).unwrap();
    assert!(roster.lost_readers_since(at_zvh, &reads_justitie));
}

#[test]
fn entries_out_of_order_forked_forged_or_for_another_plan_are_refused() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let ans = network.person(4, 2, "Ans", "wijkteam");
    let mut roster = started(&network, &wim);
    let root = network.root();
    let mut skipped =
        Entry::next(&roster, 100, Signer::Device(wim.chain.clone()), Act::Add(ans.chain.clone()));
    skipped.seq = 3;
    assert_eq!(
        roster.apply(&skipped.sign(&wim.key), &root, &never_revoked),
        Err(MembershipError::OutOfOrder { held: 1, got: 3 })
    );
    let mut forked =
        Entry::next(&roster, 100, Signer::Device(wim.chain.clone()), Act::Add(ans.chain.clone()));
    forked.prev = Fixed([5; 32]);
    assert_eq!(roster.apply(&forked.sign(&wim.key), &root, &never_revoked), Err(MembershipError::Fork(2)));
    let mut other = Entry::next(&roster, 100, Signer::Device(wim.chain.clone()), Act::Add(ans.chain.clone()));
    other.plan = Fixed([8; 16]);
    assert_eq!(roster.apply(&other.sign(&wim.key), &root, &never_revoked), Err(MembershipError::OtherPlan));
    // Wim's certificate with Ans's key: the signature is not the certificate's.
    let impostor = Entry::next(&roster, 100, Signer::Device(wim.chain.clone()), Act::Add(ans.chain.clone()));
    assert_eq!(
        roster.apply(&impostor.sign(&ans.key), &root, &never_revoked),
        Err(MembershipError::BadSignature)
    );
    assert_eq!(SignedEntry::from_bytes(b"garbage"), Err(MembershipError::Malformed));
    assert_eq!(SignedEntry::from_bytes(&vec![0; MAX_ENTRY_LEN + 1]), Err(MembershipError::Malformed));
    // A second create, a create in the middle, a revoked signer.
    let create = Entry::next(&roster, 100, Signer::Device(wim.chain.clone()), Act::Create);
    assert_eq!(roster.apply(&create.sign(&wim.key), &root, &never_revoked), Err(MembershipError::NotFirst));
    let add = entry(&roster, &wim, Act::Add(ans.chain.clone()));
    assert_eq!(roster.apply(&add, &root, &|_, _| true), Err(MembershipError::RevokedSigner));
    assert_eq!(roster.seq(), 1);
    roster.apply(&add, &root, &never_revoked).unwrap();
    assert_eq!(
        roster.apply(&add, &root, &never_revoked),
        Err(MembershipError::OutOfOrder { held: 2, got: 2 })
    );
}

#[test]
fn the_regisseur_cannot_leave_nor_name_an_unknown_level_or_the_same_one() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let mut roster = started(&network, &wim);
    let root = network.root();
    assert_eq!(
        roster.apply(&entry(&roster, &wim, Act::Remove(1)), &root, &never_revoked),
        Err(MembershipError::RegisseurLeaves)
    );
    assert_eq!(
        roster.apply(&entry(&roster, &wim, Act::Remove(9)), &root, &never_revoked),
        Err(MembershipError::NotParticipant(9))
    );
    let nowhere = Act::Deescalate(Deescalation { level: "hemel".into(), step: 1, regie: 1, remove: vec![] });
    assert_eq!(
        roster.apply(&entry(&roster, &wim, nowhere), &root, &never_revoked),
        Err(MembershipError::UnknownLevel("hemel".into()))
    );
    let same = Act::Deescalate(Deescalation { level: "regulier".into(), step: 1, regie: 1, remove: vec![] });
    assert_eq!(
        roster.apply(&entry(&roster, &wim, same), &root, &never_revoked),
        Err(MembershipError::SameLevel("regulier".into()))
    );
}

#[test]
fn a_roster_survives_encoding_and_grondslag_codes_parse_back() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let roster = started(&network, &wim);
    let bytes = crate::sync::encode(&roster);
    let back: Roster = crate::sync::decode(&bytes, 1 << 20).unwrap();
    assert_eq!(back, roster);
    for g in Grondslag::ALL {
        assert_eq!(Grondslag::parse(g.as_str()), Some(g));
    }
    assert_eq!(Grondslag::parse("wens"), None);
}

#[test]
fn the_levels_since_a_position_and_the_position_at_a_time_follow_the_chain() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let zoe = network.person(4, 2, "Zoë", "zvh_procesregisseur");
    let mut roster = started(&network, &wim);
    let up = Act::Escalate(Escalation {
        level: "zorg_en_veiligheidshuis".into(),
        grondslag: Grondslag::Convenant,
        step: 1,
        add: vec![zoe.chain.clone()],
        regie: None,
    });
    // Made at 100 (see `entry`); the charter at 10.
    roster.apply(&entry(&roster, &wim, up), &network.root(), &never_revoked).unwrap();
    let down = Act::Deescalate(Deescalation { level: "lokaal".into(), step: 2, regie: 1, remove: vec![2] });
    roster.apply(&entry(&roster, &wim, down), &network.root(), &never_revoked).unwrap();
    assert_eq!(roster.levels_since(1), ["regulier", "zorg_en_veiligheidshuis", "lokaal"]);
    assert_eq!(roster.levels_since(3), ["lokaal"]);
    assert_eq!((roster.seq_at_time(5), roster.seq_at_time(50), roster.seq_at_time(1_000)), (1, 1, 3));
}

#[test]
fn the_regisseur_closes_a_plan_and_nothing_follows_the_close() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let ans = network.person(4, 2, "Ans", "wijkteam");
    let mut roster = started(&network, &wim);
    roster
        .apply(&entry(&roster, &wim, Act::Add(ans.chain.clone())), &network.root(), &never_revoked)
        .unwrap();
    roster.apply(&entry(&roster, &wim, Act::Close), &network.root(), &never_revoked).unwrap();
    assert_eq!(roster.state().closed_at_ms, Some(100));
    assert_eq!(roster.steps().last().unwrap().change, Change::Close { at_ms: 100 });
    // Not even the regisseur changes a closed plan, nor closes it twice.
    for act in [Act::Remove(2), Act::Handover(2), Act::Close] {
        let late = entry(&roster, &wim, act);
        assert_eq!(roster.apply(&late, &network.root(), &never_revoked), Err(MembershipError::Closed));
    }
    let by_admin =
        Entry::next(&roster, 100, Signer::Admin(network.admin_certificate.clone()), Act::Handover(2))
            .sign(&network.admin);
    assert_eq!(roster.apply(&by_admin, &network.root(), &never_revoked), Err(MembershipError::Closed));
    assert_eq!(roster.seq(), 3);
}

#[test]
fn a_participant_who_is_not_the_regisseur_cannot_close_a_plan() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let ans = network.person(4, 2, "Ans", "wijkteam");
    let mut roster = started(&network, &wim);
    roster
        .apply(&entry(&roster, &wim, Act::Add(ans.chain.clone())), &network.root(), &never_revoked)
        .unwrap();
    let by_participant = entry(&roster, &ans, Act::Close);
    assert_eq!(
        roster.apply(&by_participant, &network.root(), &never_revoked),
        Err(MembershipError::NotRegisseur)
    );
    assert_eq!(roster.state().closed_at_ms, None);
    // An administrator closes for a regisseur who is gone.
    let by_admin = Entry::next(&roster, 200, Signer::Admin(network.admin_certificate.clone()), Act::Close)
        .sign(&network.admin);
    roster.apply(&by_admin, &network.root(), &never_revoked).unwrap();
    assert_eq!(roster.state().closed_at_ms, Some(200));
}

#[test]
fn a_close_dated_before_the_chains_last_entry_is_refused_so_retention_is_never_shortened() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let ans = network.person(4, 2, "Ans", "wijkteam");
    let mut roster = started(&network, &wim);
    roster
        .apply(&entry(&roster, &wim, Act::Add(ans.chain.clone())), &network.root(), &never_revoked)
        .unwrap();
    // The addition is dated 100; an administrator's close "in the year 1970" is refused.
    let backdated = Entry::next(&roster, 0, Signer::Admin(network.admin_certificate.clone()), Act::Close)
        .sign(&network.admin);
    assert_eq!(roster.apply(&backdated, &network.root(), &never_revoked), Err(MembershipError::Backdated));
    assert_eq!(roster.state().closed_at_ms, None);
    let on_time = Entry::next(&roster, 100, Signer::Device(wim.chain.clone()), Act::Close).sign(&wim.key);
    roster.apply(&on_time, &network.root(), &never_revoked).unwrap();
    assert_eq!(roster.state().closed_at_ms, Some(100));
}

/// An administrator of `organisation` only, certified by the network's root.
fn scoped_admin(network: &Network, seed: u8, organisation: &str) -> (SigningKey, Vec<u8>) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let certificate = Certificate::sign_admin(
        &AdminBody {
            admin_public: key.verifying_key().to_bytes(),
            name: format!("beheer {organisation}"),
            issued_at_ms: 0,
            organisation: Some(organisation.into()),
        },
        &network.root,
    );
    (key, certificate.to_bytes())
}

#[test]
fn an_organisations_administrator_acts_only_on_its_own_organisations_participants() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let gert = network.person(4, 2, "Gert", "ggz");
    let mut roster = started(&network, &wim);
    roster
        .apply(&entry(&roster, &wim, Act::Add(gert.chain.clone())), &network.root(), &never_revoked)
        .unwrap();
    // The police's administrator cannot remove the municipality's participant, hand over the
    // regie of a municipal regisseur, or close the plan.
    let (politie, politie_certificate) = scoped_admin(&network, 8, "Politie Zaanstreek");
    for act in [Act::Remove(2), Act::Handover(2), Act::Close] {
        let signed =
            Entry::next(&roster, 100, Signer::Admin(politie_certificate.clone()), act.clone()).sign(&politie);
        assert_eq!(
            roster.apply(&signed, &network.root(), &never_revoked),
            Err(MembershipError::OutOfScope("Politie Zaanstreek".into())),
            "{act:?}"
        );
    }
    // The municipality's own administrator can.
    let (zaanstad, zaanstad_certificate) = scoped_admin(&network, 9, "Zaanstad");
    let signed =
        Entry::next(&roster, 100, Signer::Admin(zaanstad_certificate), Act::Remove(2)).sign(&zaanstad);
    roster.apply(&signed, &network.root(), &never_revoked).unwrap();
    assert!(roster.state().participant(2).is_none());
    assert!(
        matches!(roster.steps().last().map(|s| &s.by), Some(SignedBy::Admin { organisation: Some(o), .. }) if o == "Zaanstad")
    );
}

/// A device of `organisation` for user `user`, certified by `admin` (`admin_certificate`).
fn person_of(
    (admin, admin_certificate): (&SigningKey, &[u8]),
    seed: u8,
    user: i64,
    organisation: &str,
) -> Person {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let body = DeviceBody {
        device_id: device_id_of(key.verifying_key().as_bytes()),
        user_id: user,
        user_name: "Wim".into(),
        organisation: organisation.into(),
        role: "wijkteam".into(),
        signing_public: key.verifying_key().to_bytes(),
        agreement_public: vec![9; 32],
        valid_from_ms: 0,
        valid_until_ms: 1_000_000,
        issuer: admin.verifying_key().to_bytes(),
    };
    let chain = CertificateChain {
        certificate: Certificate::sign_device(&body, admin).to_bytes(),
        admin_certificate: admin_certificate.to_vec(),
    };
    Person { key, chain }
}

#[test]
fn a_device_another_organisations_administrator_certified_under_a_participants_user_id_is_not_that_participant()
 {
    let network = Network::new();
    // Wim of Zaanstad (user 1) holds regie.
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let mut roster = started(&network, &wim);
    // The police's administrator certifies a police device that claims user id 1, and signs
    // with it as if it were the regisseur: adding a police officer of its own.
    let (politie, politie_certificate) = scoped_admin(&network, 8, "Politie Zaanstreek");
    let impostor = person_of((&politie, &politie_certificate), 10, 1, "Politie Zaanstreek");
    let officer = person_of((&politie, &politie_certificate), 11, 5, "Politie Zaanstreek");
    for act in [Act::Add(officer.chain.clone()), Act::Close] {
        assert_eq!(
            roster.apply(&entry(&roster, &impostor, act), &network.root(), &never_revoked),
            Err(MembershipError::ForeignCertificate { user: 1, organisation: "Politie Zaanstreek".into() })
        );
    }
    assert!(
        roster.state().participant_certified(&impostor.chain.verify(&network.root(), 5).unwrap()).is_none()
    );
    // Wim's own device still acts as Wim.
    roster
        .apply(&entry(&roster, &wim, Act::Add(officer.chain.clone())), &network.root(), &never_revoked)
        .unwrap();
    assert!(roster.state().participant(5).is_some());
}

#[test]
fn only_the_regisseurs_device_erases_a_member_and_each_erasure_names_a_later_epoch() {
    let network = Network::new();
    let wim = network.person(3, 1, "Wim", "wijkteam");
    let ans = network.person(4, 2, "Ans", "wijkteam");
    let mut roster = started(&network, &wim);
    roster
        .apply(&entry(&roster, &wim, Act::Add(ans.chain.clone())), &network.root(), &never_revoked)
        .unwrap();
    let erase =
        |epoch| Act::Erase(Erasure { epoch, base: Fixed([5; 32]), covers: 9, base_change: Fixed([6; 32]) });
    // A participant, an administrator: refused.
    let by_ans = entry(&roster, &ans, erase(2));
    assert_eq!(roster.apply(&by_ans, &network.root(), &never_revoked), Err(MembershipError::NotRegisseur));
    let by_admin = Entry::next(&roster, 100, Signer::Admin(network.admin_certificate.clone()), erase(2))
        .sign(&network.admin);
    assert_eq!(roster.apply(&by_admin, &network.root(), &never_revoked), Err(MembershipError::NotRegisseur));
    // Epoch 1 is the document's first key, never an erasure's.
    let first = entry(&roster, &wim, erase(1));
    assert_eq!(roster.apply(&first, &network.root(), &never_revoked), Err(MembershipError::StaleErasure));
    roster.apply(&entry(&roster, &wim, erase(2)), &network.root(), &never_revoked).unwrap();
    assert_eq!(roster.erasure().map(|(seq, e)| (seq, e.epoch)), Some((3, 2)));
    let again = entry(&roster, &wim, erase(2));
    assert_eq!(roster.apply(&again, &network.root(), &never_revoked), Err(MembershipError::StaleErasure));
    // A closed plan is erased from too: an AVG request comes during the retention period.
    roster.apply(&entry(&roster, &wim, Act::Close), &network.root(), &never_revoked).unwrap();
    roster.apply(&entry(&roster, &wim, erase(3)), &network.root(), &never_revoked).unwrap();
    assert_eq!(roster.erasure().map(|(_, e)| e.epoch), Some(3));
    assert_eq!(roster.state().participants.len(), 2, "an erasure changes no membership");
}
