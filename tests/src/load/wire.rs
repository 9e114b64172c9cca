//! A device's sync over plain HTTP, built from the protocol's own types: what the load
//! generator sends instead of running the device's sync, so that replaying a push costs this
//! process an encode and a socket write, not a device's work. A push's answer is read for
//! its ack and for the snapshots the server asks for, which the replay uploads as a device's
//! next round does ([`upload_snapshots`]).

use eenplan_core::Device;
use eenplan_protocol::api::PATH_SYNC;
use eenplan_protocol::audit::{AuditKey, SignedAuditKey};
use eenplan_protocol::policy::{Policy, SignedPolicy};
use eenplan_protocol::sync::{self, Blob, Fixed, MAX_SYNC_REQUEST, SyncRequest, SyncResponse};

use crate::network::device_session;

/// Why one exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the request did not get through: {0}")]
    Transport(String),
    #[error("the server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the answer is not a sync response")]
    Decode,
    #[error("the pull did not finish within {0} rounds")]
    Endless(usize),
}

/// An HTTP agent that keeps connections alive and hands error answers back as answers.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// A device's session with the server, usable from any thread.
#[derive(Debug, Clone)]
pub struct Session {
    url: String,
    token: String,
}

impl Session {
    /// Signs the server's challenge with `device`'s key, as the device itself does.
    pub fn open(agent: &ureq::Agent, url: &str, device: &Device) -> Session {
        Session { url: url.to_owned(), token: device_session(agent, url, device) }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// One `POST /v1/sync`.
    pub fn sync(&self, agent: &ureq::Agent, request: &SyncRequest) -> Result<SyncResponse, WireError> {
        let mut response = agent
            .post(format!("{}{PATH_SYNC}", self.url))
            .header("content-type", "application/cbor")
            .header("authorization", format!("Bearer {}", self.token))
            .send(sync::encode(request))
            .map_err(|e| WireError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_SYNC_REQUEST as u64)
            .read_to_vec()
            .map_err(|e| WireError::Transport(e.to_string()))?;
        if status != 200 {
            return Err(WireError::Status { status, body: String::from_utf8_lossy(&body).into_owned() });
        }
        sync::decode(&body, MAX_SYNC_REQUEST).map_err(|_| WireError::Decode)
    }
}

/// What a device sends back with each request: its log cursor, its mailbox and membership
/// cursors, and the versions of the policy and audit key it holds (so the server does not
/// send them again with every answer).
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    since: u64,
    envelopes_after: Option<u64>,
    membership_after: Option<u64>,
    policy_version: u32,
    audit_key_version: u32,
}

impl Cursor {
    /// A request that pushes `push` and pulls what is new.
    pub fn request(&self, push: Vec<Blob>) -> SyncRequest {
        SyncRequest {
            since: self.since,
            push,
            envelopes_after: self.envelopes_after,
            membership_after: self.membership_after,
            policy_version: self.policy_version,
            audit_key_version: self.audit_key_version,
            ..SyncRequest::default()
        }
    }

    /// Takes an answer's cursors. The policy and audit key versions are read, not verified:
    /// the load generator judges nothing, it only tells the server what it already has.
    pub fn advance(&mut self, answer: &SyncResponse) {
        self.since = answer.head;
        if answer.envelopes_through != 0 {
            self.envelopes_after = Some(answer.envelopes_through);
        }
        if answer.membership_through != 0 {
            self.membership_after = Some(answer.membership_through);
        }
        if let Some(version) = answer.policy.as_ref().and_then(policy_version) {
            self.policy_version = version;
        }
        if let Some(version) = answer.audit_key.as_ref().and_then(audit_key_version) {
            self.audit_key_version = version;
        }
    }

    /// The log position a complete answer left it at.
    pub fn since(&self) -> u64 {
        self.since
    }
}

