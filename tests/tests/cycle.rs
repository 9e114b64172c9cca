//! The working cycle end to end against a real server: the regisseur adopts the plan with the
//! family and every participant's device verifies it, forged adoptions are refused, the
//! adopted version reads as it was; the agenda across plans; case meetings whose decisions
//! become actions; the ZRM trend; and the command line for all of it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use eenplan_core::adoption::{AdoptionCheck, signed_bytes};
use eenplan_core::agenda::AgendaKind;
use eenplan_core::cycle::{DecisionActionInput, DecisionInput, Direction};
use eenplan_core::plan::{ActionStatus, ActionUpdate, NewAction, NewGoal, NewMember};
use eenplan_core::{Device, EntityId, PlanId};
use eenplan_tests::cli::Cli;
use eenplan_tests::day;
use eenplan_tests::network::Network;

const USERS: &[(&str, &str, &str)] = &[
    ("Wim", "Wijkteam Zaanstad", "wijkteam"),
    ("Ans", "Wijkteam Zaanstad", "wijkteam"),
    ("Gert", "GGZ Noord", "ggz"),
];

fn sync_all(devices: &mut [&mut Device]) {
    for _ in 0..2 {
        for device in devices.iter_mut() {
            device.sync().unwrap();
        }
    }
}

/// A plan of `regisseur`'s with the given participants, a member and a goal.
fn plan_with(regisseur: &mut Device, family: &str, others: &[(&str, &str)]) -> (PlanId, EntityId) {
    let plan = regisseur.create_plan(family).unwrap();
    regisseur.sync().unwrap();
    for (user, role) in others {
        regisseur.add_participant(&plan, user, role).unwrap();
    }
    let goal = regisseur
        .edit(&plan, |p| {
            p.add_goal(NewGoal { domain: "financiën".into(), title: "Schulden op orde".into() })
        })
        .unwrap();
    (plan, goal)
}

fn action(
    device: &mut Device,
    plan: &PlanId,
    goal: EntityId,
    title: &str,
    owner: &str,
    due: &str,
) -> EntityId {
    let new = NewAction {
        goal,
        title: title.into(),
        owner_org: "Wijkteam Zaanstad".into(),
        owner_user: None,
        due: Some(due.into()),
    };
    device.add_action_for(plan, new, Some(owner)).unwrap()
}

fn checks(device: &mut Device, plan: &PlanId) -> Vec<AdoptionCheck> {
    device.adoptions(plan).unwrap().into_iter().map(|a| a.check).collect()
}

