//! Numbered schema migrations. `PRAGMA user_version` holds the number of the last one applied;
//! each runs once, in order, inside the opening transaction.
//!
//! The DDL is SQLite's own (rowid tables, `WITHOUT ROWID`); the statements in `rows.rs` are
//! kept to what PostgreSQL also accepts, so a PostgreSQL backend needs its own DDL only.

use rusqlite::Transaction;

use crate::storage::{Result, StorageError};

/// Counts the tails of the documents `$documents` selects (columns `plan_id`, `compartment`),
/// which have no row, from the log into `document_tails`: the newest snapshot as
/// `latest_snapshot` picks it (`covers_seq` first, then position; 0 and no size without
/// one), and the change bundles after what it covers. A plain insert into rows made free
/// first, not `INSERT OR REPLACE`: inside a trigger, the conflict clause of the statement
/// that fired it (an `INSERT OR IGNORE INTO bundles`) would take the place of this one's.
/// Part of migration 20: its text must never change.
macro_rules! count_tails_of {
    ($documents:literal) => {
        concat!(
            "INSERT INTO document_tails (plan_id, compartment, covers, snapshot_size, changes, change_bytes)
             SELECT d.plan_id, d.compartment, d.covers, d.size,
                    (SELECT COUNT(*) FROM bundles b WHERE b.plan_id = d.plan_id AND b.compartment = d.compartment
                                                    AND b.kind = 0 AND b.seq > d.covers),
                    (SELECT COALESCE(SUM(b.size), 0) FROM bundles b WHERE b.plan_id = d.plan_id
                                                    AND b.compartment = d.compartment AND b.kind = 0 AND b.seq > d.covers)
             FROM (SELECT k.plan_id, k.compartment,
                          COALESCE((SELECT s.covers_seq FROM bundles s
                                    WHERE s.plan_id = k.plan_id AND s.compartment = k.compartment AND s.kind = 1
                                    ORDER BY s.covers_seq DESC, s.seq DESC LIMIT 1), 0) AS covers,
                          (SELECT s.size FROM bundles s
                           WHERE s.plan_id = k.plan_id AND s.compartment = k.compartment AND s.kind = 1
                           ORDER BY s.covers_seq DESC, s.seq DESC LIMIT 1) AS size
                   FROM (",
            $documents,
            ") k) d;"
        )
    };
}

/// Removes the tail of the document of the bundle `OLD` once the document has no bundle left:
/// an erased plan leaves no row behind. Part of migration 20: its text must never change.
macro_rules! forget_tail_if_empty {
    () => {
        "DELETE FROM document_tails WHERE plan_id = OLD.plan_id AND compartment = OLD.compartment
             AND NOT EXISTS (SELECT 1 FROM bundles b WHERE b.plan_id = OLD.plan_id AND b.compartment = OLD.compartment);"
    };
}

const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "CREATE TABLE meta (
         name  TEXT PRIMARY KEY,
         value BLOB NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE network (
         id               INTEGER PRIMARY KEY CHECK (id = 1),
         root_public      BLOB NOT NULL,
         escrow_public    BLOB NOT NULL,
         escrow_signature BLOB NOT NULL
     );
     CREATE TABLE admins (
         admin_public BLOB PRIMARY KEY,
         certificate  BLOB NOT NULL,
         name         TEXT NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE orgs (
         org_id      INTEGER PRIMARY KEY,
         name        TEXT NOT NULL UNIQUE,
         lease_hours BIGINT NOT NULL
     );
     CREATE TABLE users (
         user_id INTEGER PRIMARY KEY,
         org_id  BIGINT NOT NULL REFERENCES orgs (org_id),
         name    TEXT NOT NULL,
         role    TEXT NOT NULL,
         UNIQUE (org_id, name)
     );
     CREATE INDEX users_by_name ON users (name);
     CREATE TABLE enrolments (
         code_hash  BLOB PRIMARY KEY,
         user_id    BIGINT NOT NULL REFERENCES users (user_id),
         expires_at BIGINT NOT NULL,
         used_at    BIGINT,
         used_by    BLOB
     ) WITHOUT ROWID;
     CREATE TABLE devices (
         device_id        BLOB PRIMARY KEY,
         user_id          BIGINT NOT NULL REFERENCES users (user_id),
         signing_public   BLOB NOT NULL,
         agreement_public BLOB NOT NULL,
         certificate      BLOB,
         state            TEXT NOT NULL CHECK (state IN ('pending', 'active', 'revoked')),
         created_at       BIGINT NOT NULL,
         revoked_at       BIGINT
     ) WITHOUT ROWID;
     CREATE INDEX devices_by_user ON devices (user_id);
     CREATE TABLE plans (
         plan_id      BLOB PRIMARY KEY,
         creator_user BIGINT NOT NULL REFERENCES users (user_id),
         created_by   BLOB NOT NULL REFERENCES devices (device_id),
         created_at   BIGINT NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE participants (
         plan_id        BLOB NOT NULL REFERENCES plans (plan_id),
         user_id        BIGINT NOT NULL REFERENCES users (user_id),
         plan_role      TEXT NOT NULL,
         granted_at_seq BIGINT NOT NULL,
         PRIMARY KEY (plan_id, user_id)
     ) WITHOUT ROWID;
     CREATE INDEX participants_by_user ON participants (user_id, plan_id);
     -- One row that every append and grant updates: it hands out positions in commit order.
     CREATE TABLE log_head (
         id   INTEGER PRIMARY KEY CHECK (id = 1),
         head BIGINT NOT NULL
     );
     INSERT INTO log_head (id, head) VALUES (1, 0);
     -- seq is the rowid: the log is stored in its own order, and fetching a row by seq is
     -- one b-tree descent. Documents need not be registered: the HTTP layer owns the ACL.
     CREATE TABLE bundles (
         seq         INTEGER PRIMARY KEY,
         plan_id     BLOB NOT NULL,
         compartment SMALLINT NOT NULL,
         bundle_id   BLOB NOT NULL UNIQUE,
         author      BLOB NOT NULL,
         epoch       BIGINT NOT NULL,
         kind        SMALLINT NOT NULL CHECK (kind IN (0, 1)),
         covers_seq  BIGINT,
         size        BIGINT NOT NULL,
         bytes       BLOB NOT NULL,
         received_at BIGINT NOT NULL
     );
     CREATE INDEX bundles_by_document ON bundles (plan_id, compartment, seq);
     CREATE INDEX snapshots_by_document ON bundles (plan_id, compartment, covers_seq, seq)
         WHERE kind = 1;
     CREATE TABLE envelopes (
         recipient   BLOB NOT NULL REFERENCES devices (device_id),
         plan_id     BLOB NOT NULL,
         compartment SMALLINT NOT NULL,
         epoch       BIGINT NOT NULL,
         bytes       BLOB NOT NULL,
         PRIMARY KEY (recipient, plan_id, compartment, epoch)
     ) WITHOUT ROWID;",
    // 2: envelopes take a log position, so a sync delivers only the ones after its cursor;
    //    envelopes sealed to the network's escrow key live apart (no device receives them).
    "ALTER TABLE envelopes ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
     CREATE INDEX envelopes_by_recipient ON envelopes (recipient, position);
     CREATE TABLE escrow_envelopes (
         plan_id     BLOB NOT NULL,
         compartment SMALLINT NOT NULL,
         epoch       BIGINT NOT NULL,
         bytes       BLOB NOT NULL,
         PRIMARY KEY (plan_id, compartment, epoch)
     ) WITHOUT ROWID;",
    // 3: enrolment codes are stored by their HMAC-derived id, not a hash of the code (see
    //    `eenplan_protocol::api`; codes issued before can no longer be claimed), and a device
    //    keeps the MAC over its keys that the administrator checks before approving it.
    "ALTER TABLE enrolments RENAME COLUMN code_hash TO code_id;
     ALTER TABLE devices ADD COLUMN key_mac BLOB NOT NULL DEFAULT X'';",
    // 4: the sharing policy, key epochs and their rotation, revocation and wipe.
    //    `policy` keeps the root-signed policy that devices receive; `policy_access` is its
    //    table as rows, one per (role, compartment) the role may read, so that one join of
    //    participants, users and policy_access says which documents a user may read. A
    //    database from before policies has none, and serves nothing until one is uploaded.
    "CREATE TABLE policy (
         id           INTEGER PRIMARY KEY CHECK (id = 1),
         version      BIGINT NOT NULL,
         signed       BLOB NOT NULL,
         installed_at BIGINT NOT NULL
     );
     CREATE TABLE policy_access (
         role        TEXT NOT NULL,
         compartment SMALLINT NOT NULL,
         may_write   SMALLINT NOT NULL CHECK (may_write IN (0, 1)),
         PRIMARY KEY (role, compartment)
     ) WITHOUT ROWID;
     CREATE INDEX users_by_role ON users (role, user_id);
     -- One signed commitment per (document, epoch): the first one stored wins. The current
     -- epoch of a document is its highest epoch here.
     CREATE TABLE commitments (
         plan_id       BLOB NOT NULL,
         compartment   SMALLINT NOT NULL,
         epoch         BIGINT NOT NULL,
         minter_device BLOB,
         signed        BLOB NOT NULL,
         stored_at     BIGINT NOT NULL,
         PRIMARY KEY (plan_id, compartment, epoch)
     ) WITHOUT ROWID;
     CREATE INDEX commitments_by_minter ON commitments (minter_device) WHERE minter_device IS NOT NULL;
     -- Documents that must move to a new epoch, with the epoch they had when the reason
     -- arose: a new epoch above it settles the task.
     CREATE TABLE rotations (
         plan_id      BLOB NOT NULL,
         compartment  SMALLINT NOT NULL,
         queued_epoch BIGINT NOT NULL,
         queued_at    BIGINT NOT NULL,
         PRIMARY KEY (plan_id, compartment, queued_epoch)
     ) WITHOUT ROWID;
     CREATE INDEX rotations_by_age ON rotations (queued_at, plan_id, compartment);
     CREATE TABLE wipe_orders (
         device_id BLOB PRIMARY KEY REFERENCES devices (device_id),
         signed    BLOB NOT NULL,
         stored_at BIGINT NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE wipe_reports (
         device_id BLOB PRIMARY KEY REFERENCES devices (device_id),
         signed    BLOB NOT NULL,
         wiped_at  BIGINT NOT NULL
     ) WITHOUT ROWID;
     ALTER TABLE devices ADD COLUMN revocation_reason TEXT;
     CREATE INDEX envelopes_by_document ON envelopes (plan_id, compartment, epoch);",
    // 5: role changes. A device's replaced certificates are kept (a write is judged by the
    //    certificate in force in the epoch it was written in), and so is every policy
    //    version; `certified_at` is when the device's current certificate starts, and
    //    sessions opened before it are refused, so a re-certified device fetches it at once.
    "CREATE TABLE device_certificates (
         device_id   BLOB NOT NULL REFERENCES devices (device_id),
         valid_from  BIGINT NOT NULL,
         certificate BLOB NOT NULL,
         PRIMARY KEY (device_id, valid_from)
     ) WITHOUT ROWID;
     CREATE TABLE policy_history (
         version BIGINT PRIMARY KEY,
         signed  BLOB NOT NULL
     ) WITHOUT ROWID;
     INSERT INTO policy_history (version, signed) SELECT version, signed FROM policy;
     ALTER TABLE devices ADD COLUMN certified_at BIGINT NOT NULL DEFAULT 0;",
    // 6: the administrators' signed revocation lists, every version (devices fetch any of
    //    them by number), and the devices they name with the first version naming each, so
    //    that a re-keying result need not seal to a device an administrator listed.
    "CREATE TABLE revocation_lists (
         version   BIGINT PRIMARY KEY,
         signed    BLOB NOT NULL,
         stored_at BIGINT NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE revocation_entries (
         device_id BLOB PRIMARY KEY,
         version   BIGINT NOT NULL
     ) WITHOUT ROWID;",
    // 7: snapshots only on request, witnesses, and pages that stop inside a history block.
    //    Snapshots of the retired format (wire kind byte 1: no `covers` in the signed header)
    //    are deleted; nobody can check them, and the log still holds every change they
    //    covered, so pulls send those instead until a device is asked for a new snapshot.
    //    `snapshot_requests` is what the server asked which device for (consumed by the
    //    upload); `pull_resumes` is where a page stopped inside a history block (the token
    //    is the device's cursor); `bundles_by_author` finds each author's newest change up to
    //    a position with one seek.
    "DELETE FROM bundles WHERE kind = 1 AND substr(bytes, 2, 1) = X'01';
     CREATE TABLE snapshot_requests (
         device_id    BLOB NOT NULL,
         plan_id      BLOB NOT NULL,
         compartment  SMALLINT NOT NULL,
         covers_seq   BIGINT NOT NULL,
         requested_at BIGINT NOT NULL,
         PRIMARY KEY (device_id, plan_id, compartment)
     ) WITHOUT ROWID;
     CREATE INDEX snapshot_requests_by_document ON snapshot_requests (plan_id, compartment, requested_at);
     CREATE INDEX snapshot_requests_by_age ON snapshot_requests (requested_at);
     CREATE TABLE pull_resumes (
         token       INTEGER PRIMARY KEY AUTOINCREMENT,
         device_id   BLOB NOT NULL,
         block_seq   BIGINT NOT NULL,
         plan_id     BLOB NOT NULL,
         compartment SMALLINT NOT NULL,
         after_seq   BIGINT NOT NULL,
         seen_head   BIGINT NOT NULL
     );
     CREATE INDEX pull_resumes_by_device ON pull_resumes (device_id);
     CREATE INDEX bundles_by_author ON bundles (plan_id, compartment, author, seq) WHERE kind = 0;",
    // 8: envelopes are first-writer-wins and remember their sealer (from the signed trailer:
    //    envelope || sealer (16) || signature (64)); a recipient's refusals of a sealer's
    //    envelope for a (document, epoch) are kept; a device's last session and the hash of
    //    its newest wipe nonce decide whether a wipe report for it can be true.
    "ALTER TABLE envelopes ADD COLUMN sealer BLOB;
     UPDATE envelopes SET sealer = substr(bytes, length(bytes) - 79, 16) WHERE length(bytes) >= 82;
     CREATE TABLE refused_sealers (
         recipient   BLOB NOT NULL REFERENCES devices (device_id),
         plan_id     BLOB NOT NULL,
         compartment SMALLINT NOT NULL,
         epoch       BIGINT NOT NULL,
         sealer      BLOB NOT NULL,
         PRIMARY KEY (recipient, plan_id, compartment, epoch, sealer)
     ) WITHOUT ROWID;
     ALTER TABLE devices ADD COLUMN last_session_at BIGINT;
     ALTER TABLE devices ADD COLUMN wipe_nonce_hash BLOB;",
    // 9: signed membership chains. A plan registered with one keeps its verified roster
    //    (CBOR) and escalation level beside it; each entry takes a log position, so a device
    //    receives the entries after its membership cursor (and a newly granted plan's whole
    //    chain). Plans from before chains have none (roster NULL).
    "CREATE TABLE membership (
         plan_id BLOB NOT NULL REFERENCES plans (plan_id),
         seq     BIGINT NOT NULL,
         signed  BLOB NOT NULL,
         log_seq BIGINT NOT NULL,
         PRIMARY KEY (plan_id, seq)
     ) WITHOUT ROWID;
     CREATE INDEX membership_by_position ON membership (log_seq);
     ALTER TABLE plans ADD COLUMN roster BLOB;
     ALTER TABLE plans ADD COLUMN level TEXT NOT NULL DEFAULT 'regulier';
     -- The policy's table per escalation level: a plan's participants read by the rows of
     -- the plan's level. A policy from before levels reads the same at every level.
     CREATE TABLE policy_access_by_level (
         level       TEXT NOT NULL,
         role        TEXT NOT NULL,
         compartment SMALLINT NOT NULL,
         may_write   SMALLINT NOT NULL CHECK (may_write IN (0, 1)),
         PRIMARY KEY (level, role, compartment)
     ) WITHOUT ROWID;
     INSERT INTO policy_access_by_level (level, role, compartment, may_write)
         SELECT l.level, a.role, a.compartment, a.may_write
         FROM policy_access a
         CROSS JOIN (SELECT 'regulier' AS level UNION ALL SELECT 'lokaal'
                     UNION ALL SELECT 'zorg_en_veiligheidshuis') l;
     DROP TABLE policy_access;
     ALTER TABLE policy_access_by_level RENAME TO policy_access;",
    // 10: the access log (NEN 7513). Devices' sealed uploads, with a global id to page by and
    //     the digest that makes a retried upload one row; every version of each organisation's
    //     root-signed audit key; the server's own signed event chain. Uploads and the server's
    //     events are append-only, enforced here as well as by the code: a route that tried to
    //     change or drop evidence fails its transaction.
    "CREATE TABLE audit_uploads (
         upload_id   INTEGER PRIMARY KEY,
         device_id   BLOB NOT NULL REFERENCES devices (device_id),
         org_id      BIGINT NOT NULL REFERENCES orgs (org_id),
         first_seq   BIGINT NOT NULL,
         last_seq    BIGINT NOT NULL,
         head        BLOB NOT NULL,
         key_version BIGINT NOT NULL,
         digest      BLOB NOT NULL UNIQUE,
         bytes       BLOB NOT NULL,
         received_at BIGINT NOT NULL
     );
     CREATE INDEX audit_uploads_by_org ON audit_uploads (org_id, upload_id);
     CREATE INDEX audit_uploads_by_device ON audit_uploads (device_id, last_seq);
     CREATE TRIGGER audit_uploads_no_update BEFORE UPDATE ON audit_uploads
         BEGIN SELECT RAISE(ABORT, 'audit uploads are append-only'); END;
     CREATE TRIGGER audit_uploads_no_delete BEFORE DELETE ON audit_uploads
         BEGIN SELECT RAISE(ABORT, 'audit uploads are append-only'); END;
     CREATE TABLE audit_keys (
         org_id    BIGINT NOT NULL REFERENCES orgs (org_id),
         version   BIGINT NOT NULL,
         signed    BLOB NOT NULL,
         stored_at BIGINT NOT NULL,
         PRIMARY KEY (org_id, version)
     ) WITHOUT ROWID;
     CREATE TABLE server_events (
         seq    INTEGER PRIMARY KEY,
         signed BLOB NOT NULL,
         at     BIGINT NOT NULL
     );
     CREATE TRIGGER server_events_no_update BEFORE UPDATE ON server_events
         BEGIN SELECT RAISE(ABORT, 'the server audit chain is append-only'); END;
     CREATE TRIGGER server_events_no_delete BEFORE DELETE ON server_events
         BEGIN SELECT RAISE(ABORT, 'the server audit chain is append-only'); END;",
    // 11: retention. A closed plan keeps its closing entry's time beside its roster, so the
    //     closed plans are listed without decoding every chain; an erased plan leaves only a
    //     tombstone (its id and when), so it cannot be registered again. A participant who
    //     is removed still receives the chain up to the entry that removed them: their
    //     devices drop the plan on the signed word of that entry, never on the server's.
    "ALTER TABLE plans ADD COLUMN closed_at BIGINT;
     CREATE TABLE membership_leavers (
         plan_id     BLOB NOT NULL,
         user_id     BIGINT NOT NULL,
         through_seq BIGINT NOT NULL,
         PRIMARY KEY (user_id, plan_id)
     ) WITHOUT ROWID;
     CREATE INDEX plans_by_closed_at ON plans (closed_at) WHERE closed_at IS NOT NULL;
     CREATE TABLE erased_plans (
         plan_id   BLOB PRIMARY KEY,
         erased_at BIGINT NOT NULL
     ) WITHOUT ROWID;",
    // 12: devices say who they are. The name and platform a device reported, with its own
    //     signature over them (administrators check it), and when a request with its
    //     session token was last recorded (at most once a minute, beside `last_session_at`).
    "ALTER TABLE devices ADD COLUMN label TEXT;
     ALTER TABLE devices ADD COLUMN platform TEXT;
     ALTER TABLE devices ADD COLUMN label_signature BLOB;
     ALTER TABLE devices ADD COLUMN last_seen_at BIGINT;",
    // 13: the administrators' replay set in the database, so that every server process on it
    //     (and a restarted one) refuses a signed request another one took. Rows live only
    //     while the request's time would pass the clock check.
    "CREATE TABLE admin_signatures (
         signature   BLOB PRIMARY KEY,
         stale_after BIGINT NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX admin_signatures_by_stale_after ON admin_signatures (stale_after);",
    // 14: the tables whose rows carry an X-Wing key or ciphertext (over a KiB) become rowid
    //     tables. In a `WITHOUT ROWID` table the whole row is the b-tree's key: a row past
    //     about a KiB spills onto overflow pages, and every comparison of a lookup reads the
    //     whole row back. A device lookup or an envelope check read 2–3 KiB per step (a
    //     tenth of the server's CPU per push, `load_bench` profile 2026-12-05); in a rowid
    //     table the lookup walks a small index. `devices` is referred to by foreign keys, so
    //     it is dropped and made again under its own name with the checks deferred: making
    //     its rows again settles every reference before the commit checks them.
    //     And the size of a document's change bundles after its snapshot, which every
    //     complete answer weighs for each document the device holds, is read from an index
    //     alone (`epoch_and_tail` then, `held_tails` until migration 20 kept the tails in
    //     `document_tails`), not from each bundle's row.
    "PRAGMA defer_foreign_keys = ON;
     CREATE TABLE devices_before_14 AS SELECT * FROM devices;
     DROP TABLE devices;
     CREATE TABLE devices (
         device_id         BLOB NOT NULL PRIMARY KEY,
         user_id           BIGINT NOT NULL REFERENCES users (user_id),
         signing_public    BLOB NOT NULL,
         agreement_public  BLOB NOT NULL,
         certificate       BLOB,
         state             TEXT NOT NULL CHECK (state IN ('pending', 'active', 'revoked')),
         created_at        BIGINT NOT NULL,
         revoked_at        BIGINT,
         key_mac           BLOB NOT NULL DEFAULT X'',
         revocation_reason TEXT,
         certified_at      BIGINT NOT NULL DEFAULT 0,
         last_session_at   BIGINT,
         wipe_nonce_hash   BLOB,
         label             TEXT,
         platform          TEXT,
         label_signature   BLOB,
         last_seen_at      BIGINT
     );
     INSERT INTO devices (
             device_id, user_id, signing_public, agreement_public, certificate, state, created_at,
             revoked_at, key_mac, revocation_reason, certified_at, last_session_at, wipe_nonce_hash,
             label, platform, label_signature, last_seen_at)
         SELECT device_id, user_id, signing_public, agreement_public, certificate, state, created_at,
             revoked_at, key_mac, revocation_reason, certified_at, last_session_at, wipe_nonce_hash,
             label, platform, label_signature, last_seen_at
         FROM devices_before_14;
     DROP TABLE devices_before_14;
     CREATE INDEX devices_by_user ON devices (user_id);
     CREATE TABLE envelopes_14 (
         recipient   BLOB NOT NULL REFERENCES devices (device_id),
         plan_id     BLOB NOT NULL,
         compartment SMALLINT NOT NULL,
         epoch       BIGINT NOT NULL,
         bytes       BLOB NOT NULL,
         position    BIGINT NOT NULL DEFAULT 0,
         sealer      BLOB,
         PRIMARY KEY (recipient, plan_id, compartment, epoch)
     );
     INSERT INTO envelopes_14 (recipient, plan_id, compartment, epoch, bytes, position, sealer)
         SELECT recipient, plan_id, compartment, epoch, bytes, position, sealer FROM envelopes;
     DROP TABLE envelopes;
     ALTER TABLE envelopes_14 RENAME TO envelopes;
     CREATE INDEX envelopes_by_recipient ON envelopes (recipient, position);
     CREATE INDEX envelopes_by_document ON envelopes (plan_id, compartment, epoch);
     CREATE TABLE escrow_envelopes_14 (
         plan_id     BLOB NOT NULL,
         compartment SMALLINT NOT NULL,
         epoch       BIGINT NOT NULL,
         bytes       BLOB NOT NULL,
         PRIMARY KEY (plan_id, compartment, epoch)
     );
     INSERT INTO escrow_envelopes_14 (plan_id, compartment, epoch, bytes)
         SELECT plan_id, compartment, epoch, bytes FROM escrow_envelopes;
     DROP TABLE escrow_envelopes;
     ALTER TABLE escrow_envelopes_14 RENAME TO escrow_envelopes;
     CREATE TABLE device_certificates_14 (
         device_id   BLOB NOT NULL REFERENCES devices (device_id),
         valid_from  BIGINT NOT NULL,
         certificate BLOB NOT NULL,
         PRIMARY KEY (device_id, valid_from)
     );
     INSERT INTO device_certificates_14 (device_id, valid_from, certificate)
         SELECT device_id, valid_from, certificate FROM device_certificates;
     DROP TABLE device_certificates;
     ALTER TABLE device_certificates_14 RENAME TO device_certificates;
     CREATE INDEX bundles_by_kind ON bundles (plan_id, compartment, kind, seq, size);
     PRAGMA defer_foreign_keys = OFF;",
    // 15: the membership chains become a rowid table, and the positions every sync filters
    //     them by an index. A signed entry is several KiB (4.5 on average in `load_bench`),
    //     so in the `WITHOUT ROWID` table each row spilled onto overflow pages, and a sync
    //     answer read every entry of each of the user's plans whole to reach `log_seq`,
    //     stored after it (`membership_after`). Now the index `membership_by_plan` answers
    //     which entries are new, and only those are read. And `devices_by_user` covers the
    //     state and id of a user's devices: a device row (X-Wing key and certificate, about
    //     4 KiB) fills a page of its own, and every key request read one row per device.
    "CREATE TABLE membership_15 (
         plan_id BLOB NOT NULL REFERENCES plans (plan_id),
         seq     BIGINT NOT NULL,
         log_seq BIGINT NOT NULL,
         signed  BLOB NOT NULL,
         PRIMARY KEY (plan_id, seq)
     );
     INSERT INTO membership_15 (plan_id, seq, log_seq, signed)
         SELECT plan_id, seq, log_seq, signed FROM membership;
     DROP TABLE membership;
     ALTER TABLE membership_15 RENAME TO membership;
     CREATE INDEX membership_by_position ON membership (log_seq);
     CREATE INDEX membership_by_plan ON membership (plan_id, log_seq, seq);
     DROP INDEX devices_by_user;
     CREATE INDEX devices_by_user ON devices (user_id, state, device_id);",
    // 16: a plan's roster moves out of `plans` into `plan_rosters`. The roster (CBOR) grows
    //     with every membership change, past a KiB after a few; in the `WITHOUT ROWID`
    //     `plans` table such a row spills onto overflow pages, and every plan lookup of a sync
    //     (each held key's plan, each readable plan's level) would read it whole. Only
    //     membership updates read the roster; `plans` keeps rows of a few dozen bytes.
    "CREATE TABLE plan_rosters (
         plan_id BLOB NOT NULL PRIMARY KEY REFERENCES plans (plan_id),
         roster  BLOB NOT NULL
     );
     INSERT INTO plan_rosters (plan_id, roster) SELECT plan_id, roster FROM plans WHERE roster IS NOT NULL;
     ALTER TABLE plans DROP COLUMN roster;",
    // 17: a snapshot request keeps when its device was first asked. A renewed request kept
    //     other devices from being asked while it lived, so a device re-asked every ten
    //     minutes that never delivered kept compaction from everyone; now only a first ask
    //     less than ten minutes old does.
    "ALTER TABLE snapshot_requests ADD COLUMN first_asked_at BIGINT NOT NULL DEFAULT 0;
     UPDATE snapshot_requests SET first_asked_at = requested_at;",
    // 18: each user's key-share version: every row that decides which devices lack a key the
    //     user's devices hold bumps it, so that a sync answer reuses the list it computed
    //     while the version stands (see `domain::key_shares`). Triggers, not the domain
    //     layer, keep it: a write path added later cannot forget it. A migration that rebuilds
    //     one of these tables must create its triggers again. The policy's access rows are
    //     left out: they change only with the policy's version, which the answer reads beside
    //     this one (a policy of a few hundred rows would otherwise bump every user per row).
    //     A participant's grant position and plan role are not read by the lists either, so
    //     changing them bumps nothing (a grant position does from migration 19 on).
    "ALTER TABLE users ADD COLUMN key_share_version INTEGER NOT NULL DEFAULT 0;
     CREATE TRIGGER key_share_envelope_added AFTER INSERT ON envelopes BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id = NEW.plan_id);
     END;
     CREATE TRIGGER key_share_envelope_changed AFTER UPDATE ON envelopes BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id IN (OLD.plan_id, NEW.plan_id));
     END;
     CREATE TRIGGER key_share_envelope_removed AFTER DELETE ON envelopes BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id = OLD.plan_id);
     END;
     CREATE TRIGGER key_share_commitment_added AFTER INSERT ON commitments BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id = NEW.plan_id);
     END;
     CREATE TRIGGER key_share_commitment_changed AFTER UPDATE ON commitments BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id IN (OLD.plan_id, NEW.plan_id));
     END;
     CREATE TRIGGER key_share_commitment_removed AFTER DELETE ON commitments BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id = OLD.plan_id);
     END;
     CREATE TRIGGER key_share_participant_added AFTER INSERT ON participants BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id = NEW.plan_id);
     END;
     CREATE TRIGGER key_share_participant_changed AFTER UPDATE OF plan_id, user_id ON participants BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (OLD.user_id, NEW.user_id)
            OR user_id IN (SELECT user_id FROM participants WHERE plan_id IN (OLD.plan_id, NEW.plan_id));
     END;
     CREATE TRIGGER key_share_participant_removed AFTER DELETE ON participants BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id = OLD.user_id
            OR user_id IN (SELECT user_id FROM participants WHERE plan_id = OLD.plan_id);
     END;
     CREATE TRIGGER key_share_plan_level AFTER UPDATE OF level ON plans BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id IN (OLD.plan_id, NEW.plan_id));
     END;
     CREATE TRIGGER key_share_role AFTER UPDATE OF role ON users BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (OLD.user_id, NEW.user_id)
            OR user_id IN (SELECT p2.user_id FROM participants p1 JOIN participants p2 ON p2.plan_id = p1.plan_id
                           WHERE p1.user_id IN (OLD.user_id, NEW.user_id));
     END;
     CREATE TRIGGER key_share_device_added AFTER INSERT ON devices BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id = NEW.user_id
            OR user_id IN (SELECT p2.user_id FROM participants p1 JOIN participants p2 ON p2.plan_id = p1.plan_id
                           WHERE p1.user_id = NEW.user_id);
     END;
     CREATE TRIGGER key_share_device_changed AFTER UPDATE OF device_id, user_id, state ON devices BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (OLD.user_id, NEW.user_id)
            OR user_id IN (SELECT p2.user_id FROM participants p1 JOIN participants p2 ON p2.plan_id = p1.plan_id
                           WHERE p1.user_id IN (OLD.user_id, NEW.user_id));
     END;
     CREATE TRIGGER key_share_device_removed AFTER DELETE ON devices BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id = OLD.user_id
            OR user_id IN (SELECT p2.user_id FROM participants p1 JOIN participants p2 ON p2.plan_id = p1.plan_id
                           WHERE p1.user_id = OLD.user_id);
     END;
     CREATE TRIGGER key_share_wipe_added AFTER INSERT ON wipe_reports BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM devices WHERE device_id = NEW.device_id)
            OR user_id IN (SELECT p2.user_id FROM devices d
                           JOIN participants p1 ON p1.user_id = d.user_id
                           JOIN participants p2 ON p2.plan_id = p1.plan_id
                           WHERE d.device_id = NEW.device_id);
     END;
     CREATE TRIGGER key_share_wipe_changed AFTER UPDATE ON wipe_reports BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM devices WHERE device_id IN (OLD.device_id, NEW.device_id))
            OR user_id IN (SELECT p2.user_id FROM devices d
                           JOIN participants p1 ON p1.user_id = d.user_id
                           JOIN participants p2 ON p2.plan_id = p1.plan_id
                           WHERE d.device_id IN (OLD.device_id, NEW.device_id));
     END;
     CREATE TRIGGER key_share_wipe_removed AFTER DELETE ON wipe_reports BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM devices WHERE device_id = OLD.device_id)
            OR user_id IN (SELECT p2.user_id FROM devices d
                           JOIN participants p1 ON p1.user_id = d.user_id
                           JOIN participants p2 ON p2.plan_id = p1.plan_id
                           WHERE d.device_id = OLD.device_id);
     END;",
    // 19: the key-share version also stamps the part of a sync answer remembered per user
    //     (`domain::access`): the user's grant positions, the plans' chartered rotations.
    //     A grant position bumps its own user; a rotation queued or done, and a plan's
    //     roster stored or removed (which makes its rotations ones a device is asked for),
    //     bump every participant of the plan.
    "CREATE TRIGGER key_share_grant_changed AFTER UPDATE OF granted_at_seq ON participants
         WHEN OLD.granted_at_seq IS NOT NEW.granted_at_seq BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (OLD.user_id, NEW.user_id);
     END;
     CREATE TRIGGER key_share_rotation_added AFTER INSERT ON rotations BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id = NEW.plan_id);
     END;
     CREATE TRIGGER key_share_rotation_changed AFTER UPDATE ON rotations BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id IN (OLD.plan_id, NEW.plan_id));
     END;
     CREATE TRIGGER key_share_rotation_removed AFTER DELETE ON rotations BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id = OLD.plan_id);
     END;
     CREATE TRIGGER key_share_roster_added AFTER INSERT ON plan_rosters BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id = NEW.plan_id);
     END;
     CREATE TRIGGER key_share_roster_moved AFTER UPDATE OF plan_id ON plan_rosters BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id IN (OLD.plan_id, NEW.plan_id));
     END;
     CREATE TRIGGER key_share_roster_removed AFTER DELETE ON plan_rosters BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (SELECT user_id FROM participants WHERE plan_id = OLD.plan_id);
     END;",
    // 20: each document's tail (its newest snapshot, and the count and bytes of the change
    //     bundles after what that snapshot covers) is kept in `document_tails`, one row per
    //     document with a bundle, by triggers on `bundles`. Every complete sync answer weighs
    //     the tail of each document the device holds a key of; counting it from the index
    //     was a range scan per document, half the server's CPU of an idle sync of a device
    //     holding 200 documents (`load_bench` profile 2026-12-06). A change added or removed
    //     moves its document's row by itself; a snapshot added or removed may change which
    //     snapshot is the newest, so its document's row is counted again from the log.
    //     No trigger statement can conflict (an update, then an insert where no row is, a
    //     deletion before a count), so the conflict clause of a statement that writes
    //     `bundles` cannot change what they do. Bundles are never updated, and the last
    //     trigger keeps it so: an update would go past the tails. (An `INSERT OR REPLACE`
    //     into `bundles` would too, by deleting without delete triggers; nothing writes one.)
    concat!(
        "CREATE TABLE document_tails (
             plan_id       BLOB NOT NULL,
             compartment   SMALLINT NOT NULL,
             covers        BIGINT NOT NULL,
             snapshot_size BIGINT,
             changes       BIGINT NOT NULL,
             change_bytes  BIGINT NOT NULL,
             PRIMARY KEY (plan_id, compartment)
         ) WITHOUT ROWID;
         ",
        count_tails_of!("SELECT DISTINCT plan_id, compartment FROM bundles"),
        "
         CREATE TRIGGER document_tail_change_added AFTER INSERT ON bundles WHEN NEW.kind = 0 BEGIN
             UPDATE document_tails SET changes = changes + 1, change_bytes = change_bytes + NEW.size
             WHERE plan_id = NEW.plan_id AND compartment = NEW.compartment AND NEW.seq > covers;
             INSERT INTO document_tails (plan_id, compartment, covers, snapshot_size, changes, change_bytes)
             SELECT NEW.plan_id, NEW.compartment, 0, NULL, NEW.seq > 0, CASE WHEN NEW.seq > 0 THEN NEW.size ELSE 0 END
             WHERE NOT EXISTS (SELECT 1 FROM document_tails
                               WHERE plan_id = NEW.plan_id AND compartment = NEW.compartment);
         END;
         CREATE TRIGGER document_tail_snapshot_added AFTER INSERT ON bundles WHEN NEW.kind = 1 BEGIN
             DELETE FROM document_tails WHERE plan_id = NEW.plan_id AND compartment = NEW.compartment;
             ",
        count_tails_of!("SELECT NEW.plan_id AS plan_id, NEW.compartment AS compartment"),
        "
         END;
         CREATE TRIGGER document_tail_change_removed AFTER DELETE ON bundles WHEN OLD.kind = 0 BEGIN
             UPDATE document_tails SET changes = changes - 1, change_bytes = change_bytes - OLD.size
             WHERE plan_id = OLD.plan_id AND compartment = OLD.compartment AND OLD.seq > covers;
             ",
        forget_tail_if_empty!(),
        "
         END;
         CREATE TRIGGER document_tail_snapshot_removed AFTER DELETE ON bundles WHEN OLD.kind = 1 BEGIN
             DELETE FROM document_tails WHERE plan_id = OLD.plan_id AND compartment = OLD.compartment;
             ",
        count_tails_of!("SELECT OLD.plan_id AS plan_id, OLD.compartment AS compartment"),
        "
             ",
        forget_tail_if_empty!(),
        "
         END;
         CREATE TRIGGER bundles_are_never_updated BEFORE UPDATE ON bundles BEGIN
             SELECT RAISE(ABORT, 'bundles are never updated: document_tails would go stale');
         END;"
    ),
];

