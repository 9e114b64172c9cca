//! b. **The agenda across 40 plans.** One worker's device (Wim) takes part in 40 plans, each
//!    of a size a busy case reaches: three family members, five goals, twenty actions (eight
//!    of them Wim's, with due dates from three weeks ago to three weeks ahead), two
//!    evaluations, thirty ZRM scores, and five home-visit notes typed one keystroke at a time
//!    (about 450 changes in `basis`). Wim holds regie of half of them, and each of those has
//!    an unsettled conflict. Two figures, each a median over the repetitions:
//!    - *cold*: the device was just opened (the start screen after unlocking): every plan
//!      loads from the encrypted store, is materialised and checked;
//!    - *after an edit*: the agenda again after one edit in one plan (the other 39 views are
//!      cached; the edited one is read again).
//!
//!    Target: under 50 ms (issue 11).

use std::time::Instant;

use eenplan_core::plan::{ActionUpdate, Compartment, NewAction, NewGoal, NewMember, NoteKind};
use eenplan_core::{Device, EntityId, PlanId};
use eenplan_tests::bench::{Table, median, ratio};
use eenplan_tests::day;
use eenplan_tests::network::{Network, device_keystore};

const TARGET_MS: f64 = 50.0;

/// One plan as described above, made by `owner` (its regisseur) with `invite` taking part.
fn busy_plan(owner: &mut Device, invite: &str, i: usize) -> PlanId {
    let plan = owner.create_plan(&format!("Gezin {i:02}")).unwrap();
    owner.sync().unwrap();
    owner.add_participant(&plan, invite, "wijkteam").unwrap();
    owner
        .edit(&plan, |p| {
            for name in ["Petra", "Karel", "Sem"] {
                let member = p.add_member(NewMember {
                    name: name.into(),
                    relation: "gezinslid".into(),
                    birth_date: None,
                    parental_authority: name != "Sem",
                })?;
                for (n, domain) in
                    ["financiën", "huisvesting", "sociaal netwerk", "justitie", "werk & opleiding"]
                        .iter()
                        .enumerate()
                {
                    for month in ["2026-09-01", "2026-11-01"] {
                        p.set_score(member, domain, month, i64::try_from(1 + (n + i) % 5).unwrap())?;
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    plan
}

fn fill(device: &mut Device, plan: &PlanId, me: &str, other: &str) -> EntityId {
    let mut first_action = None;
    for g in 0..5 {
        let goal = device
            .edit(plan, |p| p.add_goal(NewGoal { domain: "financiën".into(), title: format!("Doel {g}") }))
            .unwrap();
        for a in 0..4 {
            let owner = if (g * 4 + a) % 5 < 2 { me } else { other };
            let due = day(i64::from(g * 4 + a) * 2 - 20);
            let new = NewAction {
                goal,
                title: format!("Actie {g}.{a}"),
                owner_org: "Wijkteam Zaanstad".into(),
                owner_user: None,
                due: Some(due),
            };
            let id = device.add_action_for(plan, new, Some(owner)).unwrap();
            first_action.get_or_insert(id);
        }
    }
    for offset in [3, 60] {
        device.edit(plan, |p| p.add_evaluation(&day(offset))).unwrap();
    }
    for _ in 0..5 {
        let note = device.edit(plan, |p| p.add_note(Compartment::Basis, NoteKind::HomeVisit, "H")).unwrap();
        for (k, c) in "uisbezoek: moeder vertelt over de schulden en de school van Sem.".chars().enumerate() {
            device
                .edit(plan, |p| p.edit_note_text(Compartment::Basis, note, k + 1, 0, &c.to_string()))
                .unwrap();
        }
    }
    first_action.unwrap()
}

/// Makes a conflict on `action`'s title in `plan` between the two devices.
fn conflict(a: &mut Device, b: &mut Device, plan: &PlanId, action: EntityId) {
    for (device, title) in [(a, "titel A"), (b, "titel B")] {
        let update = ActionUpdate { title: Some(title.into()), ..Default::default() };
        device.edit(plan, |p| p.update_action(action, update)).unwrap();
    }
}

pub fn measure(reps: usize, plans: usize, table: &mut Table) {
    let net =
        Network::start(&[("Wim", "Wijkteam Zaanstad", "wijkteam"), ("Ans", "Wijkteam Zaanstad", "wijkteam")]);
    let mut wim = net.device("wim", "Wim");
    let mut ans = net.device("ans", "Ans");
    eprintln!("agenda: building {plans} plans");
    let mut made = Vec::new();
    for i in 0..plans {
        let (owner, invite) = if i % 2 == 0 { (&mut wim, "Ans") } else { (&mut ans, "Wim") };
        let plan = busy_plan(owner, invite, i);
        let action = fill(owner, &plan, "Wim", "Ans");
        made.push((plan, action, i % 2 == 0));
    }
    for _ in 0..2 {
        wim.sync().unwrap();
        ans.sync().unwrap();
    }
    for (plan, action, _) in &made {
        conflict(&mut wim, &mut ans, plan, *action);
    }
    for _ in 0..2 {
        wim.sync().unwrap();
        ans.sync().unwrap();
    }
    let dir = net.path("wim");
    drop(wim);
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    let mut listed = 0;
    for rep in 0..reps {
        let mut device = Device::open(&dir, &device_keystore()).unwrap();
        let started = Instant::now();
        let agenda = device.agenda().unwrap();
        cold.push(started.elapsed().as_secs_f64() * 1e3);
        listed = agenda.items.len();
        let (plan, _, _) = made[rep % made.len()];
        device.edit(&plan, |p| p.add_agreement("Nieuwe afspraak.")).unwrap();
        let started = Instant::now();
        device.agenda().unwrap();
        warm.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let target = format!("< {TARGET_MS} ms (issue 11); {listed} items");
    table.section(&format!("b. the agenda across {plans} plans (Wim's device, medians of {reps})"));
    let cold = median(&cold);
    let warm = median(&warm);
    table.row(
        "cold: just opened, every plan loaded",
        format!("{cold:.1} ms"),
        target.clone(),
        ratio(cold, TARGET_MS),
    );
    table.row("after one edit in one plan", format!("{warm:.1} ms"), target, ratio(warm, TARGET_MS));
}
