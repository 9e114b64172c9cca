//! The rules of a plan's membership chain on the server, written once above storage: verify
//! an entry against the stored roster ([`eenplan_protocol::membership::Roster`], the same
//! rules every device runs), work out what it changes (who takes part, the level, which
//! documents must move to a new epoch), and hand the backend an update to write.
//!
//! The server takes none of it on its own word: an entry is stored only if it verifies, and
//! devices verify every entry again. What the server adds is order (the first entry at a
//! position wins) and enforcement: it serves a plan only to the users the chain lists.

use eenplan_protocol::api::code;
use eenplan_protocol::certificate::AdminBody;
use eenplan_protocol::membership::{
    Change, MembershipError, Roster, RosterState, SignedBy, SignedEntry, Step,
};
use eenplan_protocol::policy::Policy;
use eenplan_protocol::{DocumentId, sync};

use crate::error::ApiError;
use crate::routes::AppState;
use crate::storage::{CharteredPlan, DeviceRecord, MembershipUpdate, PlanId, StorageError, UserId};

/// The server checks signers by its own record (a device must be active in the writing
/// transaction), not by a list: nothing signed before a revocation is judged again.
fn never_revoked(_: &eenplan_protocol::certificate::DeviceBody, _: i64) -> bool {
    false
}

fn refused(e: MembershipError) -> ApiError {
    match e {
        MembershipError::NotRegisseur | MembershipError::NotOffered => {
            ApiError::forbidden("not_regisseur", e.to_string())
        }
        MembershipError::OutOfScope(_) => ApiError::forbidden(code::OUT_OF_SCOPE, e.to_string()),
        MembershipError::OutOfOrder { .. } | MembershipError::Fork(_) => {
            ApiError::conflict("membership_conflict", e.to_string())
        }
        _ => ApiError::bad_request("bad_membership", e.to_string()),
    }
}

fn root(state: &AppState) -> Result<[u8; 32], ApiError> {
    Ok(state.storage.network()?.ok_or_else(|| ApiError::Internal("no network".into()))?.root_public)
}

/// The first entry of a plan `device` registers: it must create exactly this plan and be
/// signed by this device.
pub fn charter(
    state: &AppState,
    device: &DeviceRecord,
    plan: PlanId,
    signed: &[u8],
    now: i64,
) -> Result<CharteredPlan, ApiError> {
    let entry = SignedEntry::from_bytes(signed).map_err(refused)?;
    let roster = Roster::start(&entry, &root(state)?, &never_revoked).map_err(refused)?;
    if roster.plan() != plan {
        return Err(refused(MembershipError::OtherPlan));
    }
    let creator = roster.state().participant(roster.state().regisseur).cloned();
    let signer = roster.steps().first().map(|s| s.by.clone());
    match (creator, signer) {
        (Some(creator), Some(SignedBy::Device { device: by, .. })) if by == device.device_id.0 => {
            Ok(CharteredPlan {
                plan,
                creator: device.user,
                created_by: device.device_id,
                creator_role: creator.role,
                charter: signed.to_vec(),
                roster: sync::encode(&roster),
                now,
            })
        }
        _ => Err(ApiError::forbidden(
            "not_regisseur",
            "a plan's charter is signed by the device registering it",
        )),
    }
}

/// The plan's verified roster; `None` for a plan registered without a chain.
pub fn roster(state: &AppState, plan: PlanId) -> Result<Option<Roster>, ApiError> {
    let stored = state.storage.roster(plan).map_err(|e| match e {
        StorageError::NotFound => ApiError::not_found("unknown_plan", "no such plan"),
        e => e.into(),
    })?;
    stored
        .map(|(_, bytes)| {
            sync::decode::<Roster>(&bytes, usize::MAX)
                .map_err(|_| ApiError::Internal("a stored roster does not decode".into()))
        })
        .transpose()
}

/// Verifies `signed` as the next entry of `plan`'s chain, made by `device`'s own key (a
/// device posts only its own entries), and stores it with what it changes. Returns the
/// number of documents waiting for a new epoch.
pub fn append(
    state: &AppState,
    device: &DeviceRecord,
    plan: PlanId,
    signed: &[u8],
    now: i64,
) -> Result<u64, ApiError> {
    let signer = SignedBy::Device { device: device.device_id.0, user: device.user.0 };
    append_signed(state, plan, signed, &signer, Some(device.device_id), now)
}

/// As [`append`], for an entry an administrator signed (a handover or a removal for a
/// regisseur who is gone): the signer must be the administrator who sent it.
pub fn append_by_admin(
    state: &AppState,
    admin: &AdminBody,
    plan: PlanId,
    signed: &[u8],
    now: i64,
) -> Result<u64, ApiError> {
    let signer = SignedBy::Admin { name: admin.name.clone(), organisation: admin.organisation.clone() };
    append_signed(state, plan, signed, &signer, None, now)
}

fn append_signed(
    state: &AppState,
    plan: PlanId,
    signed: &[u8],
    signer: &SignedBy,
    by_device: Option<crate::storage::DeviceId>,
    now: i64,
) -> Result<u64, ApiError> {
    let (update, step) = verified_update(state, plan, signed, signer, by_device, now)?;
    if matches!(step.change, Change::Erase(_)) {
        return Err(ApiError::bad_request(
            "bad_membership",
            "an erasure is posted with its base (POST /v1/plans/{plan}/erasure)",
        ));
    }
    state.storage.append_membership(&update).map_err(conflict)
}