/// The schema version this build writes.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) fn migrate(tx: &Transaction<'_>) -> Result<()> {
    let current: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StorageError::Backend(format!(
            "the database was written by a newer server (schema {current}, this one knows {SCHEMA_VERSION})"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(current).unwrap_or(0)) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies the first `version` migrations, as a server of that schema left the database.
    fn schema_at(tx: &Transaction<'_>, version: usize) {
        for sql in &MIGRATIONS[..version] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", version as i64).unwrap();
    }

    #[test]
    fn migrations_apply_once_and_refuse_a_newer_schema() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        migrate(&tx).unwrap();
        migrate(&tx).unwrap();
        tx.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        assert!(matches!(migrate(&tx), Err(StorageError::Backend(_))));
    }

    #[test]
    fn schema_8_reads_the_sealer_of_stored_envelopes_from_their_signed_trailer() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        schema_at(&tx, 5);
        let signed = [vec![2u8; 1170], vec![7u8; 16], vec![9u8; 64]].concat();
        tx.execute_batch(
            "INSERT INTO orgs (org_id, name, lease_hours) VALUES (1, 'o', 1);
             INSERT INTO users (user_id, org_id, name, role) VALUES (1, 1, 'u', 'r');
             INSERT INTO devices (device_id, user_id, signing_public, agreement_public, state, created_at)
                 VALUES (X'02', 1, X'03', X'04', 'active', 6);",
        )
        .unwrap();
        tx.execute(
            "INSERT INTO envelopes (recipient, plan_id, compartment, epoch, bytes, position)
             VALUES (X'02', X'05', 0, 1, ?1, 1), (X'02', X'05', 1, 1, X'0102', 2)",
            [&signed],
        )
        .unwrap();
        migrate(&tx).unwrap();
        let sealers: Vec<Option<Vec<u8>>> = tx
            .prepare("SELECT sealer FROM envelopes ORDER BY compartment")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(sealers, vec![Some(vec![7u8; 16]), None], "a short, unsigned row has no sealer");
    }

    #[test]
    fn schema_3_keeps_devices_and_codes_of_schema_2() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        schema_at(&tx, 2);
        tx.execute_batch(
            "INSERT INTO orgs (org_id, name, lease_hours) VALUES (1, 'o', 1);
             INSERT INTO users (user_id, org_id, name, role) VALUES (1, 1, 'u', 'r');
             INSERT INTO enrolments (code_hash, user_id, expires_at) VALUES (X'01', 1, 5);
             INSERT INTO devices (device_id, user_id, signing_public, agreement_public, state, created_at)
                 VALUES (X'02', 1, X'03', X'04', 'pending', 6);",
        )
        .unwrap();
        migrate(&tx).unwrap();
        let (code_id, key_mac): (Vec<u8>, Vec<u8>) = tx
            .query_row("SELECT e.code_id, d.key_mac FROM enrolments e, devices d", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        assert_eq!((code_id, key_mac), (vec![1], vec![]));
    }

    #[test]
    fn schema_7_deletes_the_snapshots_of_the_retired_format_and_keeps_everything_else() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        schema_at(&tx, 5);
        // seq, DB kind, the wire kind byte (offset 1 of the bundle).
        let rows = [(1, 0, 0u8), (2, 1, 1u8), (3, 1, 2u8), (4, 0, 0u8), (5, 1, 1u8)];
        for (seq, kind, wire_kind) in rows {
            let bytes = [1u8, wire_kind, 7, 7];
            tx.execute(
                "INSERT INTO bundles (seq, plan_id, compartment, bundle_id, author, epoch, kind, covers_seq,
                                      size, bytes, received_at)
                 VALUES (?1, X'AA', 0, ?2, X'BB', 1, ?3, ?4, 4, ?5, 0)",
                rusqlite::params![seq, vec![seq as u8; 16], kind, (kind == 1).then_some(1), &bytes[..]],
            )
            .unwrap();
        }
        migrate(&tx).unwrap();
        let kept: Vec<i64> = tx
            .prepare("SELECT seq FROM bundles ORDER BY seq")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(kept, [1, 3, 4], "the changes and the snapshot with a signed covers stay");
        for table in ["snapshot_requests", "pull_resumes"] {
            let count: i64 =
                tx.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0)).unwrap();
            assert_eq!(count, 0);
        }
    }

    /// Every row of the tables schema 14 makes again, and of the tables that refer to them.
    fn rows_of_the_rebuilt_tables(conn: &rusqlite::Connection) -> Vec<(String, Vec<String>)> {
        let tables = [
            "devices",
            "envelopes",
            "escrow_envelopes",
            "device_certificates",
            "plans",
            "wipe_orders",
            "wipe_reports",
            "refused_sealers",
            "audit_uploads",
        ];
        tables
            .iter()
            .map(|table| {
                // Schema 16 moves the roster out of `plans`: compared without it.
                let columns = match *table {
                    "plans" => "plan_id, creator_user, created_by, created_at, level, closed_at",
                    _ => "*",
                };
                let mut stmt = conn.prepare(&format!("SELECT {columns} FROM {table} ORDER BY 1, 2")).unwrap();
                let width = stmt.column_count();
                let rows = stmt
                    .query_map([], |row| {
                        let cells: Vec<String> =
                            (0..width).map(|i| format!("{:?}", row.get_ref(i).unwrap())).collect();
                        Ok(cells.join("|"))
                    })
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                assert!(!rows.is_empty(), "{table} has rows to carry over");
                ((*table).to_string(), rows)
            })
            .collect()
    }

    #[test]
    fn schema_14_keeps_every_row_and_reference_while_the_key_tables_become_rowid_tables() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        // As the server opens its database: references are checked, here at the commit.
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        let tx = conn.transaction().unwrap();
        schema_at(&tx, 13);
        tx.execute_batch(
            "INSERT INTO orgs (org_id, name, lease_hours) VALUES (1, 'o', 1);
             INSERT INTO users (user_id, org_id, name, role) VALUES (1, 1, 'u', 'r');
             INSERT INTO devices (device_id, user_id, signing_public, agreement_public, state, created_at,
                                  label, last_seen_at)
                 VALUES (X'02', 1, X'03', zeroblob(1216), 'active', 6, 'telefoon', 9),
                        (X'12', 1, X'13', zeroblob(1216), 'revoked', 7, NULL, NULL);
             INSERT INTO plans (plan_id, creator_user, created_by, created_at) VALUES (X'05', 1, X'02', 8);
             INSERT INTO envelopes (recipient, plan_id, compartment, epoch, bytes, position, sealer)
                 VALUES (X'02', X'05', 0, 1, zeroblob(1200), 1, X'12'), (X'12', X'05', 0, 1, X'01', 2, NULL);
             INSERT INTO escrow_envelopes (plan_id, compartment, epoch, bytes) VALUES (X'05', 0, 1, zeroblob(1200));
             INSERT INTO device_certificates (device_id, valid_from, certificate) VALUES (X'02', 1, zeroblob(1400));
             INSERT INTO wipe_orders (device_id, signed, stored_at) VALUES (X'12', X'0a', 10);
             INSERT INTO wipe_reports (device_id, signed, wiped_at) VALUES (X'12', X'0b', 11);
             INSERT INTO refused_sealers (recipient, plan_id, compartment, epoch, sealer)
                 VALUES (X'02', X'05', 0, 1, X'12');
             INSERT INTO audit_uploads (device_id, org_id, first_seq, last_seq, head, key_version, digest,
                                        bytes, received_at)
                 VALUES (X'02', 1, 1, 2, X'0c', 1, X'0d', X'0e', 12);",
        )
        .unwrap();
        tx.commit().unwrap();
        let before = rows_of_the_rebuilt_tables(&conn);

        let tx = conn.transaction().unwrap();
        migrate(&tx).unwrap();
        // The deferred references are checked here: a device row the migration lost fails it.
        tx.commit().unwrap();

        assert_eq!(rows_of_the_rebuilt_tables(&conn), before);
        let violations: i64 =
            conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| row.get(0)).unwrap();
        assert_eq!(violations, 0);
        for table in ["devices", "envelopes", "escrow_envelopes", "device_certificates"] {
            assert!(!without_rowid(&conn, table), "{table} is still WITHOUT ROWID");
        }
        // The references still hold both ways.
        assert!(
            conn.execute(
                "INSERT INTO envelopes (recipient, plan_id, compartment, epoch, bytes) VALUES (X'77', X'05', 1, 1, X'00')",
                [],
            )
            .is_err()
        );
        assert!(conn.execute("DELETE FROM devices WHERE device_id = X'02'", []).is_err());
        let defer: i64 = conn.query_row("PRAGMA defer_foreign_keys", [], |row| row.get(0)).unwrap();
        assert_eq!(defer, 0, "the migration leaves references checked at once");
    }

    /// An in-memory database at schema `version` with references checked, as the server opens
    /// it, holding one organisation, user and device (`X'02'`), and then `rows`.
    fn database_at(version: usize, rows: &str) -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        let tx = conn.transaction().unwrap();
        schema_at(&tx, version);
        tx.execute_batch(
            "INSERT INTO orgs (org_id, name, lease_hours) VALUES (1, 'o', 1);
             INSERT INTO users (user_id, org_id, name, role) VALUES (1, 1, 'u', 'r');
             INSERT INTO devices (device_id, user_id, signing_public, agreement_public, state, created_at)
                 VALUES (X'02', 1, X'03', zeroblob(1216), 'active', 6);",
        )
        .unwrap();
        tx.execute_batch(rows).unwrap();
        tx.commit().unwrap();
        conn
    }

    /// Migrates `conn` to this build's schema in one transaction.
    fn migrate_now(conn: &mut rusqlite::Connection) {
        let tx = conn.transaction().unwrap();
        migrate(&tx).unwrap();
        tx.commit().unwrap();
    }

    /// Whether `table` was created `WITHOUT ROWID`.
    fn without_rowid(conn: &rusqlite::Connection, table: &str) -> bool {
        let sql: String = conn
            .query_row("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1", [table], |row| {
                row.get(0)
            })
            .unwrap();
        sql.to_uppercase().contains("WITHOUT ROWID")
    }

    #[test]
    fn schema_15_keeps_every_membership_entry_in_a_rowid_table_whose_positions_an_index_answers() {
        let mut conn = database_at(
            14,
            "INSERT INTO plans (plan_id, creator_user, created_by, created_at) VALUES (X'05', 1, X'02', 8);
             INSERT INTO membership (plan_id, seq, signed, log_seq)
                 VALUES (X'05', 1, zeroblob(4500), 3), (X'05', 2, X'0102', 9);",
        );
        let entries = |conn: &rusqlite::Connection| -> Vec<(Vec<u8>, i64, Vec<u8>, i64)> {
            conn.prepare("SELECT plan_id, seq, signed, log_seq FROM membership ORDER BY plan_id, seq")
                .unwrap()
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let before = entries(&conn);

        migrate_now(&mut conn);

        assert_eq!(entries(&conn), before);
        assert!(!without_rowid(&conn, "membership"));
        let duplicate = "INSERT INTO membership (plan_id, seq, signed, log_seq) VALUES (X'05', 2, X'00', 10)";
        assert!(conn.execute(duplicate, []).is_err(), "(plan, seq) stays unique");
        let orphan = "INSERT INTO membership (plan_id, seq, signed, log_seq) VALUES (X'77', 1, X'00', 10)";
        assert!(conn.execute(orphan, []).is_err(), "an entry still needs its plan");
        // The server's own statements: new entries found by the index, devices by theirs.
        let membership = query_plan(&conn, super::super::rows::MEMBERSHIP_AFTER);
        assert!(membership.iter().any(|step| step.contains("INDEX membership_by_plan")), "{membership:?}");
        let devices = query_plan(&conn, super::super::rows::DEVICES_MISSING_HELD_KEYS);
        assert!(devices.iter().any(|step| step.contains("COVERING INDEX devices_by_user")), "{devices:?}");
    }

    #[test]
    fn schema_17_dates_each_outstanding_snapshot_request_first_asked_when_it_was_last_asked() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        schema_at(&tx, 16);
        tx.execute_batch(
            "INSERT INTO snapshot_requests (device_id, plan_id, compartment, covers_seq, requested_at)
             VALUES (X'02', X'05', 0, 7, 1234);",
        )
        .unwrap();
        migrate(&tx).unwrap();
        let dates: (i64, i64) = tx
            .query_row("SELECT requested_at, first_asked_at FROM snapshot_requests", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        assert_eq!(dates, (1234, 1234));
    }

    #[test]
    fn the_held_documents_tails_are_read_from_their_kept_rows_and_never_counted_from_the_log() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        schema_at(&tx, MIGRATIONS.len());
        let plan = query_plan(&tx, super::super::rows::HELD_TAILS);
        assert!(
            plan.iter().any(|step| step.contains("SEARCH t USING PRIMARY KEY (plan_id=? AND compartment=?)")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|step| step.contains("bundles")), "{plan:?}");
        let plan = query_plan(&tx, super::super::rows::DOCUMENT_TAIL);
        assert_eq!(plan, ["SEARCH document_tails USING PRIMARY KEY (plan_id=? AND compartment=?)"]);
    }

    /// Each document's tail counted from the log, as the answer read it before migration 20:
    /// what `document_tails` must always hold.
    const TAILS_COUNTED_FROM_THE_LOG: &str = "
        SELECT k.plan_id, k.compartment,
               COALESCE((SELECT s.covers_seq FROM bundles s
                         WHERE s.plan_id = k.plan_id AND s.compartment = k.compartment AND s.kind = 1
                         ORDER BY s.covers_seq DESC, s.seq DESC LIMIT 1), 0) AS covers,
               (SELECT s.size FROM bundles s
                WHERE s.plan_id = k.plan_id AND s.compartment = k.compartment AND s.kind = 1
                ORDER BY s.covers_seq DESC, s.seq DESC LIMIT 1) AS snapshot_size
        FROM (SELECT DISTINCT plan_id, compartment FROM bundles) k";

    type Tail = (Vec<u8>, i64, i64, Option<i64>, i64, i64);

    fn counted_tails(conn: &rusqlite::Connection) -> Vec<Tail> {
        let sql = format!(
            "SELECT c.plan_id, c.compartment, c.covers, c.snapshot_size,
                    (SELECT COUNT(*) FROM bundles b WHERE b.plan_id = c.plan_id AND b.compartment = c.compartment
                                                    AND b.kind = 0 AND b.seq > c.covers),
                    (SELECT COALESCE(SUM(b.size), 0) FROM bundles b WHERE b.plan_id = c.plan_id
                                                    AND b.compartment = c.compartment AND b.kind = 0 AND b.seq > c.covers)
             FROM ({TAILS_COUNTED_FROM_THE_LOG}) c ORDER BY c.plan_id, c.compartment"
        );
        tails(conn, &sql)
    }

    fn kept_tails(conn: &rusqlite::Connection) -> Vec<Tail> {
        tails(
            conn,
            "SELECT plan_id, compartment, covers, snapshot_size, changes, change_bytes FROM document_tails
             ORDER BY plan_id, compartment",
        )
    }

    fn tails(conn: &rusqlite::Connection, sql: &str) -> Vec<Tail> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    fn insert_bundle(conn: &rusqlite::Connection, seq: i64, bundle: &LoggedBundle) {
        insert_bundle_as(conn, "INSERT", seq, seq, bundle);
    }

    /// Inserts `bundle` at `seq` with the id of position `id`, as `rows::insert_bundle` does
    /// (`ON CONFLICT (bundle_id) DO NOTHING`), with `verb` (`INSERT` or `INSERT OR …`).
    fn insert_bundle_as(conn: &rusqlite::Connection, verb: &str, seq: i64, id: i64, bundle: &LoggedBundle) {
        let sql = format!(
            "{verb} INTO bundles (seq, plan_id, compartment, bundle_id, author, epoch, kind, covers_seq,
                                  size, bytes, received_at)
             VALUES (?1, ?2, ?3, ?4, X'BB', ?5, ?6, ?7, ?8, X'01', 0)
             ON CONFLICT (bundle_id) DO NOTHING"
        );
        conn.execute(
            &sql,
            rusqlite::params![
                seq,
                vec![bundle.plan],
                bundle.compartment,
                id.to_le_bytes().to_vec(),
                bundle.epoch,
                i64::from(bundle.snapshot),
                bundle.covers,
                bundle.size
            ],
        )
        .unwrap();
    }

    /// A bundle of the generated logs: few plans, compartments and epochs, so that documents
    /// share them and erasures hit several bundles.
    #[derive(Debug, Clone)]
    struct LoggedBundle {
        plan: u8,
        compartment: i64,
        epoch: i64,
        snapshot: bool,
        /// A snapshot's `covers_seq`: any position, before or after the bundle's own, or none.
        covers: Option<i64>,
        size: i64,
    }

    #[derive(Debug, Clone)]
    enum LogStep {
        Append(LoggedBundle),
        /// An append by a statement with its own conflict clause, which would take the
        /// place of the triggers' own if they had any.
        AppendOrIgnore(LoggedBundle),
        /// An earlier step's bundle sent again (its id), which the log skips.
        Retry(proptest::sample::Index),
        EraseEpochsBefore {
            plan: u8,
            compartment: i64,
            epoch: i64,
        },
        ErasePlan(u8),
    }

    fn logged_bundle() -> impl proptest::strategy::Strategy<Value = LoggedBundle> {
        use proptest::prelude::*;
        (
            0u8..2,
            0i64..2,
            1i64..4,
            proptest::bool::weighted(0.25),
            proptest::option::of(0i64..60),
            1i64..5_000,
        )
            .prop_map(|(plan, compartment, epoch, snapshot, covers, size)| LoggedBundle {
                plan,
                compartment,
                epoch,
                snapshot,
                covers: if snapshot { covers } else { None },
                size,
            })
    }

    fn log_step() -> impl proptest::strategy::Strategy<Value = LogStep> {
        use proptest::prelude::*;
        prop_oneof![
            10 => logged_bundle().prop_map(LogStep::Append),
            2 => logged_bundle().prop_map(LogStep::AppendOrIgnore),
            2 => proptest::prelude::any::<proptest::sample::Index>().prop_map(LogStep::Retry),
            2 => (0u8..2, 0i64..2, 1i64..4)
                .prop_map(|(plan, compartment, epoch)| LogStep::EraseEpochsBefore { plan, compartment, epoch }),
            1 => (0u8..2).prop_map(LogStep::ErasePlan),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

        /// Whatever bundles are added and erased, in whatever order, each document's kept tail
        /// is the tail counted from the log, and a document without a bundle has no row.
        #[test]
        fn every_kept_tail_is_the_tail_counted_from_the_log_after_any_appends_and_erasures(
            steps in proptest::collection::vec(log_step(), 1..60)
        ) {
            let mut conn = rusqlite::Connection::open_in_memory().unwrap();
            let tx = conn.transaction().unwrap();
            schema_at(&tx, MIGRATIONS.len());
            for (seq, step) in (1i64..).zip(&steps) {
                match step {
                    LogStep::Append(bundle) => insert_bundle(&tx, seq, bundle),
                    LogStep::AppendOrIgnore(bundle) => insert_bundle_as(&tx, "INSERT OR IGNORE", seq, seq, bundle),
                    LogStep::Retry(index) => {
                        let earlier = index.index(usize::try_from(seq).unwrap());
                        if let Some(LogStep::Append(bundle)) = steps.get(earlier) {
                            insert_bundle_as(&tx, "INSERT", seq, i64::try_from(earlier).unwrap() + 1, bundle);
                        }
                    }
                    LogStep::EraseEpochsBefore { plan, compartment, epoch } => {
                        tx.execute(
                            "DELETE FROM bundles WHERE plan_id = ?1 AND compartment = ?2 AND epoch < ?3",
                            rusqlite::params![vec![*plan], compartment, epoch],
                        )
                        .unwrap();
                    }
                    LogStep::ErasePlan(plan) => {
                        tx.execute("DELETE FROM bundles WHERE plan_id = ?1", [vec![*plan]]).unwrap();
                    }
                }
                proptest::prop_assert_eq!(kept_tails(&tx), counted_tails(&tx), "after step {}: {:?}", seq, step);
            }
        }
    }

    #[test]
    fn schema_20_counts_the_tail_of_every_document_already_logged() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        schema_at(&tx, 19);
        let bundle = |plan, compartment, snapshot, covers, size| LoggedBundle {
            plan,
            compartment,
            epoch: 1,
            snapshot,
            covers,
            size,
        };
        let log = [
            bundle(1, 0, false, None, 100),
            bundle(1, 0, false, None, 200),
            bundle(1, 0, true, Some(2), 5_000),
            bundle(1, 0, false, None, 300),
            bundle(1, 1, false, None, 7),
            bundle(2, 0, true, None, 900),
            bundle(2, 0, false, None, 11),
        ];
        for (seq, bundle) in (1i64..).zip(&log) {
            insert_bundle(&tx, seq, bundle);
        }
        migrate(&tx).unwrap();
        let kept = kept_tails(&tx);
        assert_eq!(
            kept,
            [
                (vec![1], 0, 2, Some(5_000), 1, 300),
                (vec![1], 1, 0, None, 1, 7),
                (vec![2], 0, 0, Some(900), 1, 11),
            ]
        );
        assert_eq!(kept, counted_tails(&tx));
    }

    #[test]
    fn a_stored_bundle_cannot_be_updated_so_no_tail_goes_stale() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        schema_at(&tx, MIGRATIONS.len());
        let change =
            LoggedBundle { plan: 1, compartment: 0, epoch: 1, snapshot: false, covers: None, size: 10 };
        insert_bundle(&tx, 1, &change);
        let refused = tx.execute("UPDATE bundles SET size = 99 WHERE seq = 1", []).unwrap_err();
        assert!(refused.to_string().contains("bundles are never updated"), "{refused}");
        assert_eq!(kept_tails(&tx), [(vec![1], 0, 0, None, 1, 10)]);
    }

    /// Every sync answer that is not served from memory reads the device's held keys and the
    /// devices missing them: at a region's size a full scan of the envelopes, devices or
    /// participants would cost every such answer the whole table.
    #[test]
    fn the_held_keys_and_the_devices_missing_them_are_found_by_index_never_by_scanning_a_table() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        schema_at(&tx, MIGRATIONS.len());
        for sql in [super::super::rows::HELD_DOCUMENTS, super::super::rows::DEVICES_MISSING_HELD_KEYS] {
            let plan = query_plan(&tx, sql);
            // The keys the device holds: its envelopes and the keys it made, each by index.
            for held in [
                "SEARCH envelopes USING COVERING INDEX sqlite_autoindex_envelopes_1 (recipient=?)",
                "SEARCH commitments USING COVERING INDEX commitments_by_minter (minter_device=?)",
            ] {
                assert!(plan.iter().any(|step| step == held), "{held} in {plan:?}");
            }
            // Only the statement's own few rows (the held keys, their latest epochs) are scanned.
            let scans: Vec<&String> = plan.iter().filter(|step| step.starts_with("SCAN")).collect();
            assert!(scans.iter().all(|step| ["SCAN h", "SCAN l"].contains(&step.as_str())), "{plan:?}");
        }
        // The devices missing a key are looked up from the held keys: the plan, its
        // participants, their users and devices, each by key.
        let plan = query_plan(&tx, super::super::rows::DEVICES_MISSING_HELD_KEYS);
        for lookup in [
            "SEARCH p USING PRIMARY KEY (plan_id=?)",
            "SEARCH d USING COVERING INDEX devices_by_user (user_id=? AND state=?)",
        ] {
            assert!(plan.iter().any(|step| step == lookup), "{lookup} in {plan:?}");
        }
    }

    /// The steps of SQLite's plan for `sql` (`EXPLAIN QUERY PLAN`, every parameter `NULL`).
    fn query_plan(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        stmt.query_map(rusqlite::params_from_iter(nulls), |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn schema_16_moves_every_roster_out_of_the_plans_table_and_keeps_the_plans() {
        let mut conn = database_at(
            15,
            "INSERT INTO plans (plan_id, creator_user, created_by, created_at, roster, level, closed_at)
                 VALUES (X'05', 1, X'02', 8, zeroblob(3000), 'zvh', 12),
                        (X'06', 1, X'02', 9, NULL, 'regulier', NULL);
             INSERT INTO participants (plan_id, user_id, plan_role, granted_at_seq) VALUES (X'05', 1, 'r', 1);",
        );
        migrate_now(&mut conn);

        let plans: Vec<(Vec<u8>, i64, String, Option<i64>)> = conn
            .prepare("SELECT plan_id, created_at, level, closed_at FROM plans ORDER BY plan_id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(plans, [(vec![5], 8, "zvh".into(), Some(12)), (vec![6], 9, "regulier".into(), None)]);
        let rosters: Vec<(Vec<u8>, Vec<u8>)> = conn
            .prepare("SELECT plan_id, roster FROM plan_rosters ORDER BY plan_id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rosters, [(vec![5], vec![0; 3000])], "a plan without a chain has no roster");
        assert!(conn.prepare("SELECT roster FROM plans").is_err(), "the column is gone");
        let orphan = "INSERT INTO plan_rosters (plan_id, roster) VALUES (X'77', X'00')";
        assert!(conn.execute(orphan, []).is_err(), "a roster needs its plan");
    }
}
