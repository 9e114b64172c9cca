//! Adoptions in a plan whose `basis` an erasure re-sealed: listed and checked as ever, the
//! version as it was refused with a typed error, the numbering carried on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use super::*;
use crate::clock::ManualClock;
use crate::keystore::{KdfParams, PassphraseKeyStore};
use crate::plan::{NewMember, base_without_member};
use crate::sync::test_network::{TestNetwork, TestUser};

const START: i64 = 1_800_000_000_000;
const WIM: TestUser<'static> =
    TestUser { user_id: 7, name: "Wim de Vries", organisation: "Wijkteam Zaanstad", role: "wijkteam" };

/// Wim's phone, enrolled, with a plan whose chain makes him its regisseur, with one member.
fn wims_plan(net: &TestNetwork) -> (tempfile::TempDir, Device, PlanId, EntityId) {
    let dir = tempfile::tempdir().unwrap();
    let keystore = PassphraseKeyStore::with_params("geheim", KdfParams::INSECURE_FAST_FOR_TESTS);
    let mut device =
        Device::init(dir.path(), &keystore).unwrap().with_clock(Arc::new(ManualClock::new(START)));
    net.enrol(&mut device, &WIM);
    let plan = device.create_plan("Jansen").unwrap();
    let signing = device.identity().signing_key().clone();
    let chain =
        net.chain(&signing.verifying_key().to_bytes(), device.identity().agreement_public(), &WIM, START);
    net.start_chain(&mut device, plan, &signing, chain);
    let member = NewMember {
        name: "Sanne de Vries".into(),
        relation: "dochter".into(),
        birth_date: Some("2012-03-14".into()),
        parental_authority: false,
    };
    let sanne = device.edit(&plan, |p| p.add_member(member)).unwrap();
    (dir, device, plan, sanne)
}

/// Replaces the plan's `basis` in memory by a base without `member` that this device wrote,
/// vouched for or not (storing and syncing a base is not this module's part).
fn erase(device: &mut Device, plan: PlanId, member: EntityId, vouch: bool) {
    let author = device.device_id().actor();
    let mut held = device.take_plan_or_new(plan).unwrap();
    let old = held.doc(Compartment::Basis).unwrap().clone();
    let (base, _) = base_without_member(&old, None, member, author.clone(), START + 1, &|_| true).unwrap();
    *held.doc_mut(Compartment::Basis).unwrap() = base;
    if vouch {
        held.vouch_base(Compartment::Basis, author);
    }
    device.put_back_plan(held);
}

fn checks(device: &mut Device, plan: &PlanId) -> Vec<(u32, AdoptionCheck)> {
    device.adoptions(plan).unwrap().into_iter().map(|a| (a.version, a.check)).collect()
}

#[test]
fn an_adoption_carried_into_a_vouched_base_stays_verified_but_its_version_cannot_be_shown() {
    let net = TestNetwork::new();
    let (_dir, mut device, plan, sanne) = wims_plan(&net);
    assert_eq!(device.adopt(&plan, "Besproken met moeder", &[]).unwrap(), 1);
    assert!(device.adopted_plan(&plan, Some(1)).is_ok());

    erase(&mut device, plan, sanne, true);
    assert_eq!(checks(&mut device, &plan), [(1, AdoptionCheck::Verified)]);
    for version in [Some(1), None] {
        let refused = device.adopted_plan(&plan, version);
        assert!(matches!(refused, Err(CoreError::AdoptedVersionResealed { version: 1 })), "{refused:?}");
        let message = refused.unwrap_err().to_string();
        assert_eq!(message, "deze versie is vervangen bij het wissen van persoonsgegevens");
    }
    assert!(device.newest_adopted_plan(&plan).unwrap().is_none());

    // The next adoption, on the base, carries on the numbering and is shown as it was.
    assert_eq!(device.adopt(&plan, "Opnieuw besproken", &[]).unwrap(), 2);
    assert_eq!(checks(&mut device, &plan), [(1, AdoptionCheck::Verified), (2, AdoptionCheck::Verified)]);
    let adopted = device.adopted_plan(&plan, None).unwrap();
    assert_eq!(adopted.adoption.version, 2);
    assert!(adopted.view.members.is_empty());
    assert_eq!(device.newest_adopted_plan(&plan).unwrap().map(|a| a.adoption.version), Some(2));
}

#[test]
fn an_adoption_in_a_base_nobody_vouches_for_is_listed_as_pending_without_an_error() {
    let net = TestNetwork::new();
    let (_dir, mut device, plan, sanne) = wims_plan(&net);
    device.adopt(&plan, "Besproken met moeder", &[]).unwrap();

    erase(&mut device, plan, sanne, false);
    let listed = checks(&mut device, &plan);
    assert!(matches!(listed.as_slice(), [(1, AdoptionCheck::Pending { .. })]), "{listed:?}");
    assert!(device.newest_adopted_plan(&plan).unwrap().is_none());
    let refused = device.adopted_plan(&plan, Some(1));
    assert!(matches!(refused, Err(CoreError::NotAllowed(_))), "{refused:?}");
}