fn refused_because(check: &AdoptionCheck) -> &str {
    match check {
        AdoptionCheck::Refused { reason } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_adoption_verifies_on_every_device_forged_ones_are_refused_and_the_adopted_version_reads_as_it_was() {
    let net = Network::start(USERS);
    let mut wim = net.device("wim", "Wim");
    let mut ans = net.device("ans", "Ans");
    let mut gert = net.device("gert", "Gert");
    let (plan, goal) = plan_with(&mut wim, "Jansen", &[("Ans", "wijkteam"), ("Gert", "ggz")]);
    wim.edit(&plan, |p| p.add_agreement("Moeder belt elke maandag de budgetcoach.")).unwrap();
    sync_all(&mut [&mut wim, &mut ans, &mut gert]);

    // Only the regisseur adopts.
    assert!(ans.adopt(&plan, "besproken met het gezin", &[]).is_err());
    let version =
        wim.adopt(&plan, "besproken met het gezin op 3 december; moeder akkoord", &["Ans".into()]).unwrap();
    assert_eq!(version, 1);
    sync_all(&mut [&mut wim, &mut ans, &mut gert]);
    for device in [&mut wim, &mut ans, &mut gert] {
        let adoptions = device.adoptions(&plan).unwrap();
        assert_eq!(adoptions.len(), 1);
        let adoption = &adoptions[0];
        assert_eq!(adoption.check, AdoptionCheck::Verified, "on {:?}", device.device_id());
        assert_eq!(adoption.signed_by.as_ref().unwrap().name, "Wim");
        assert_eq!(adoption.present.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Ans"]);
    }

    // Ans changes the goal afterwards: the adopted version still reads as it was, and the
    // change is "nog niet vastgesteld".
    ans.edit(&plan, |p| p.set_goal_title(goal, "Schulden afbetalen")).unwrap();
    ans.edit(&plan, |p| p.add_agreement("Vader gaat naar de schuldhulp.")).unwrap();
    sync_all(&mut [&mut wim, &mut ans, &mut gert]);
    for device in [&mut wim, &mut ans, &mut gert] {
        let adopted = device.adopted_plan(&plan, None).unwrap();
        assert_eq!(adopted.view.goals[0].title, "Schulden op orde");
        assert_eq!(adopted.view.agreements.len(), 1);
        let mut kinds: Vec<(&str, &str)> =
            adopted.not_adopted.iter().map(|n| (n.kind.as_str(), n.change.as_str())).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, [("agreement", "added"), ("goal", "changed")]);
    }
    assert_eq!(wim.read(&plan).unwrap().goals[0].title, "Schulden afbetalen");

    // Ans forges: a record signed with her own device's key, one with altered heads under
    // Wim's signature, and a verbatim copy of Wim's record in her own change.
    let genuine = wim.adoption_records(&plan).unwrap().pop().unwrap();
    let mut own = genuine.clone();
    own.id = EntityId::random();
    own.version = 2;
    own.signer = ans.device_id().to_string();
    own.signature = ans.identity().sign(&signed_bytes(plan, &own)).to_bytes().to_vec();
    let mut altered = genuine.clone();
    altered.id = EntityId::random();
    altered.version = 3;
    altered.heads = ans.plan_heads(&plan).unwrap();
    let mut copied = genuine.clone();
    copied.id = EntityId::random();
    for record in [&own, &altered, &copied] {
        ans.edit(&plan, |p| p.add_adoption(record)).unwrap();
    }
    sync_all(&mut [&mut wim, &mut ans, &mut gert]);
    for device in [&mut wim, &mut ans, &mut gert] {
        let adoptions = device.adoptions(&plan).unwrap();
        let by_id = |id: EntityId| adoptions.iter().find(|a| a.id == id).unwrap().check.clone();
        assert_eq!(by_id(genuine.id), AdoptionCheck::Verified);
        assert!(refused_because(&by_id(own.id)).contains("regisseur"));
        assert!(refused_because(&by_id(altered.id)).contains("handtekening"));
        assert!(refused_because(&by_id(copied.id)).contains("ander apparaat"));
        assert_eq!(device.latest_adoption(&plan).unwrap().unwrap().version, 1, "forgeries are no version");
    }
    assert_eq!(checks(&mut gert, &plan).len(), 4);
    // Ans's own records said versions 2 and 3; only verified records count.
    assert_eq!(wim.adopt(&plan, "opnieuw besproken", &[]).unwrap(), 2);
}

#[test]
fn the_agenda_lists_my_overdue_action_from_one_plan_and_not_someone_elses_from_another() {
    let net = Network::start(USERS);
    let mut wim = net.device("wim", "Wim");
    let mut ans = net.device("ans", "Ans");
    // Plan A is Wim's; plan B is Ans's, and Wim takes part.
    let (a, goal_a) = plan_with(&mut wim, "Jansen", &[("Ans", "wijkteam")]);
    let (b, goal_b) = plan_with(&mut ans, "Smit", &[("Wim", "wijkteam")]);
    sync_all(&mut [&mut wim, &mut ans]);
    let mine = action(&mut wim, &a, goal_a, "Budgetcoach bellen", "Wim", &day(-10));
    let soon = action(&mut wim, &a, goal_a, "Huisbezoek plannen", "Wim", &day(3));
    action(&mut wim, &a, goal_a, "School bellen", "Ans", &day(-5));
    action(&mut wim, &a, goal_a, "Later", "Wim", &day(30));
    let hers = action(&mut ans, &b, goal_b, "Huur regelen", "Ans", &day(-10));
    let done = action(&mut ans, &b, goal_b, "Formulier invullen", "Wim", &day(-2));
    ans.edit(&b, |p| {
        p.update_action(done, ActionUpdate { status: Some(ActionStatus::Done), ..Default::default() })
    })
    .unwrap();
    let evaluation = wim.edit(&a, |p| p.add_evaluation(&day(2))).unwrap();
    // A conflict in each plan: Wim holds regie of A only.
    sync_all(&mut [&mut wim, &mut ans]);
    for plan in [&a, &b] {
        let target = wim.read(plan).unwrap().actions[0].id;
        for (device, title) in [(&mut wim, "titel van Wim"), (&mut ans, "titel van Ans")] {
            let update = ActionUpdate { title: Some(title.into()), ..Default::default() };
            device.edit(plan, |p| p.update_action(target, update)).unwrap();
        }
    }
    sync_all(&mut [&mut wim, &mut ans]);

    let agenda = wim.agenda().unwrap();
    let listed: Vec<(AgendaKind, PlanId, Option<EntityId>)> =
        agenda.items.iter().map(|i| (i.kind, i.plan, i.entity)).collect();
    assert_eq!(
        listed,
        [
            (AgendaKind::ActionOverdue, a, Some(mine)),
            (AgendaKind::EvaluationDue, a, Some(evaluation)),
            (AgendaKind::ActionDue, a, Some(soon)),
            (AgendaKind::Conflicts, a, None),
        ],
        "{agenda:#?}"
    );
    let ans_agenda = ans.agenda().unwrap();
    assert!(ans_agenda.items.iter().any(|i| i.entity == Some(hers)));
    assert!(!ans_agenda.items.iter().any(|i| i.entity == Some(mine)));
    assert!(ans_agenda.items.iter().any(|i| i.kind == AgendaKind::Conflicts && i.plan == b));

    // Once held, the evaluation is no longer due.
    wim.evaluation_held(&a, evaluation).unwrap();
    assert!(!wim.agenda().unwrap().items.iter().any(|i| i.entity == Some(evaluation)));
}

#[test]
fn a_case_meeting_decision_becomes_an_action_of_a_participant_in_one_step_and_the_trend_shows_progress() {
    let net = Network::start(USERS);
    let mut wim = net.device("wim", "Wim");
    let mut ans = net.device("ans", "Ans");
    let (plan, goal) = plan_with(&mut wim, "Jansen", &[("Ans", "wijkteam")]);
    let mother = wim
        .edit(&plan, |p| {
            p.add_member(NewMember {
                name: "Petra".into(),
                relation: "moeder".into(),
                birth_date: None,
                parental_authority: true,
            })
        })
        .unwrap();
    for (date, score) in [("2026-09-01", 2), ("2026-10-01", 3), ("2026-11-01", 4)] {
        wim.edit(&plan, |p| p.set_score(mother, "financiën", date, score)).unwrap();
    }
    wim.edit(&plan, |p| p.set_score(mother, "huisvesting", "2026-11-01", 3)).unwrap();
    let decisions = vec![
        DecisionInput { text: "Het gezin krijgt een budgetcoach.".into(), action: None },
        DecisionInput {
            text: "Aanmelding schuldhulp".into(),
            action: Some(DecisionActionInput { owner: "Ans".into(), due: Some(day(-1)), goal }),
        },
    ];
    let meeting = wim.record_meeting(&plan, &day(0), &["Wim".into(), "Ans".into()], decisions).unwrap();
    sync_all(&mut [&mut wim, &mut ans]);

    let view = ans.read(&plan).unwrap();
    let recorded = view.meetings.iter().find(|m| m.id == meeting).unwrap();
    assert_eq!(recorded.attendees.len(), 2);
    let created = recorded.decisions[1].action.expect("the decision made an action");
    let action = view.actions.iter().find(|a| a.id == created).unwrap();
    assert_eq!(action.owner_user, ans.own_user_id().unwrap());
    assert_eq!(action.title, "Aanmelding schuldhulp");
    assert!(ans.agenda().unwrap().items.iter().any(|i| i.entity == Some(created)), "due in her agenda");

    let trend = ans.scores(&plan, "Petra").unwrap();
    let financien = trend.iter().find(|t| t.domain == "financiën").unwrap();
    assert_eq!(financien.points.iter().map(|p| p.score).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(financien.direction, Direction::Better);
    assert_eq!(trend.iter().find(|t| t.domain == "huisvesting").unwrap().direction, Direction::Single);
    // A meeting names participants only.
    assert!(wim.record_meeting(&plan, &day(0), &["Onbekend".into()], Vec::new()).is_err());
}

#[test]
fn the_command_line_adopts_shows_the_adopted_version_records_meetings_and_lists_the_agenda() {
    let net = Network::start(USERS);
    let wim = Cli::enrolled(&net, "wim-cli", "Wim");
    let ans = Cli::enrolled(&net, "ans-cli", "Ans");
    let plan = wim.ok(&["plan", "create", "--family", "Jansen"]);
    wim.ok(&["sync"]);
    wim.ok(&["plan", "add-participant", &plan, "--user", "Ans", "--role", "wijkteam"]);
    let member = wim.ok(&["member", "add", &plan, "--name", "Petra", "--relation", "moeder", "--gezag"]);
    let goal = wim.ok(&["goal", "add", &plan, "--domain", "financiën", "--title", "Schulden op orde"]);
    let overdue = day(-3);
    wim.ok(&[
        "action",
        "add",
        &plan,
        "--goal",
        &goal,
        "--title",
        "Budgetcoach bellen",
        "--owner",
        "Wijkteam Zaanstad",
        "--owner-person",
        "Wim",
        "--due",
        &overdue,
    ]);
    wim.ok(&[
        "score",
        "set",
        &plan,
        "--member",
        &member,
        "--domain",
        "financiën",
        "--date",
        "2026-10-01",
        "--score",
        "2",
    ]);
    wim.ok(&[
        "score",
        "set",
        &plan,
        "--member",
        &member,
        "--domain",
        "financiën",
        "--date",
        "2026-11-01",
        "--score",
        "3",
    ]);
    wim.ok(&["evaluation", "add", &plan, "--date", &day(1)]);
    let adopted =
        wim.json(&["plan", "adopt", &plan, "--with-family", "besproken met het gezin", "--present", "Ans"]);
    assert_eq!(adopted["version"], 1);
    wim.ok(&["goal", "set", &plan, &goal, "--title", "Schulden afbetalen"]);
    wim.ok(&[
        "meeting",
        "add",
        &plan,
        "--date",
        &day(0),
        "--attendee",
        "Wim",
        "--attendee",
        "Ans",
        "--decision",
        "Het gezin krijgt een budgetcoach.",
        "--decision",
        &format!("Aanmelding schuldhulp | Ans | {overdue} | Schulden afbetalen"),
    ]);
    wim.ok(&["sync"]);
    ans.ok(&["sync"]);

    let shown = ans.json(&["plan", "adopted", &plan]);
    assert_eq!(shown["adoption"]["check"]["status"], "verified");
    assert_eq!(shown["view"]["goals"][0]["title"], "Schulden op orde");
    let text = ans.ok(&["plan", "adopted", &plan]);
    assert!(text.contains("Nog niet vastgesteld") && text.contains("Schulden afbetalen"), "{text}");
    let show = ans.ok(&["plan", "show", &plan]);
    assert!(show.contains("Schulden afbetalen  (nog niet vastgesteld)"), "{show}");
    assert!(show.contains("Financiën") && show.contains("Te doen"), "Dutch labels: {show}");

    let agenda = wim.json(&["agenda"]);
    let kinds: Vec<&str> =
        agenda["items"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["action_overdue", "evaluation_due"], "{agenda}");
    let agenda = ans.ok(&["agenda"]);
    assert!(agenda.contains("Actie te laat") && agenda.contains("Aanmelding schuldhulp"), "{agenda}");

    let trend = ans.json(&["scores", &plan, "--member", "Petra"]);
    assert_eq!(trend[0]["direction"], "better");
    assert!(
        ans.ok(&["scores", &plan, "--member", "Petra"])
            .contains("Financiën: 2026-10-01 2 → 2026-11-01 3  (beter)")
    );
}
