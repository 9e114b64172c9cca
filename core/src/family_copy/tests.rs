#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::keystore::MemoryKeyStore;
use crate::plan::PlanError;
use crate::plan::{Compartment, NewAction, NewGoal, NewMember, NoteKind, ValidationError};

/// Words that may appear only where the regisseur put them in.
const ZORG: &str = "Methadonprogramma";
const JUSTITIE: &str = "Taakstraf";
const HOME_VISIT: &str = "Keukentafelgesprek";
const DANGER: &str = "Vader dreigt te slaan";
const SAFETY_GOAL: &str = "Vader belt zijn broer als hij boos wordt";

struct Fixture {
    _dir: tempfile::TempDir,
    device: Device,
    plan: PlanId,
    safety_item: crate::EntityId,
}

/// A plan on a device that never synced (no chain: its creator may act as regisseur), with a
/// goal, an action, an agreement, and a zorg, justitie and basis home-visit note and a safety
/// item, each with a word of its own.
fn plan_with_professional_notes(family: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::init(dir.path(), &MemoryKeyStore::generate()).unwrap();
    let plan = device.create_plan(family).unwrap();
    let safety_item = device
        .edit(&plan, |p| {
            p.add_member(NewMember {
                name: "Anja".into(),
                relation: "moeder".into(),
                birth_date: None,
                parental_authority: true,
            })?;
            let goal =
                p.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden in beeld".into() })?;
            p.add_action(NewAction {
                goal,
                title: "Brieven samen openen".into(),
                owner_org: "Wijkteam Noord".into(),
                owner_user: None,
                due: Some("2026-12-03".into()),
            })?;
            p.add_agreement("We bellen elke maandag.")?;
            p.add_note(Compartment::Zorg, NoteKind::Note, &format!("{ZORG} loopt."))?;
            p.add_note(Compartment::Justitie, NoteKind::Note, &format!("{JUSTITIE} van 40 uur."))?;
            p.add_note(Compartment::Basis, NoteKind::HomeVisit, &format!("{HOME_VISIT} met moeder."))?;
            p.add_safety_item(DANGER, SAFETY_GOAL)
        })
        .unwrap();
    Fixture { _dir: dir, device, plan, safety_item }
}

fn text_of(copy: &FamilyCopy) -> String {
    copy.to_html().unwrap()
}

#[test]
fn the_copy_of_a_plan_holds_no_note_of_any_compartment_and_no_safety_item() {
    let mut f = plan_with_professional_notes("Jansen");
    let copy = f.device.family_copy(&f.plan).unwrap();
    let html = text_of(&copy);
    for word in [ZORG, JUSTITIE, HOME_VISIT, DANGER, SAFETY_GOAL] {
        assert!(!html.contains(word), "{word} is not for the family's copy");
        assert!(!serde_json::to_string(&copy).unwrap().contains(word));
    }
    for word in ["Schulden in beeld", "Brieven samen openen", "Wijkteam Noord", "3 december 2026"] {
        assert!(html.contains(word), "{word} belongs in the copy");
    }
    assert!(html.contains("We bellen elke maandag."));
    assert!(html.contains("Anja (moeder)"));
    assert!(html.contains("Dit plan is nog niet vastgesteld."));
}

#[test]
fn a_safety_item_the_regisseur_includes_is_the_only_one_that_appears_and_leaves_again() {
    let mut f = plan_with_professional_notes("Jansen");
    let item = FamilyCopyItem::SafetyItem { id: f.safety_item };
    f.device.include_in_family_copy(&f.plan, item, true).unwrap();
    assert_eq!(f.device.read(&f.plan).unwrap().family_copy_items, vec![item]);
    let copy = f.device.family_copy(&f.plan).unwrap();
    assert_eq!(copy.included.len(), 1);
    let html = text_of(&copy);
    assert!(html.contains(DANGER) && html.contains(SAFETY_GOAL));
    for word in [ZORG, JUSTITIE, HOME_VISIT] {
        assert!(!html.contains(word), "{word} was not included");
    }

    f.device.include_in_family_copy(&f.plan, item, false).unwrap();
    assert!(f.device.read(&f.plan).unwrap().family_copy_items.is_empty());
    assert!(!text_of(&f.device.family_copy(&f.plan).unwrap()).contains(DANGER));
}

