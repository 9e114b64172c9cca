//! The sync's rounds, run step by step: the device is held only to prepare a round and to
//! apply its answer, never while the network is used.

use eenplan_protocol::api;
use eenplan_protocol::sync::{MIN_PAGE_BYTES, SyncResponse, decode, encode};

use super::access::Access;
use super::authors::Judge;
use super::incoming::Applied;
use super::outgoing::{Outgoing, Uploads};
use super::transport::{Timing, Transport};
use super::{ServerState, SyncError, SyncReport, is_revoked, membership, session, shares, wipe_order};
use crate::error::CoreError;

/// Rounds in a row that move nothing (no cursor, no push, no history) before a sync gives up:
/// a server that keeps asking for more without giving any is broken or hostile.
const MAX_IDLE_ROUNDS: usize = 16;
/// The most rounds one sync makes, progress or not: a server that keeps serving what can
/// never be applied (bundles whose key never comes, fetched again and again) is cut off. What
/// the rounds brought is kept; the next sync goes on from there.
const MAX_ROUNDS: usize = 4096;
/// Passes over one answer: the first finds which certificates and policies it lacks, the
/// second has them (a third only when judging with fresh certificates asked for more).
const MAX_PASSES: usize = 3;

/// What one sync carries from round to round.
#[derive(Debug, Default)]
pub(super) struct Run {
    pub report: SyncReport,
    pub uploads: Uploads,
    pub judge: Judge,
    pub page: PageSize,
    /// The last access-log position this sync's requests carried (0: none yet).
    pub audit_sent: u64,
}

/// The pull page the device asks for, sized to what the link carried so far: about
/// [`PageSize::TARGET_SECS`] of transfer per round, so a round ends well inside its deadline
/// and a cut link costs at most one page.
#[derive(Debug, Clone, Copy)]
pub(super) struct PageSize {
    bytes: u32,
    /// Whether an exchange has shown what the link carries.
    measured: bool,
}

impl Default for PageSize {
    fn default() -> Self {
        PageSize { bytes: PageSize::FIRST, measured: false }
    }
}

impl PageSize {
    const FIRST: u32 = 256 * 1024;
    /// What the first round pushes before the link's rate is known: sixteen seconds at the
    /// slowest link a call is given time for, so an upload never outlasts the server's own
    /// limit on a request (30 s).
    const FIRST_PUSH: u32 = 16 * 1024;
    const MAX: u32 = 4 * 1024 * 1024;
    const TARGET_SECS: u64 = 8;
    /// An exchange smaller than this says more about latency than about bandwidth.
    const INFORMATIVE: u64 = super::transport::INFORMATIVE_BYTES;

    pub fn bytes(&self) -> u32 {
        self.bytes
    }

    /// The most bytes of bundles a round pushes.
    pub fn push_budget(&self) -> u32 {
        if self.measured { self.bytes } else { PageSize::FIRST_PUSH }
    }

    fn observe(&mut self, timing: Timing) {
        let millis = u64::try_from(timing.elapsed.as_millis()).unwrap_or(u64::MAX).max(1);
        if timing.bytes < PageSize::INFORMATIVE {
            return;
        }
        self.measured = true;
        let per_target = timing.bytes.saturating_mul(PageSize::TARGET_SECS * 1000) / millis;
        self.bytes = u32::try_from(per_target).unwrap_or(u32::MAX).clamp(MIN_PAGE_BYTES, PageSize::MAX);
    }
}

/// A whole sync: a session, the rounds, the queued shares, then the lease renewal. A revoked
/// device fetches and obeys its wipe order instead.
pub(super) fn sync(access: &impl Access) -> Result<SyncReport, CoreError> {
    let server = access.with(|device| {
        device.ensure_not_wiped()?;
        Ok(device.server_state()?.ok_or(SyncError::NotEnrolled)?)
    })?;
    let transport = Transport::new(&server.url);
    let attempt = || -> Result<SyncReport, CoreError> {
        let token = session::token(access, &transport)?;
        sync_with(access, &server, &transport, &token)
    };
    let result = match attempt() {
        // The server forgot the session (it restarted with a new secret): open a new one once.
        Err(CoreError::Sync(SyncError::Server { status: 401, .. })) => {
            access.with(|device| {
                device.forget_session();
                Ok(())
            })?;
            attempt()
        }
        other => other,
    };
    let report = match result {
        Err(e) if is_revoked(&e) => return Err(wipe_order::obey(access, &server, &transport)),
        other => other?,
    };
    access.with(|device| device.renew_lease_after_sync())?;
    Ok(report)
}

