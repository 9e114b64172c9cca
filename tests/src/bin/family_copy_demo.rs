//! Writes the family's copy of a realistic demo plan (the Jansen family, adopted as version
//! 2) as HTML, for `scripts/family-copy-picture.sh`, which photographs its first page into
//! `docs/family-copy-page1.png`.
//!
//!     family_copy_demo OUT.html

use std::process::ExitCode;

use eenplan_core::family_copy::{AdoptedStamp, FamilyCopy};
use eenplan_core::keystore::MemoryKeyStore;
use eenplan_core::plan::{
    ActionStatus, ActionUpdate, Compartment, GoalStatus, NewAction, NewGoal, NewMember, NewParticipant,
    NoteKind, Plan, PlanError, Role,
};
use eenplan_core::regie::{Membership, PlanParticipant};
use eenplan_core::{Device, EntityId};

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: family_copy_demo OUT.html");
        return ExitCode::from(2);
    };
    match demo_html() {
        Ok(html) => match std::fs::write(&out, html) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write {}: {e}", out.to_string_lossy());
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn demo_html() -> Result<String, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut device = Device::init(dir.path(), &MemoryKeyStore::generate())?;
    let plan = device.create_plan("Jansen")?;
    device.edit(&plan, family)?;
    device.edit(&plan, goals)?;
    // A professional's note: the copy leaves it out.
    device.edit(&plan, |p| p.add_note(Compartment::Zorg, NoteKind::Note, "Moeder start bij de GGZ."))?;
    let mut view = device.read(&plan)?;
    view.membership = Some(signed_list());
    let adopted = AdoptedStamp {
        version: 2,
        date: "2026-11-20".into(),
        with_family: "Besproken met Anja en Mark Jansen; zij zijn akkoord.".into(),
    };
    Ok(FamilyCopy::from_view(&view, Some(adopted), "2026-12-03").to_html()?)
}

fn family(p: &mut Plan) -> Result<(), PlanError> {
    for (name, relation, gezag) in [
        ("Anja Jansen", "moeder", true),
        ("Mark Jansen", "vader", true),
        ("Zoë", "dochter, 9 jaar", false),
        ("Daan", "zoon, 6 jaar", false),
    ] {
        p.add_member(NewMember {
            name: name.into(),
            relation: relation.into(),
            birth_date: None,
            parental_authority: gezag,
        })?;
    }
    let rita = p.add_participant(NewParticipant {
        name: "Rita de Vries".into(),
        organisation: "Wijkteam Noord".into(),
        role: Role::Wijkteam,
    })?;
    p.add_participant(NewParticipant {
        name: "Sanne Bakker".into(),
        organisation: "Basisschool De Linde".into(),
        role: Role::School,
    })?;
    p.set_regisseur(rita)?;
    p.add_agreement("We zien elkaar elke twee weken op dinsdag bij u thuis.")?;
    p.add_agreement("Als er iets misgaat, belt u eerst Rita. Zij helpt u verder.")?;
    p.add_agreement(
        "Zoë en Daan gaan elke dag naar school. Is er een probleem, dan belt u de school vóór half negen.",
    )?;
    Ok(())
}

fn goals(p: &mut Plan) -> Result<(), PlanError> {
    let money = goal(p, "financiën", "Alle schulden staan op één lijst")?;
    action(
        p,
        money,
        "Brieven van schuldeisers samen openen",
        "Wijkteam Noord",
        Some("Rita de Vries"),
        Some("2026-12-15"),
    )?;
    let done = action(
        p,
        money,
        "Aanmelden bij de schuldhulp van de gemeente",
        "Gezin Jansen",
        Some("Anja"),
        Some("2026-11-30"),
    )?;
    p.update_action(done, ActionUpdate { status: Some(ActionStatus::Done), ..ActionUpdate::default() })?;
    let home = goal(p, "huisvesting", "De huur is elke maand op tijd betaald")?;
    p.set_goal_status(home, GoalStatus::InProgress)?;
    action(
        p,
        home,
        "Automatische betaling van de huur regelen",
        "Gezin Jansen",
        Some("Mark"),
        Some("2027-01-05"),
    )?;
    action(p, home, "Betalingsregeling voor de achterstand afspreken", "Woonstad", None, Some("2027-01-15"))?;
    let school = goal(p, "werk & opleiding", "Zoë en Daan zijn elke dag op school")?;
    action(
        p,
        school,
        "Elke week kort bellen over hoe het gaat",
        "Basisschool De Linde",
        Some("Sanne Bakker"),
        None,
    )?;
    let rest = goal(p, "sociaal netwerk", "Anja heeft iemand die kan oppassen")?;
    action(
        p,
        rest,
        "Vragen of oma één middag per week kan helpen",
        "Gezin Jansen",
        Some("Anja"),
        Some("2026-12-20"),
    )?;
    Ok(())
}

fn goal(p: &mut Plan, domain: &str, title: &str) -> Result<EntityId, PlanError> {
    p.add_goal(NewGoal { domain: domain.into(), title: title.into() })
}

fn action(
    p: &mut Plan,
    goal: EntityId,
    title: &str,
    org: &str,
    person: Option<&str>,
    due: Option<&str>,
) -> Result<EntityId, PlanError> {
    // A professional who does it is a participant (by user id in the signed list); a family
    // member who does it is named where the organisation goes.
    let professional = person.and_then(|name| PROFESSIONALS.iter().position(|(p, _)| *p == name));
    let owner_org = match (professional, person) {
        (None, Some(family)) => family,
        _ => org,
    };
    p.add_action(NewAction {
        goal,
        title: title.into(),
        owner_org: owner_org.into(),
        owner_user: professional.map(user_id),
        due: due.map(str::to_owned),
    })
}

/// The professionals taking part, as the plan's signed list would name them (a demo plan on
/// a device with no server has no chain: the picture shows what one with a chain shows).
const PROFESSIONALS: [(&str, &str); 2] =
    [("Rita de Vries", "Wijkteam Noord"), ("Sanne Bakker", "Basisschool De Linde")];

fn user_id(index: usize) -> i64 {
    i64::try_from(index).unwrap_or(0) + 1
}

fn signed_list() -> Membership {
    let participants: Vec<PlanParticipant> = PROFESSIONALS
        .iter()
        .enumerate()
        .map(|(i, (name, organisation))| PlanParticipant {
            user_id: user_id(i),
            name: (*name).into(),
            organisation: (*organisation).into(),
            role: "wijkteam".into(),
            phone: None,
            email: None,
        })
        .collect();
    Membership {
        regisseur: participants[0].clone(),
        offered_to: None,
        level: "lokaal".into(),
        participants,
        steps: Vec::new(),
    }
}
