//! Counters and gauges for `GET /metrics`, in the Prometheus text format.
//!
//! Plain atomics, no registry: the set is fixed and small, and a scrape must never take a lock
//! a request holds. Counters only grow; gauges go up and down. A scrape looks like
//!
//! ```text
//! # HELP eenplan_requests_total HTTP requests by route class.
//! # TYPE eenplan_requests_total counter
//! eenplan_requests_total{class="sync"} 1042
//! # HELP eenplan_live_connections Open live (WebSocket) connections.
//! # TYPE eenplan_live_connections gauge
//! eenplan_live_connections 17
//! ```
//!
//! Nothing here carries an id: metrics are scraped by systems outside the care network.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::storage::RememberedReads;

/// What a request is, for counting; derived from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    Health,
    Metrics,
    Admin,
    Enrol,
    Auth,
    Device,
    Sync,
    Live,
    Other,
}

impl RouteClass {
    const ALL: [RouteClass; 9] = [
        RouteClass::Health,
        RouteClass::Metrics,
        RouteClass::Admin,
        RouteClass::Enrol,
        RouteClass::Auth,
        RouteClass::Device,
        RouteClass::Sync,
        RouteClass::Live,
        RouteClass::Other,
    ];

    pub fn of_path(path: &str) -> RouteClass {
        match path {
            "/healthz" => RouteClass::Health,
            "/metrics" => RouteClass::Metrics,
            "/v1/enrol" => RouteClass::Enrol,
            "/v1/sync" => RouteClass::Sync,
            "/v1/live" => RouteClass::Live,
            p if p.starts_with("/v1/admin/") => RouteClass::Admin,
            p if p.starts_with("/v1/auth/") => RouteClass::Auth,
            p if p.starts_with("/v1/") => RouteClass::Device,
            _ => RouteClass::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            RouteClass::Health => "health",
            RouteClass::Metrics => "metrics",
            RouteClass::Admin => "admin",
            RouteClass::Enrol => "enrol",
            RouteClass::Auth => "auth",
            RouteClass::Device => "device",
            RouteClass::Sync => "sync",
            RouteClass::Live => "live",
            RouteClass::Other => "other",
        }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; RouteClass::ALL.len()],
    /// Responses by status class: 2xx, 3xx, 4xx, 5xx (index status / 100 - 2).
    responses: [AtomicU64; 4],
    pub pushes_appended: AtomicU64,
    pub pushes_duplicate: AtomicU64,
    pub pushes_rejected: AtomicU64,
    pub bundles_pulled: AtomicU64,
    pub sync_bytes_in: AtomicU64,
    pub sync_bytes_out: AtomicU64,
    pub envelopes_stored: AtomicU64,
    pub envelopes_dropped: AtomicU64,
    pub group_commit_batches: AtomicU64,
    pub group_commit_bundles: AtomicU64,
    pub group_commit_failures: AtomicU64,
    /// Passes of the `answer-facts` thread over a group of committed requests' answers.
    pub group_answer_fact_reads: AtomicU64,
    /// Answers whose first statement a group read.
    pub group_answer_facts: AtomicU64,
    /// Group reads of answers' first statements that failed (their answers read their own).
    pub group_answer_fact_failures: AtomicU64,
    pub live_connections: AtomicI64,
    pub live_hints_sent: AtomicU64,
    pub live_sockets_evicted: AtomicU64,
    pub auth_failures: AtomicU64,
    pub quota_refusals: AtomicU64,
    pub oversized_requests: AtomicU64,
    pub envelopes_withdrawn: AtomicU64,
    pub wipe_reports_refused: AtomicU64,
    pub wipe_reports_cleared: AtomicU64,
}

