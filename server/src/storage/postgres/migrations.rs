//! Numbered schema migrations of the PostgreSQL backend. `schema_migrations` holds one row per
//! migration applied; each runs once, in order, in the opening transaction, which first takes
//! an exclusive lock on that table so that two server processes starting together do not both
//! apply one.
//!
//! The schema means what SQLite's does after its own migrations (`sqlite/migrations.rs`): the
//! same tables, columns, keys and indexes (the pull's seeks in `pull.rs` rely on
//! `bundles_by_document`, `snapshots_by_document`, `bundles_by_author` and
//! `envelopes_by_recipient`, the answer's tail check on `bundles_by_kind`), written in
//! PostgreSQL's types: `BIGINT` for every integer, `BYTEA` for blobs, and `TEXT COLLATE "C"`
//! so that names and roles sort by their bytes as in SQLite, whatever locale the cluster was
//! created with. This backend starts at SQLite's schema 12, so its migration 1 is that whole
//! schema; later changes are new numbers here (PostgreSQL's n is SQLite's n + 11 up to 3, then
//! 4 is SQLite's 17, 5 SQLite's 18). 6, the tails a sync answer weighs kept in a table of
//! their own, is SQLite's 20 (which keeps them by row triggers alone).

use super::statements;
use crate::storage::{Result, StorageError};