#[test]
fn an_included_note_shows_only_on_a_device_that_holds_its_compartment() {
    let mut f = plan_with_professional_notes("Jansen");
    let view = f.device.read(&f.plan).unwrap();
    let zorg = view.notes.iter().find(|n| n.compartment == Compartment::Zorg).unwrap();
    let item = FamilyCopyItem::Note { compartment: Compartment::Zorg, id: zorg.id };
    f.device.include_in_family_copy(&f.plan, item, true).unwrap();
    let mut view = f.device.read(&f.plan).unwrap();
    assert!(FamilyCopy::from_view(&view, None, "2026-12-03").to_html().unwrap().contains(ZORG));

    // A device without the zorg key has the key in basis but not the note: nothing shows.
    view.notes.retain(|n| n.compartment != Compartment::Zorg);
    let copy = FamilyCopy::from_view(&view, None, "2026-12-03");
    assert!(copy.included.is_empty());
    assert!(!copy.to_html().unwrap().contains(ZORG));
}

#[test]
fn only_an_item_the_plan_holds_can_be_included() {
    let mut f = plan_with_professional_notes("Jansen");
    let unknown = crate::EntityId::random();
    let err = f
        .device
        .include_in_family_copy(&f.plan, FamilyCopyItem::SafetyItem { id: unknown }, true)
        .unwrap_err();
    assert!(
        matches!(err, CoreError::Plan(PlanError::Invalid(ValidationError::UnknownSafetyItem(id))) if id == unknown)
    );
    // Taking out what is not in is no change at all.
    f.device.include_in_family_copy(&f.plan, FamilyCopyItem::SafetyItem { id: unknown }, false).unwrap();
}

#[test]
fn the_html_escapes_a_script_in_the_family_name() {
    let mut f = plan_with_professional_notes("<script>alert('x')</script> & Co");
    let html = text_of(&f.device.family_copy(&f.plan).unwrap());
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"), "{html}");
}

#[test]
fn an_adopted_plan_says_when_in_which_version_and_with_whom() {
    let f = plan_with_professional_notes("Jansen");
    let mut device = f.device;
    let view = device.read(&f.plan).unwrap();
    let stamp = AdoptedStamp { version: 2, date: "2026-11-20".into(), with_family: String::new() };
    let copy = FamilyCopy::from_view(&view, Some(stamp), "2026-12-03");
    let html = copy.to_html().unwrap();
    assert!(html.contains(
        "Dit plan is vastgesteld op 20 november 2026 (versie 2). Dat deden we samen met het gezin."
    ));
    assert!(html.contains("Gemaakt op 3 december 2026."));
}

#[test]
fn who_does_an_action_reads_as_person_and_organisation() {
    let f = plan_with_professional_notes("Jansen");
    let mut device = f.device;
    let mut view = device.read(&f.plan).unwrap();
    let wim = crate::regie::PlanParticipant {
        user_id: 7,
        name: "Wim".into(),
        organisation: "Wijkteam Noord".into(),
        role: "wijkteam".into(),
        phone: None,
        email: None,
    };
    view.membership = Some(crate::regie::Membership {
        regisseur: wim.clone(),
        offered_to: None,
        level: "lokaal".into(),
        participants: vec![wim],
        steps: Vec::new(),
    });
    let by_participant = Action { owner_user: Some(7), ..action_of(None, "Wijkteam Noord") };
    assert_eq!(action_owner(&view, &by_participant), "Wim (Wijkteam Noord)");
    let action = action_of;
    assert_eq!(action_owner(&view, &action(Some("Rita"), "Wijkteam Noord")), "Rita (Wijkteam Noord)");
    assert_eq!(action_owner(&view, &action(None, "Wijkteam Noord")), "Wijkteam Noord");
    assert_eq!(action_owner(&view, &action(Some("Anja"), "")), "Anja");
    assert_eq!(action_owner(&view, &action(None, " ")), NOBODY_YET);
}

fn action_of(person: Option<&str>, org: &str) -> Action {
    Action {
        id: crate::EntityId::random(),
        goal: crate::EntityId::random(),
        title: "t".into(),
        owner_org: org.into(),
        owner_person: person.map(str::to_owned),
        owner_user: None,
        due: None,
        status: "todo".into(),
        created_at_ms: 0,
    }
}
