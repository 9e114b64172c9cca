//! `retention run`: erases closed plans whose retention period has ended (DESIGN §8).
//!
//! Nothing the server says about a plan's close is taken on its word: the list of closed
//! plans only says where to look. Each plan's membership chain is fetched and verified from
//! its first entry against this keyring's root; the close and its time come from that chain,
//! the period from the newest root-signed policy (never older than one this keyring saw).
//! The server checks the same again by its own chain and clock before it erases.

use eenplan_protocol::api::{self, ClosedPlans, PlanErased};
use eenplan_protocol::policy::Retention;
use serde::Serialize;

use super::Session;
use super::plan::verified_chain;
use crate::args::{RetentionCommand, RetentionRunArgs};
use crate::client::now_ms;
use crate::error::AdminError;
use crate::output::{Output, table, time};

pub fn run(session: &mut Session, command: RetentionCommand, json: bool) -> Result<Output, AdminError> {
    match command {
        RetentionCommand::Run(args) => {
            session.require_network_wide("plannen na hun bewaartermijn wissen")?;
            run_once(session, &args, json)
        }
    }
}

/// What became of one closed plan.
#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Outcome {
    /// Its retention period has not ended yet.
    Kept,
    Erased {
        bundles: u64,
        envelopes: u64,
        escrow_envelopes: u64,
    },
    AlreadyErased,
    /// The server refused (its own clock or chain says otherwise).
    Refused {
        code: String,
        message: String,
    },
    /// The server listed it, but its verified chain does not end with a close.
    NotClosed,
    /// Its chain does not verify against the root: nothing is erased.
    BadChain {
        why: String,
    },
}

#[derive(Debug, Serialize)]
struct PlanRetention {
    plan: String,
    closed_at_ms: Option<i64>,
    retention_end_ms: Option<i64>,
    #[serde(flatten)]
    outcome: Outcome,
}

#[derive(Debug, Serialize)]
struct Report {
    now_ms: i64,
    policy_version: u32,
    retention_years: u32,
    plans: Vec<PlanRetention>,
}

fn run_once(session: &mut Session, args: &RetentionRunArgs, json: bool) -> Result<Output, AdminError> {
    let now = match args.now {
        Some(day) => day,
        None => now_ms()?,
    };
    let policy = session.policy()?;
    let retention = policy.retention();
    let listed: ClosedPlans = session.client().get(api::PATH_ADMIN_CLOSED_PLANS)?;
    let mut plans = Vec::new();
    for closed in listed.plans {
        plans.push(judge(session, &closed.plan, closed.closed_at_ms, retention, now)?);
    }
    let report =
        Report { now_ms: now, policy_version: policy.version, retention_years: retention.years, plans };
    Output::either(json, || &report, || report_text(&report))
}

/// Verifies one listed plan's chain and erases it if its retention period has ended.
fn judge(
    session: &Session,
    plan_hex: &str,
    listed_closed_at: i64,
    retention: Retention,
    now: i64,
) -> Result<PlanRetention, AdminError> {
    let plan: [u8; 16] = api::unhex(plan_hex)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| AdminError::BadResponse(format!("the server listed {plan_hex:?} as a plan id")))?;
    // A chain that does not verify erases nothing, and holds no other plan back.
    let roster = match verified_chain(session, &plan) {
        Ok(roster) => roster,
        Err(e @ (AdminError::Membership(_) | AdminError::BadResponse(_))) => {
            return Ok(PlanRetention {
                plan: plan_hex.to_owned(),
                closed_at_ms: None,
                retention_end_ms: None,
                outcome: Outcome::BadChain { why: e.to_string() },
            });
        }
        Err(e) => return Err(e),
    };
    let closed_at = roster.and_then(|roster| roster.state().closed_at_ms);
    let Some(closed_at) = closed_at else {
        return Ok(PlanRetention {
            plan: plan_hex.to_owned(),
            closed_at_ms: None,
            retention_end_ms: None,
            outcome: Outcome::NotClosed,
        });
    };
    // The server's date can only make the end later, never earlier: the chain's signed
    // close is the floor.
    let closed_at = closed_at.max(listed_closed_at);
    let end = retention.end_of(closed_at);
    let outcome = if now < end { Outcome::Kept } else { erase(session, &plan)? };
    Ok(PlanRetention {
        plan: plan_hex.to_owned(),
        closed_at_ms: Some(closed_at),
        retention_end_ms: Some(end),
        outcome,
    })
}

fn erase(session: &Session, plan: &[u8; 16]) -> Result<Outcome, AdminError> {
    match session.client().post(&api::admin_erase_path(plan), &serde_json::json!({})) {
        Ok(answer) => {
            let erased: PlanErased = serde_json::from_slice(&answer)
                .map_err(|_| AdminError::BadResponse("the erase answer is not understood".into()))?;
            Ok(if erased.already {
                Outcome::AlreadyErased
            } else {
                Outcome::Erased {
                    bundles: erased.bundles,
                    envelopes: erased.envelopes,
                    escrow_envelopes: erased.escrow_envelopes,
                }
            })
        }
        Err(AdminError::Server { status: 409, code, message }) => Ok(Outcome::Refused { code, message }),
        Err(e) => Err(e),
    }
}

fn report_text(report: &Report) -> String {
    let mut out = format!(
        "Bewaartermijn: {} jaar na het afsluiten (beleid versie {}); peilmoment {}\n",
        report.retention_years,
        report.policy_version,
        time(report.now_ms)
    );
    if report.plans.is_empty() {
        out.push_str("Geen afgesloten plannen.\n");
        return out;
    }
    let rows: Vec<Vec<String>> = report
        .plans
        .iter()
        .map(|p| {
            vec![
                p.plan.clone(),
                p.closed_at_ms.map_or_else(|| "-".into(), time),
                p.retention_end_ms.map_or_else(|| "-".into(), time),
                outcome_text(&p.outcome),
            ]
        })
        .collect();
    out.push_str(&table(&["PLAN", "AFGESLOTEN", "BEWAREN TOT", "UITKOMST"], &rows));
    let erased = report.plans.iter().filter(|p| matches!(p.outcome, Outcome::Erased { .. })).count();
    out.push_str(&format!("{erased} plan(nen) gewist.\n"));
    out
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Kept => "bewaard".into(),
        Outcome::Erased { bundles, envelopes, escrow_envelopes } => format!(
            "gewist ({bundles} bundels, {envelopes} sleutelenveloppen, {escrow_envelopes} escrow-enveloppen)"
        ),
        Outcome::AlreadyErased => "al gewist".into(),
        Outcome::Refused { code, message } => format!("geweigerd door de server ({code}): {message}"),
        Outcome::NotClosed => "overgeslagen: de ondertekende keten toont het plan niet afgesloten".into(),
        Outcome::BadChain { why } => format!("overgeslagen: de keten klopt niet ({why})"),
    }
}