fn conflict(e: StorageError) -> ApiError {
    match e {
        StorageError::Conflict(message) => ApiError::conflict("membership_conflict", message),
        e => e.into(),
    }
}

/// Verifies `signed` as the next entry of `plan`'s chain by `signer`, and works out what it
/// changes: the update for the backend, and the verified step.
pub(crate) fn verified_update(
    state: &AppState,
    plan: PlanId,
    signed: &[u8],
    signer: &SignedBy,
    by_device: Option<crate::storage::DeviceId>,
    now: i64,
) -> Result<(MembershipUpdate, Step), ApiError> {
    let Some(mut roster) = roster(state, plan)? else {
        return Err(ApiError::conflict("invalid_state", "this plan has no membership chain"));
    };
    let entry = SignedEntry::from_bytes(signed).map_err(refused)?;
    let before = roster.state().clone();
    roster.apply(&entry, &root(state)?, &never_revoked).map_err(refused)?;
    let step = roster.steps().last().cloned().ok_or_else(|| ApiError::Internal("an empty chain".into()))?;
    if step.by != *signer {
        return Err(ApiError::forbidden("not_regisseur", "an entry is posted only by whoever signed it"));
    }
    let policy =
        state.storage.policy()?.ok_or_else(|| ApiError::not_found("no_policy", "no sharing policy"))?;
    let update = MembershipUpdate {
        plan,
        seq: step.seq,
        signed: signed.to_vec(),
        roster: sync::encode(&roster),
        level: roster.state().level.clone(),
        add: added(&step.change),
        remove: removed(&step.change).into_iter().map(UserId).collect(),
        regrant: gained_readers(&before, roster.state(), &policy.policy),
        rotate: lost_readers(plan, &before, roster.state(), &policy.policy),
        by_device,
        // Retention counts from the later of the signed time and the server's own clock when
        // the close arrived: a backdated close (a stolen admin key) never ends it early here.
        closed_at: match step.change {
            Change::Close { at_ms } => Some(at_ms.max(now)),
            _ => None,
        },
        erasure: None,
        now,
    };
    Ok((update, step))
}

fn added(change: &Change) -> Vec<(UserId, String)> {
    match change {
        Change::Add(p) => vec![(UserId(p.user_id), p.role.clone())],
        Change::Escalate { add, .. } => add.iter().map(|p| (UserId(p.user_id), p.role.clone())).collect(),
        _ => Vec::new(),
    }
}

fn removed(change: &Change) -> Vec<i64> {
    match change {
        Change::Remove(user) => vec![*user],
        Change::Deescalate { remove, .. } => remove.clone(),
        _ => Vec::new(),
    }
}

/// Whether `role` reads compartment `index` at `level`: the one place the server asks.
pub fn reads(policy: &Policy, role: &str, index: u8, level: &str) -> bool {
    policy.may_read_at(role, index, level)
}

/// Participants before and after who read a compartment after that they did not before.
fn gained_readers(before: &RosterState, after: &RosterState, policy: &Policy) -> Vec<UserId> {
    let mut users: Vec<UserId> = Vec::new();
    for index in 0..4u8 {
        let reads = |role: &str, level: &str| reads(policy, role, index, level);
        let (was, is) = (before.readers(&reads), after.readers(&reads));
        for user in is.difference(&was) {
            if before.participant(*user).is_some() && !users.contains(&UserId(*user)) {
                users.push(UserId(*user));
            }
        }
    }
    users
}

/// The documents of `plan` that someone who read them before cannot read after: each moves
/// to a new epoch.
fn lost_readers(plan: PlanId, before: &RosterState, after: &RosterState, policy: &Policy) -> Vec<DocumentId> {
    (0..4u8)
        .filter(|index| {
            let reads = |role: &str, level: &str| reads(policy, role, *index, level);
            !before.readers(&reads).is_subset(&after.readers(&reads))
        })
        .filter_map(|index| DocumentId::new(plan, index).ok())
        .collect()
}

/// Whether `device` may make the epoch `commitment` names: its plan has a chain, the
/// commitment names a position no later than the chain's and after which no reader was lost
/// (so the new key is made for the readers of now), and the chain shows the device's user
/// reading the compartment.
pub fn may_rotate(
    state: &AppState,
    device: &DeviceRecord,
    commitment: &eenplan_protocol::epoch::Commitment,
) -> Result<(), ApiError> {
    let document =
        commitment.document().map_err(|_| ApiError::malformed("the commitment names no document"))?;
    let Some(roster) = roster(state, document.plan)? else {
        return Err(ApiError::forbidden(
            "not_a_reader",
            "only an administrator rotates a plan without a chain",
        ));
    };
    let policy =
        state.storage.policy()?.ok_or_else(|| ApiError::not_found("no_policy", "no sharing policy"))?;
    let reads = |role: &str, level: &str| reads(&policy.policy, role, document.compartment, level);
    let now = roster.state();
    let reader = now.participant(device.user.0).is_some_and(|p| reads(&p.role, &now.level));
    if commitment.epoch < 2
        || commitment.membership_seq > roster.seq()
        || roster.lost_readers_since(commitment.membership_seq, &reads)
        || !reader
    {
        return Err(ApiError::forbidden("not_a_reader", "this device may not make that epoch"));
    }
    Ok(())
}