const MIGRATIONS: &[&str] = &[
    // 1: the schema of SQLite's migrations 1 to 12.
    include_str!("schema_1.sql"),
    // 2: SQLite's 13, the administrators' replay set.
    "CREATE TABLE admin_signatures (
         signature   BYTEA PRIMARY KEY,
         stale_after BIGINT NOT NULL
     );
     CREATE INDEX admin_signatures_by_stale_after ON admin_signatures (stale_after);",
    // 3: SQLite's 14, as far as it applies here: the tail after a snapshot is weighed from an
    //    index alone. SQLite's 14 also makes its tables of large rows rowid tables; PostgreSQL
    //    keeps every row in a heap with its indexes apart, and large values out of line.
    "CREATE INDEX bundles_by_kind ON bundles (plan_id, compartment, kind, seq, size);",
    // 4: SQLite's 17, when a snapshot request's device was first asked (SQLite's 15 and 16
    //    undo `WITHOUT ROWID` spills this backend never had).
    "ALTER TABLE snapshot_requests ADD COLUMN first_asked_at BIGINT NOT NULL DEFAULT 0;
     UPDATE snapshot_requests SET first_asked_at = requested_at;",
    // 5: SQLite's 18, each user's key-share version, kept by triggers on the rows that decide
    //    which devices lack a key the user's devices hold (the policy's access rows change
    //    only with the policy's version, which the answer reads beside it). The log head's
    //    row lock first, as every write transaction takes it: a server of the previous
    //    version still writing waits here instead of deadlocking with the table locks below.
    "SELECT 1 FROM log_head WHERE id = 1 FOR UPDATE;
     ALTER TABLE users ADD COLUMN key_share_version BIGINT NOT NULL DEFAULT 0;
     CREATE FUNCTION key_share_bump_plans(plans BYTEA[], members BIGINT[]) RETURNS void
     LANGUAGE sql AS $$
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id = ANY (members)
            OR user_id IN (SELECT user_id FROM participants WHERE plan_id = ANY (plans))
     $$;
     CREATE FUNCTION key_share_bump_partners(members BIGINT[]) RETURNS void
     LANGUAGE sql AS $$
         SELECT key_share_bump_plans(
             ARRAY(SELECT plan_id FROM participants WHERE user_id = ANY (members)), members)
     $$;
     CREATE FUNCTION key_share_plan_row() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF TG_OP IN ('UPDATE', 'DELETE') THEN
             PERFORM key_share_bump_plans(ARRAY[OLD.plan_id], '{}');
         END IF;
         IF TG_OP IN ('INSERT', 'UPDATE') THEN
             PERFORM key_share_bump_plans(ARRAY[NEW.plan_id], '{}');
         END IF;
         RETURN NULL;
     END $$;
     CREATE FUNCTION key_share_participant_row() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF TG_OP IN ('UPDATE', 'DELETE') THEN
             PERFORM key_share_bump_plans(ARRAY[OLD.plan_id], ARRAY[OLD.user_id]);
         END IF;
         IF TG_OP IN ('INSERT', 'UPDATE') THEN
             PERFORM key_share_bump_plans(ARRAY[NEW.plan_id], ARRAY[NEW.user_id]);
         END IF;
         RETURN NULL;
     END $$;
     CREATE FUNCTION key_share_user_row() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF TG_OP IN ('UPDATE', 'DELETE') THEN
             PERFORM key_share_bump_partners(ARRAY[OLD.user_id]);
         END IF;
         IF TG_OP IN ('INSERT', 'UPDATE') THEN
             PERFORM key_share_bump_partners(ARRAY[NEW.user_id]);
         END IF;
         RETURN NULL;
     END $$;
     CREATE FUNCTION key_share_wipe_row() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF TG_OP IN ('UPDATE', 'DELETE') THEN
             PERFORM key_share_bump_partners(ARRAY(SELECT user_id FROM devices WHERE device_id = OLD.device_id));
         END IF;
         IF TG_OP IN ('INSERT', 'UPDATE') THEN
             PERFORM key_share_bump_partners(ARRAY(SELECT user_id FROM devices WHERE device_id = NEW.device_id));
         END IF;
         RETURN NULL;
     END $$;
     CREATE TRIGGER key_share_envelope AFTER INSERT OR UPDATE OR DELETE ON envelopes
         FOR EACH ROW EXECUTE FUNCTION key_share_plan_row();
     CREATE TRIGGER key_share_commitment AFTER INSERT OR UPDATE OR DELETE ON commitments
         FOR EACH ROW EXECUTE FUNCTION key_share_plan_row();
     CREATE TRIGGER key_share_plan_level AFTER UPDATE OF level ON plans
         FOR EACH ROW EXECUTE FUNCTION key_share_plan_row();
     CREATE TRIGGER key_share_participant AFTER INSERT OR DELETE OR UPDATE OF plan_id, user_id ON participants
         FOR EACH ROW EXECUTE FUNCTION key_share_participant_row();
     CREATE TRIGGER key_share_role AFTER UPDATE OF role ON users
         FOR EACH ROW EXECUTE FUNCTION key_share_user_row();
     CREATE TRIGGER key_share_device AFTER INSERT OR DELETE OR UPDATE OF device_id, user_id, state ON devices
         FOR EACH ROW EXECUTE FUNCTION key_share_user_row();
     CREATE TRIGGER key_share_wipe AFTER INSERT OR UPDATE OR DELETE ON wipe_reports
         FOR EACH ROW EXECUTE FUNCTION key_share_wipe_row();",
    // 6: each document's tail after its newest snapshot, kept by triggers on `bundles`
    //    (SQLite's 20, later): a sync answer weighs the tail of every document the device holds
    //    a key of, and counting the bundles there grew with the tails (up to
    //    `COMPACT_AFTER_BUNDLES` each), 1.5 ms for a reader of 200 documents. An appended
    //    change is added to its document's row; a snapshot, a deletion or an update marks its
    //    document stale, and the statement's end counts the stale ones again from `bundles`.
    //    Row triggers and a stale set, not statement triggers with transition tables: those
    //    copy every row, ciphertext included, into a tuplestore that spills to a temporary
    //    file beyond `work_mem`, under the log head's lock on a large group commit, and with
    //    an erasure's deleted rows. The stale set is empty at every commit, so it is
    //    `UNLOGGED` (no WAL; a crash leaves it empty, as it was). Every append updates a tails
    //    row in place; `fillfactor = 50` leaves room on its page for the new version (a HOT
    //    update, no index entry). The log head's row lock first, as in 5.
    "SELECT 1 FROM log_head WHERE id = 1 FOR UPDATE;
     CREATE TABLE document_tails (
         plan_id       BYTEA NOT NULL,
         compartment   BIGINT NOT NULL,
         covers        BIGINT NOT NULL,
         snapshot_size BIGINT,
         bundles       BIGINT NOT NULL,
         bytes         BIGINT NOT NULL,
         PRIMARY KEY (plan_id, compartment)
     ) WITH (fillfactor = 50);
     CREATE UNLOGGED TABLE document_tails_stale (
         plan_id     BYTEA NOT NULL,
         compartment BIGINT NOT NULL,
         PRIMARY KEY (plan_id, compartment)
     );
     CREATE FUNCTION document_tails_recount(plans BYTEA[], compartments BIGINT[]) RETURNS void
     LANGUAGE sql AS $$
         DELETE FROM document_tails t
         USING unnest(plans, compartments) AS d (plan_id, compartment)
         WHERE t.plan_id = d.plan_id AND t.compartment = d.compartment;
         INSERT INTO document_tails (plan_id, compartment, covers, snapshot_size, bundles, bytes)
         SELECT d.plan_id, d.compartment, COALESCE(l.covers, 0), l.size, n.bundles, n.bytes
         FROM (SELECT DISTINCT plan_id, compartment FROM unnest(plans, compartments) AS u (plan_id, compartment)) d
         LEFT JOIN LATERAL (
             SELECT COALESCE(s.covers_seq, 0) AS covers, s.size FROM bundles s
             WHERE s.plan_id = d.plan_id AND s.compartment = d.compartment AND s.kind = 1
             ORDER BY s.covers_seq DESC, s.seq DESC LIMIT 1) l ON true
         CROSS JOIN LATERAL (
             SELECT COUNT(*) AS bundles, CAST(COALESCE(SUM(b.size), 0) AS BIGINT) AS bytes FROM bundles b
             WHERE b.plan_id = d.plan_id AND b.compartment = d.compartment AND b.kind = 0
               AND b.seq > COALESCE(l.covers, 0)) n
         WHERE EXISTS (SELECT 1 FROM bundles b WHERE b.plan_id = d.plan_id AND b.compartment = d.compartment)
     $$;
     CREATE FUNCTION document_tails_row() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF TG_OP = 'INSERT' AND NEW.kind = 0 THEN
             INSERT INTO document_tails AS t (plan_id, compartment, covers, snapshot_size, bundles, bytes)
             VALUES (NEW.plan_id, NEW.compartment, 0, NULL, 1, NEW.size)
             ON CONFLICT (plan_id, compartment)
             DO UPDATE SET bundles = t.bundles + 1, bytes = t.bytes + EXCLUDED.bytes
             WHERE NEW.seq > t.covers;
             RETURN NULL;
         END IF;
         IF TG_OP IN ('UPDATE', 'DELETE') THEN
             INSERT INTO document_tails_stale VALUES (OLD.plan_id, OLD.compartment) ON CONFLICT DO NOTHING;
         END IF;
         IF TG_OP IN ('INSERT', 'UPDATE') THEN
             INSERT INTO document_tails_stale VALUES (NEW.plan_id, NEW.compartment) ON CONFLICT DO NOTHING;
         END IF;
         RETURN NULL;
     END $$;
     CREATE FUNCTION document_tails_statement() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF EXISTS (SELECT 1 FROM document_tails_stale) THEN
             PERFORM document_tails_recount(array_agg(plan_id), array_agg(compartment))
             FROM document_tails_stale;
             DELETE FROM document_tails_stale;
         END IF;
         RETURN NULL;
     END $$;
     CREATE FUNCTION document_tails_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         DELETE FROM document_tails;
         DELETE FROM document_tails_stale;
         RETURN NULL;
     END $$;
     CREATE TRIGGER document_tails_rows AFTER INSERT OR UPDATE OR DELETE ON bundles
         FOR EACH ROW EXECUTE FUNCTION document_tails_row();
     CREATE TRIGGER document_tails_statements AFTER INSERT OR UPDATE OR DELETE ON bundles
         FOR EACH STATEMENT EXECUTE FUNCTION document_tails_statement();
     CREATE TRIGGER document_tails_truncate AFTER TRUNCATE ON bundles
         FOR EACH STATEMENT EXECUTE FUNCTION document_tails_truncated();
     SELECT document_tails_recount(array_agg(plan_id), array_agg(compartment))
     FROM (SELECT DISTINCT plan_id, compartment FROM bundles) d;",
    // 7: SQLite's 19, the key-share version also stamps the part of a sync answer
    //    remembered per user (`domain::access`): a grant position bumps its own user; a
    //    rotation queued or done, and a plan's roster stored or removed (which makes its
    //    rotations ones a device is asked for), bump every participant of the plan. The log
    //    head's row lock first, as in 5.
    "SELECT 1 FROM log_head WHERE id = 1 FOR UPDATE;
     CREATE FUNCTION key_share_grant_row() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         UPDATE users SET key_share_version = key_share_version + 1
         WHERE user_id IN (OLD.user_id, NEW.user_id);
         RETURN NULL;
     END $$;
     CREATE TRIGGER key_share_grant AFTER UPDATE OF granted_at_seq ON participants
         FOR EACH ROW WHEN (OLD.granted_at_seq IS DISTINCT FROM NEW.granted_at_seq)
         EXECUTE FUNCTION key_share_grant_row();
     CREATE TRIGGER key_share_rotation AFTER INSERT OR UPDATE OR DELETE ON rotations
         FOR EACH ROW EXECUTE FUNCTION key_share_plan_row();
     CREATE TRIGGER key_share_charter AFTER UPDATE OF roster ON plans
         FOR EACH ROW WHEN ((OLD.roster IS NULL) IS DISTINCT FROM (NEW.roster IS NULL))
         EXECUTE FUNCTION key_share_plan_row();",
];

/// The schema version this build writes.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn applied(tx: &mut postgres::Transaction<'_>) -> Result<i64> {
    let row = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
        .map_err(statements::Error::from)?;
    Ok(row.try_get(0).map_err(statements::Error::from)?)
}

/// Applies the migrations this database lacks; refuses a database a newer server wrote.
pub(super) fn migrate(tx: &mut postgres::Transaction<'_>) -> Result<()> {
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );
         LOCK TABLE schema_migrations IN EXCLUSIVE MODE;",
    )
    .map_err(statements::Error::from)?;
    let current = applied(tx)?;
    if current > SCHEMA_VERSION {
        return Err(StorageError::Backend(format!(
            "the database was written by a newer server (schema {current}, this one knows {SCHEMA_VERSION})"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(current).unwrap_or(0)) {
        tx.batch_execute(sql).map_err(statements::Error::from)?;
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&(index as i64 + 1)])
            .map_err(statements::Error::from)?;
    }
    Ok(())
}
