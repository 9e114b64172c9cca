//! What changed since an adopted version: the parts of the plan the family has not agreed
//! to yet ("nog niet vastgesteld"), compared entity by entity.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::EntityId;
use crate::plan::view::PlanView;
use crate::plan::vocab::{self, Phase};

/// One part of the plan that differs from the adopted version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotAdopted {
    /// goal, action, agreement, member, score, evaluation, phase, family.
    pub kind: String,
    /// The entity, where the part is one.
    pub id: Option<EntityId>,
    /// added, changed, removed.
    pub change: String,
    /// What it is, in Dutch ("doel ‘Schulden op orde’").
    pub label: String,
}

fn compare<T: PartialEq>(
    kind: &str,
    adopted: &[T],
    now: &[T],
    id: impl Fn(&T) -> EntityId,
    label: impl Fn(&T) -> String,
    out: &mut Vec<NotAdopted>,
) {
    let before: BTreeMap<EntityId, &T> = adopted.iter().map(|x| (id(x), x)).collect();
    let after: BTreeMap<EntityId, &T> = now.iter().map(|x| (id(x), x)).collect();
    let mut push = |entity: EntityId, change: &str, item: &T| {
        out.push(NotAdopted {
            kind: kind.into(),
            id: Some(entity),
            change: change.into(),
            label: label(item),
        });
    };
    for (entity, item) in &after {
        match before.get(entity) {
            None => push(*entity, "added", item),
            Some(old) if old != item => push(*entity, "changed", item),
            Some(_) => {}
        }
    }
    for (entity, item) in before.iter().filter(|(e, _)| !after.contains_key(e)) {
        push(*entity, "removed", item);
    }
}

/// The parts of `now` that differ from `adopted`.
pub fn not_adopted(adopted: &PlanView, now: &PlanView) -> Vec<NotAdopted> {
    let mut out = Vec::new();
    if adopted.family != now.family {
        out.push(plain("family", "changed", format!("gezinsnaam ‘{}’", now.family)));
    }
    if adopted.phase != now.phase {
        out.push(plain("phase", "changed", format!("fase {}", Phase::label_of(&now.phase))));
    }
    let quoted = |kind: &str, text: &str| format!("{kind} ‘{text}’");
    compare("member", &adopted.members, &now.members, |m| m.id, |m| quoted("gezinslid", &m.name), &mut out);
    compare(
        "goal",
        &adopted.goals,
        &now.goals,
        |g| g.id,
        |g| format!("doel ‘{}’ ({})", g.title, vocab::domain_label(&g.domain)),
        &mut out,
    );
    compare("action", &adopted.actions, &now.actions, |a| a.id, |a| quoted("actie", &a.title), &mut out);
    compare(
        "agreement",
        &adopted.agreements,
        &now.agreements,
        |a| a.id,
        |a| quoted("afspraak", &a.text.chars().take(60).collect::<String>()),
        &mut out,
    );
    compare(
        "evaluation",
        &adopted.evaluations,
        &now.evaluations,
        |e| e.id,
        |e| format!("evaluatie op {}", crate::calendar::dutch_long_date(&e.date)),
        &mut out,
    );
    scores(adopted, now, &mut out);
    out
}

fn plain(kind: &str, change: &str, label: String) -> NotAdopted {
    NotAdopted { kind: kind.into(), id: None, change: change.into(), label }
}

fn scores(adopted: &PlanView, now: &PlanView, out: &mut Vec<NotAdopted>) {
    let key = |s: &crate::plan::view::Score| (s.member, s.domain.clone(), s.date.clone());
    let before: BTreeMap<_, i64> = adopted.scores.iter().map(|s| (key(s), s.score)).collect();
    for score in &now.scores {
        let change = match before.get(&key(score)) {
            None => "added",
            Some(old) if *old != score.score => "changed",
            Some(_) => continue,
        };
        let member = now.members.iter().find(|m| m.id == score.member).map_or("?", |m| m.name.as_str());
        out.push(plain(
            "score",
            change,
            format!("ZRM-score {member}, {} op {}", vocab::domain_label(&score.domain), score.date),
        ));
    }
}