fn policy_version(blob: &Blob) -> Option<u32> {
    let signed = SignedPolicy::from_bytes(&blob.0).ok()?;
    sync::decode::<Policy>(&signed.body, MAX_SYNC_REQUEST).ok().map(|p| p.version)
}

fn audit_key_version(blob: &Blob) -> Option<u32> {
    let signed = SignedAuditKey::from_bytes(&blob.0).ok()?;
    sync::decode::<AuditKey>(&signed.body, MAX_SYNC_REQUEST).ok().map(|k| k.version)
}

/// The most rounds one pull may take before it counts as stuck.
const MAX_PULL_ROUNDS: usize = 100_000;

/// Pulls until the answer is complete; the bundles in log order.
pub fn pull_all(agent: &ureq::Agent, session: &Session, cursor: &mut Cursor) -> Result<Vec<Blob>, WireError> {
    let mut bundles = Vec::new();
    for _ in 0..MAX_PULL_ROUNDS {
        let answer = session.sync(agent, &cursor.request(Vec::new()))?;
        cursor.advance(&answer);
        bundles.extend(answer.bundles);
        if answer.complete {
            return Ok(bundles);
        }
    }
    Err(WireError::Endless(MAX_PULL_ROUNDS))
}

/// The server's verdict on one uploaded bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    Accepted,
    Rejected(String),
    /// Neither acknowledged nor refused: the server lost it.
    Missing,
}

impl Ack {
    /// What `answer` says of the upload `id`. Snapshots (`c`) are acknowledged as pushes are:
    /// listed in `accepted` or covered by `all_accepted`, or refused in `rejected`.
    fn of(answer: &SyncResponse, id: [u8; 16]) -> Ack {
        if answer.stored(&[id]).contains(&id) {
            Ack::Accepted
        } else if let Some(r) = answer.rejected.iter().find(|r| r.bundle_id.0 == id) {
            Ack::Rejected(r.reason.clone())
        } else {
            Ack::Missing
        }
    }
}

/// How the server answered one push: its verdict, and what it asks of the device next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub ack: Ack,
    /// Whether the answer reached the log head: only then is `head` a log position, and
    /// only then does the server list documents in `compact`.
    pub complete: bool,
    pub head: u64,
    /// Documents whose logs are long: the server asks for a snapshot of each, covering
    /// `head`, and has recorded the ask (`SyncResponse::compact`).
    pub compact: Vec<Fixed<17>>,
}

impl Pushed {
    /// The documents a device must snapshot, covering `head`, after this answer.
    pub fn snapshot_asks(&self) -> &[Fixed<17>] {
        if self.complete { &self.compact } else { &[] }
    }
}

/// Pushes one sealed bundle (id `id`) in a request of its own and reads the server's verdict
/// and asks.
pub fn push_one(
    agent: &ureq::Agent,
    session: &Session,
    cursor: &mut Cursor,
    bundle: &[u8],
    id: [u8; 16],
) -> Result<Pushed, WireError> {
    let answer = session.sync(agent, &cursor.request(vec![Blob(bundle.to_vec())]))?;
    cursor.advance(&answer);
    Ok(Pushed {
        ack: Ack::of(&answer, id),
        complete: answer.complete,
        head: answer.head,
        compact: answer.compact,
    })
}

/// Uploads sealed snapshots (ids `ids`, in order) in one request that pushes nothing else, as
/// a device's next round does after an answer listed their documents in `compact`; the
/// server's verdict on each.
pub fn upload_snapshots(
    agent: &ureq::Agent,
    session: &Session,
    cursor: &mut Cursor,
    snapshots: Vec<Blob>,
    ids: &[[u8; 16]],
) -> Result<Vec<Ack>, WireError> {
    let request = SyncRequest { snapshots, ..cursor.request(Vec::new()) };
    let answer = session.sync(agent, &request)?;
    cursor.advance(&answer);
    Ok(ids.iter().map(|id| Ack::of(&answer, *id)).collect())
}