/// A sync over an open session; [`super::live`] reuses one session for every hint.
pub(super) fn sync_with(
    access: &impl Access,
    server: &ServerState,
    transport: &Transport,
    token: &str,
) -> Result<SyncReport, CoreError> {
    session::pick_up_certificate(access, server, transport, token)?;
    let mut run = Run::default();
    rounds(access, server, transport, token, &mut run)?;
    let mut changed = shares::carry_out(access, server, transport, token, &mut run.report)?;
    // An act that met another entry first is signed again after a round brought that entry.
    for _ in 0..2 {
        let (done, conflicts) = membership::carry_out(access, server, transport, token, &mut run.report)?;
        changed += done;
        if conflicts == 0 {
            break;
        }
        rounds(access, server, transport, token, &mut run)?;
    }
    if changed > 0 {
        // New participants' devices need keys and removals need new epochs: the server asks
        // for them now.
        rounds(access, server, transport, token, &mut run)?;
    }
    run.report.bytes_up = transport.sent();
    run.report.bytes_down = transport.received();
    // What this sync brought may close a plan or take it away; past the grace period the
    // copy goes now (a step of its own: nothing here waits on the network).
    run.report.retired_plans = access.with(|device| device.retire_expired_plans())?;
    Ok(run.report)
}

fn rounds(
    access: &impl Access,
    server: &ServerState,
    transport: &Transport,
    token: &str,
    run: &mut Run,
) -> Result<(), CoreError> {
    let mut idle = 0;
    loop {
        run.report.rounds += 1;
        let outgoing = access.with(|device| device.prepare_round(server, run))?;
        let (body, timing) = transport.post(
            api::PATH_SYNC,
            Some(token),
            "application/cbor",
            encode(&outgoing.request),
            u64::from(run.page.bytes()),
        )?;
        run.page.observe(timing);
        let response: SyncResponse =
            decode(&body, usize::MAX).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let moved = response.head > outgoing.request.since
            || response.envelopes_through != outgoing.request.envelopes_after.unwrap_or(0)
            || response.membership_through != outgoing.request.membership_after.unwrap_or(0)
            || !response.stored(&outgoing.pushed).is_empty()
            || response.history.iter().any(|page| !page.bundles.is_empty());
        if !apply(access, server, transport, token, run, &outgoing, &response)? {
            return Ok(());
        }
        idle = if moved { 0 } else { idle + 1 };
        if idle >= MAX_IDLE_ROUNDS || run.report.rounds >= MAX_ROUNDS {
            return Err(SyncError::TooManyRounds(run.report.rounds).into());
        }
    }
}

/// Applies one answer; between passes, fetches (without the device) what judging it lacked.
/// Returns whether another round is due.
fn apply(
    access: &impl Access,
    server: &ServerState,
    transport: &Transport,
    token: &str,
    run: &mut Run,
    outgoing: &Outgoing,
    response: &SyncResponse,
) -> Result<bool, CoreError> {
    for pass in 1..=MAX_PASSES {
        run.judge.clear_wants();
        let last = pass == MAX_PASSES;
        match access.with(|device| device.apply_response(server, run, outgoing, response, last))? {
            Applied::Done { more } => return Ok(more),
            Applied::NeedsFetch => run.judge.fetch_wanted(transport, token)?,
        }
    }
    Err(SyncError::Protocol("judging the answer kept asking for certificates".into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_page_follows_what_the_link_carries_within_bounds() {
        let mut page = PageSize::default();
        // 32 KB/s (256 kbit/s): about eight seconds' worth.
        page.observe(Timing { bytes: 320_000, elapsed: Duration::from_secs(10) });
        assert_eq!(page.bytes(), 256_000);
        // A tiny exchange says nothing about the link.
        page.observe(Timing { bytes: 600, elapsed: Duration::from_millis(400) });
        assert_eq!(page.bytes(), 256_000);
        page.observe(Timing { bytes: 100_000_000, elapsed: Duration::from_millis(100) });
        assert_eq!(page.bytes(), PageSize::MAX);
        page.observe(Timing { bytes: 20_000, elapsed: Duration::from_secs(60) });
        assert_eq!(page.bytes(), MIN_PAGE_BYTES);
    }
}