impl Metrics {
    pub fn request(&self, class: RouteClass) {
        let index = RouteClass::ALL.iter().position(|c| *c == class).unwrap_or(RouteClass::ALL.len() - 1);
        if let Some(counter) = self.requests.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn response(&self, status: u16) {
        let index = usize::from(status / 100).saturating_sub(2);
        if let Some(counter) = self.responses.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The text of a scrape; `remembered` is the storage's count of remembered reads.
    pub fn render(&self, remembered: RememberedReads) -> String {
        let mut out = String::with_capacity(2048);
        self.render_http(&mut out);
        self.render_counters(&mut out);
        render_storage_reads(&mut out, &remembered);
        header(&mut out, "eenplan_live_connections", "Open live (WebSocket) connections.", "gauge");
        let _ = writeln!(out, "eenplan_live_connections {}", self.live_connections.load(Ordering::Relaxed));
        out
    }

    /// Requests by route class and responses by status class.
    fn render_http(&self, out: &mut String) {
        header(out, "eenplan_requests_total", "HTTP requests by route class.", "counter");
        for (class, counter) in RouteClass::ALL.iter().zip(&self.requests) {
            let _ = writeln!(
                out,
                "eenplan_requests_total{{class=\"{}\"}} {}",
                class.label(),
                counter.load(Ordering::Relaxed)
            );
        }
        header(out, "eenplan_responses_total", "HTTP responses by status class.", "counter");
        for (label, counter) in ["2xx", "3xx", "4xx", "5xx"].iter().zip(&self.responses) {
            let _ = writeln!(
                out,
                "eenplan_responses_total{{status=\"{label}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
    }

    /// This process's own counters, one series each.
    fn render_counters(&self, out: &mut String) {
        let counters: [(&str, &str, &AtomicU64); 22] = [
            ("eenplan_pushes_appended_total", "Pushed bundles appended to the log.", &self.pushes_appended),
            (
                "eenplan_pushes_duplicate_total",
                "Pushed bundles already in the log (retried pushes).",
                &self.pushes_duplicate,
            ),
            (
                "eenplan_pushes_rejected_total",
                "Pushed bundles refused (forged, wrong author, no access, malformed).",
                &self.pushes_rejected,
            ),
            ("eenplan_bundles_pulled_total", "Bundles sent to devices by pulls.", &self.bundles_pulled),
            ("eenplan_sync_bytes_in_total", "Request body bytes of /v1/sync.", &self.sync_bytes_in),
            ("eenplan_sync_bytes_out_total", "Response body bytes of /v1/sync.", &self.sync_bytes_out),
            ("eenplan_envelopes_stored_total", "Key envelopes stored.", &self.envelopes_stored),
            (
                "eenplan_envelopes_dropped_total",
                "Key envelopes refused (recipient or sender not allowed).",
                &self.envelopes_dropped,
            ),
            (
                "eenplan_group_commit_batches_total",
                "Storage transactions of the group-commit writer.",
                &self.group_commit_batches,
            ),
            (
                "eenplan_group_commit_bundles_total",
                "Bundles written by the group-commit writer (sum of batch sizes).",
                &self.group_commit_bundles,
            ),
            (
                "eenplan_group_commit_failures_total",
                "Group-commit transactions that failed.",
                &self.group_commit_failures,
            ),
            (
                "eenplan_group_commit_answer_fact_reads_total",
                "Passes of the answer-facts thread, each reading its group's first statements (a statement per 64 answers); failed ones too.",
                &self.group_answer_fact_reads,
            ),
            (
                "eenplan_group_commit_answer_facts_total",
                "Sync answers whose first statement the group commit read with its group's.",
                &self.group_answer_facts,
            ),
            (
                "eenplan_group_commit_answer_fact_failures_total",
                "Group reads of answers' first statements that failed; those answers read their own.",
                &self.group_answer_fact_failures,
            ),
            ("eenplan_live_hints_total", "Hints sent on live connections.", &self.live_hints_sent),
            (
                "eenplan_auth_failures_total",
                "Refused credentials: bad signatures, expired or replayed requests, bad tokens.",
                &self.auth_failures,
            ),
            (
                "eenplan_live_sockets_evicted_total",
                "Live sockets closed because their device opened more than it may keep.",
                &self.live_sockets_evicted,
            ),
            (
                "eenplan_quota_refusals_total",
                "Sync requests refused because the device used up its push quota.",
                &self.quota_refusals,
            ),
            (
                "eenplan_oversized_requests_total",
                "Sync requests refused for carrying more items in a list than allowed.",
                &self.oversized_requests,
            ),
            (
                "eenplan_envelopes_withdrawn_total",
                "Key envelopes deleted because their recipient could not use them.",
                &self.envelopes_withdrawn,
            ),
            (
                "eenplan_wipe_reports_refused_total",
                "Wipe reports refused: the device was evidently alive, or the report was stale.",
                &self.wipe_reports_refused,
            ),
            (
                "eenplan_wipe_reports_cleared_total",
                "Wipe reports forgotten because the device opened a session afterwards.",
                &self.wipe_reports_cleared,
            ),
        ];
        for (name, help, counter) in counters {
            plain_counter(out, name, help, counter.load(Ordering::Relaxed));
        }
    }
}

/// What the storage counted of its reads: the remembered ones, the reads asked for ahead,
/// the answers tried as one statement, and the sessions read in groups.
fn render_storage_reads(out: &mut String, remembered: &RememberedReads) {
    served_or_read(
        out,
        ("eenplan_remembered_reads_total", "cache"),
        "Reads this process served from what it remembers (outcome served) or made again in the database (outcome read): users' accesses, devices' missing-key lists and held keys.",
        [
            ("access", remembered.accesses_served, remembered.accesses_read),
            ("missing_keys", remembered.missing_keys_served, remembered.missing_keys_read),
            ("held_keys", remembered.held_keys_served, remembered.held_keys_read),
        ],
    );
    served_or_read(
        out,
        ("eenplan_answer_reads_ahead_total", "read"),
        "Reads a sync answer asked for ahead with its facts and then took (outcome served), or made again itself (outcome read): the device's mailbox, the documents with news, the snapshot candidates' tails.",
        [
            ("mailbox", remembered.mailbox_ahead_served, remembered.mailbox_ahead_read),
            ("news", remembered.news_ahead_served, remembered.news_ahead_read),
            ("tails", remembered.tails_ahead_served, remembered.tails_ahead_read),
        ],
    );
    counter_series(
        out,
        "eenplan_answer_one_statement_total",
        "Sync answers tried as one statement on PostgreSQL: it sufficed (outcome one_statement), or the answer asked for a second statement and was read again in a transaction (outcome again).",
        [
            ("one_statement", remembered.one_statement_answers),
            ("again", remembered.one_statement_answers_again),
        ]
        .map(|(outcome, count)| (format!("outcome=\"{outcome}\""), count)),
    );
    for (name, help, count) in [
        (
            "eenplan_session_group_reads_total",
            "Statements that read the sessions of two or more syncs that arrived together (PostgreSQL), failed ones too.",
            remembered.session_group_reads,
        ),
        (
            "eenplan_sessions_read_in_groups_total",
            "Sync sessions read in a statement with other syncs' sessions (statements that succeeded).",
            remembered.sessions_read_in_groups,
        ),
        (
            "eenplan_session_group_read_failures_total",
            "Group reads of sync sessions that failed; those syncs read their own.",
            remembered.session_group_read_failures,
        ),
    ] {
        plain_counter(out, name, help, count);
    }
}

/// A counter `name` with one series and no labels.
fn plain_counter(out: &mut String, name: &str, help: &str, count: u64) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{name} {count}");
}

/// A counter `name` with one series per kind (label `label`) and outcome: `served` and `read`.
fn served_or_read(out: &mut String, (name, label): (&str, &str), help: &str, kinds: [(&str, u64, u64); 3]) {
    let series = kinds.into_iter().flat_map(|(kind, served, read)| {
        [("served", served), ("read", read)]
            .map(|(outcome, count)| (format!("{label}=\"{kind}\",outcome=\"{outcome}\""), count))
    });
    counter_series(out, name, help, series);
}

/// A counter `name` with one series per label set (`labels` as written between the braces).
fn counter_series(out: &mut String, name: &str, help: &str, series: impl IntoIterator<Item = (String, u64)>) {
    header(out, name, help, "counter");
    for (labels, count) in series {
        let _ = writeln!(out, "{name}{{{labels}}} {count}");
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Keeps the live-connection gauge right however a connection ends (error, close, panic, or
/// an upgrade that never completes).
#[derive(Debug)]
pub struct LiveGuard(Arc<Metrics>);

impl LiveGuard {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        metrics.live_connections.fetch_add(1, Ordering::Relaxed);
        LiveGuard(metrics)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_into_their_classes() {
        assert_eq!(RouteClass::of_path("/v1/admin/orgs"), RouteClass::Admin);
        assert_eq!(RouteClass::of_path("/v1/auth/session"), RouteClass::Auth);
        assert_eq!(RouteClass::of_path("/v1/me"), RouteClass::Device);
        assert_eq!(RouteClass::of_path("/v1/sync"), RouteClass::Sync);
        assert_eq!(RouteClass::of_path("/nope"), RouteClass::Other);
    }

    #[test]
    fn a_render_lists_every_counter_with_its_type() {
        let metrics = Arc::new(Metrics::default());
        metrics.request(RouteClass::Sync);
        metrics.response(404);
        Metrics::add(&metrics.pushes_appended, 3);
        {
            let _live = LiveGuard::new(metrics.clone());
            assert!(metrics.render(RememberedReads::default()).contains("eenplan_live_connections 1\n"));
        }
        let text = metrics.render(RememberedReads::default());
        assert!(text.contains("eenplan_requests_total{class=\"sync\"} 1\n"), "{text}");
        assert!(text.contains("eenplan_responses_total{status=\"4xx\"} 1\n"), "{text}");
        assert!(text.contains("eenplan_pushes_appended_total 3\n"), "{text}");
        assert!(text.contains("# TYPE eenplan_live_connections gauge\n"), "{text}");
        assert!(text.contains("eenplan_live_connections 0\n"), "{text}");
        let remembered = RememberedReads {
            accesses_served: 7,
            accesses_read: 2,
            missing_keys_served: 5,
            missing_keys_read: 1,
            held_keys_served: 4,
            held_keys_read: 3,
            mailbox_ahead_served: 11,
            mailbox_ahead_read: 12,
            news_ahead_served: 13,
            news_ahead_read: 14,
            tails_ahead_served: 15,
            tails_ahead_read: 16,
            one_statement_answers: 17,
            one_statement_answers_again: 18,
            session_group_reads: 19,
            sessions_read_in_groups: 20,
            session_group_read_failures: 21,
        };
        let text = metrics.render(remembered);
        for line in [
            "# TYPE eenplan_remembered_reads_total counter\n",
            "eenplan_remembered_reads_total{cache=\"access\",outcome=\"served\"} 7\n",
            "eenplan_remembered_reads_total{cache=\"access\",outcome=\"read\"} 2\n",
            "eenplan_remembered_reads_total{cache=\"missing_keys\",outcome=\"served\"} 5\n",
            "eenplan_remembered_reads_total{cache=\"missing_keys\",outcome=\"read\"} 1\n",
            "eenplan_remembered_reads_total{cache=\"held_keys\",outcome=\"served\"} 4\n",
            "eenplan_remembered_reads_total{cache=\"held_keys\",outcome=\"read\"} 3\n",
            "# TYPE eenplan_answer_reads_ahead_total counter\n",
            "eenplan_answer_reads_ahead_total{read=\"mailbox\",outcome=\"served\"} 11\n",
            "eenplan_answer_reads_ahead_total{read=\"mailbox\",outcome=\"read\"} 12\n",
            "eenplan_answer_reads_ahead_total{read=\"news\",outcome=\"served\"} 13\n",
            "eenplan_answer_reads_ahead_total{read=\"news\",outcome=\"read\"} 14\n",
            "eenplan_answer_reads_ahead_total{read=\"tails\",outcome=\"served\"} 15\n",
            "eenplan_answer_reads_ahead_total{read=\"tails\",outcome=\"read\"} 16\n",
            "# TYPE eenplan_session_group_reads_total counter\n",
            "eenplan_session_group_reads_total 19\n",
            "eenplan_sessions_read_in_groups_total 20\n",
            "eenplan_session_group_read_failures_total 21\n",
            "# TYPE eenplan_answer_one_statement_total counter\n",
            "eenplan_answer_one_statement_total{outcome=\"one_statement\"} 17\n",
            "eenplan_answer_one_statement_total{outcome=\"again\"} 18\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from {text}");
        }
    }
}
