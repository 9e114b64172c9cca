//! Row-level reads and writes on one PostgreSQL transaction: the row code of
//! `sqlite/rows.rs` with PostgreSQL's placeholders (`$N`) and the few spellings that differ
//! (`GREATEST`, an alias on every subquery, `SUM` cast back to `BIGINT`), over the
//! rusqlite-shaped surface of [`super::statements`].

use std::collections::{HashMap, HashSet};

use eenplan_protocol::{BundleKind, DocumentId};

use super::statements::{self, Connection, OptionalExtension, Row, ToValue, Transaction, Value, params};
use crate::storage::backend::{
    AccessRead, AdmissionFacts, AheadReads, FactsQuery, SessionRead, StampRead, SyncFacts,
};
use crate::storage::domain::{AccessCore, AccessStamp, SessionAsk};
use crate::storage::pull::{LogView, ResumePoint, RowMeta, limit_param};
use crate::storage::{
    AdminRecord, AuditKeyRecord, CommitmentRecord, DeviceId, DeviceRecord, DeviceState, DocStats, Envelope,
    Erasure, HeldTail, MemberErased, NetworkRecord, NewAuditUpload, NewBundle, NewDevice, Org, OrgId,
    Participant, PlanId, PolicyRecord, Reader, Result, ServerEventRecord, StorageError, StoredAuditUpload,
    StoredBundle, StoredName, TailStats, User, UserId,
};

const SERVER_SECRET: &str = "server_secret";
const SERVER_AUDIT_SEED: &str = "server_audit_seed";

/// A log position, size or count as a parameter: the API counts in u64, SQL in i64.
struct Int(u64);

impl ToValue for Int {
    fn to_value(&self) -> statements::Result<Value> {
        i64::try_from(self.0)
            .map(Value::Int)
            .map_err(|e| statements::Error::ToSqlConversionFailure(e.to_string()))
    }
}

fn uint(row: &Row, column: usize) -> statements::Result<u64> {
    let value: i64 = row.get(column)?;
    u64::try_from(value).map_err(|_| statements::Error::IntegralValueOutOfRange(column, value))
}

fn opt_uint(row: &Row, column: usize) -> statements::Result<Option<u64>> {
    row.get::<Option<i64>>(column)?
        .map(|value| {
            u64::try_from(value).map_err(|_| statements::Error::IntegralValueOutOfRange(column, value))
        })
        .transpose()
}

/// The column kinds a conversion error names (rusqlite's `Type`, as far as used here).
#[derive(Debug, Clone, Copy)]
enum Type {
    Integer,
    Text,
}

fn conversion<E: std::fmt::Display>(column: usize, ty: Type, e: E) -> statements::Error {
    statements::Error::FromSqlConversionFailure(column, format!("{ty:?}: {e}"))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadValue(String);

fn document_at(row: &Row, plan: usize, compartment: usize) -> statements::Result<DocumentId> {
    let plan_id: [u8; 16] = row.get(plan)?;
    DocumentId::new(plan_id, row.get(compartment)?).map_err(|e| conversion(compartment, Type::Integer, e))
}

/// The kind in `column`; a snapshot's position is in `covers`.
fn kind_at(row: &Row, column: usize, covers: usize) -> statements::Result<BundleKind> {
    match row.get::<i64>(column)? {
        0 => Ok(BundleKind::Changes),
        1 => Ok(BundleKind::Snapshot { covers: opt_uint(row, covers)?.unwrap_or(0) }),
        other => Err(conversion(column, Type::Integer, BadValue(format!("bundle kind {other}")))),
    }
}

fn state_at(row: &Row, column: usize) -> statements::Result<DeviceState> {
    let text: String = row.get(column)?;
    DeviceState::parse(&text)
        .ok_or_else(|| conversion(column, Type::Text, BadValue(format!("device state {text}"))))
}

fn kind_code(kind: BundleKind) -> i64 {
    match kind {
        BundleKind::Changes => 0,
        BundleKind::Snapshot { .. } => 1,
    }
}

// The network.

pub(super) fn network(conn: &Connection<'_>) -> Result<Option<NetworkRecord>> {
    Ok(conn
        .query_row(
            "SELECT root_public, escrow_public, escrow_signature FROM network WHERE id = 1",
            [],
            |row| {
                Ok(NetworkRecord {
                    root_public: row.get(0)?,
                    escrow_public: row.get(1)?,
                    escrow_signature: row.get(2)?,
                })
            },
        )
        .optional()?)
}

/// False if the network was set before.
pub(super) fn insert_network(tx: &Transaction<'_>, network: &NetworkRecord) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO network (id, root_public, escrow_public, escrow_signature) VALUES (1, $1, $2, $3)
         ON CONFLICT (id) DO NOTHING",
        params![network.root_public, network.escrow_public, network.escrow_signature],
    )?;
    Ok(inserted == 1)
}

/// False if the key is an administrator already.
pub(super) fn insert_admin(tx: &Transaction<'_>, admin: &AdminRecord) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO admins (admin_public, certificate, name) VALUES ($1, $2, $3)
         ON CONFLICT (admin_public) DO NOTHING",
        params![admin.admin_public, admin.certificate, admin.name],
    )?;
    Ok(inserted == 1)
}

pub(super) fn admin(conn: &Connection<'_>, public: &[u8; 32]) -> Result<Option<AdminRecord>> {
    Ok(conn
        .query_row(
            "SELECT admin_public, certificate, name FROM admins WHERE admin_public = $1",
            [public],
            |row| Ok(AdminRecord { admin_public: row.get(0)?, certificate: row.get(1)?, name: row.get(2)? }),
        )
        .optional()?)
}

pub(super) fn server_secret(conn: &Connection<'_>) -> Result<Option<[u8; 32]>> {
    meta_secret(conn, SERVER_SECRET)
}

/// Stores `fresh` unless a secret exists; returns the one that is stored.
pub(super) fn ensure_server_secret(tx: &Transaction<'_>, fresh: &[u8; 32]) -> Result<[u8; 32]> {
    ensure_meta_secret(tx, SERVER_SECRET, fresh)
}

pub(super) fn forget_stale_admin_signatures(tx: &Transaction<'_>, now: i64) -> Result<()> {
    tx.execute("DELETE FROM admin_signatures WHERE stale_after < $1", params![now])?;
    Ok(())
}

/// False if `signature` is stored already.
pub(super) fn insert_admin_signature(
    tx: &Transaction<'_>,
    signature: &[u8; 64],
    stale_after: i64,
) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO admin_signatures (signature, stale_after) VALUES ($1, $2) ON CONFLICT (signature) DO NOTHING",
        params![&signature[..], stale_after],
    )?;
    Ok(inserted == 1)
}

pub(super) fn server_audit_seed(conn: &Connection<'_>) -> Result<Option<[u8; 32]>> {
    meta_secret(conn, SERVER_AUDIT_SEED)
}

/// Stores `fresh` unless a seed exists; returns the one that is stored.
pub(super) fn ensure_server_audit_seed(tx: &Transaction<'_>, fresh: &[u8; 32]) -> Result<[u8; 32]> {
    ensure_meta_secret(tx, SERVER_AUDIT_SEED, fresh)
}

fn meta_secret(conn: &Connection<'_>, name: &str) -> Result<Option<[u8; 32]>> {
    Ok(conn.query_row("SELECT value FROM meta WHERE name = $1", [name], |row| row.get(0)).optional()?)
}

fn ensure_meta_secret(tx: &Transaction<'_>, name: &str, fresh: &[u8; 32]) -> Result<[u8; 32]> {
    tx.execute(
        "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        params![name, fresh],
    )?;
    meta_secret(tx, name)?.ok_or_else(|| StorageError::Corrupt(format!("the meta value {name} vanished")))
}

// Organisations and users.

fn org_from(row: &Row) -> statements::Result<Org> {
    Ok(Org { id: OrgId(row.get(0)?), name: row.get(1)?, lease_hours: row.get(2)? })
}

/// None if the name is taken.
pub(super) fn insert_org(tx: &Transaction<'_>, name: &str, lease_hours: u32) -> Result<Option<OrgId>> {
    Ok(tx
        .query_row(
            "INSERT INTO orgs (name, lease_hours) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING org_id",
            params![name, lease_hours],
            |row| row.get(0).map(OrgId),
        )
        .optional()?)
}

pub(super) fn orgs(conn: &Connection<'_>) -> Result<Vec<Org>> {
    let mut stmt = conn.prepare_cached("SELECT org_id, name, lease_hours FROM orgs ORDER BY org_id")?;
    let rows = stmt.query_map([], org_from)?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

pub(super) fn org_by_name(conn: &Connection<'_>, name: &str) -> Result<Option<Org>> {
    Ok(conn
        .query_row("SELECT org_id, name, lease_hours FROM orgs WHERE name = $1", [name], org_from)
        .optional()?)
}

pub(super) fn org(conn: &Connection<'_>, org: OrgId) -> Result<Option<Org>> {
    Ok(conn
        .query_row("SELECT org_id, name, lease_hours FROM orgs WHERE org_id = $1", [org.0], org_from)
        .optional()?)
}

const USER_COLUMNS: &str = "SELECT user_id, org_id, name, role FROM users";

fn user_from(row: &Row) -> statements::Result<User> {
    Ok(User { id: UserId(row.get(0)?), org: OrgId(row.get(1)?), name: row.get(2)?, role: row.get(3)? })
}

/// None if the organisation has a user of this name.
pub(super) fn insert_user(
    tx: &Transaction<'_>,
    org: OrgId,
    name: &str,
    role: &str,
) -> Result<Option<UserId>> {
    Ok(tx
        .query_row(
            "INSERT INTO users (org_id, name, role) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING RETURNING user_id",
            params![org.0, name, role],
            |row| row.get(0).map(UserId),
        )
        .optional()?)
}

pub(super) fn users(conn: &Connection<'_>) -> Result<Vec<User>> {
    let mut stmt = conn.prepare(&format!("{USER_COLUMNS} ORDER BY user_id"))?;
    let rows = stmt.query_map([], user_from)?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

pub(super) fn user(conn: &Connection<'_>, id: UserId) -> Result<Option<User>> {
    Ok(conn.query_row(&format!("{USER_COLUMNS} WHERE user_id = $1"), [id.0], user_from).optional()?)
}

/// [`crate::storage::backend::ReadRows::user_with_organisation`] in one statement.
pub(super) fn user_with_organisation(conn: &Connection<'_>, id: UserId) -> Result<Option<(User, String)>> {
    Ok(conn
        .query_row(
            "SELECT u.user_id, u.org_id, u.name, u.role, o.name
             FROM users u LEFT JOIN orgs o ON o.org_id = u.org_id WHERE u.user_id = $1",
            [id.0],
            |row| Ok((user_from(row)?, row.get::<Option<String>>(4)?.unwrap_or_default())),
        )
        .optional()?)
}

pub(super) fn users_by_name(conn: &Connection<'_>, name: &str) -> Result<Vec<User>> {
    let mut stmt = conn.prepare(&format!("{USER_COLUMNS} WHERE name = $1 ORDER BY user_id"))?;
    let rows = stmt.query_map([name], user_from)?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

// Enrolment and devices.

/// False if the code id is stored already.
pub(super) fn insert_enrolment(
    tx: &Transaction<'_>,
    code_id: &[u8; 32],
    user: UserId,
    expires_at: i64,
) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO enrolments (code_id, user_id, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (code_id) DO NOTHING",
        params![code_id, user.0, expires_at],
    )?;
    Ok(inserted == 1)
}

/// An unused code's user and expiry.
pub(super) fn unused_enrolment(conn: &Connection<'_>, code_id: &[u8; 32]) -> Result<Option<(UserId, i64)>> {
    Ok(conn
        .query_row(
            "SELECT user_id, expires_at FROM enrolments WHERE code_id = $1 AND used_at IS NULL",
            [code_id],
            |row| Ok((UserId(row.get(0)?), row.get(1)?)),
        )
        .optional()?)
}

pub(super) fn mark_enrolment_used(
    tx: &Transaction<'_>,
    code_id: &[u8; 32],
    device: DeviceId,
    now: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE enrolments SET used_at = $2, used_by = $3 WHERE code_id = $1",
        params![code_id, now, device.0],
    )?;
    Ok(())
}

/// False if the device id exists.
pub(super) fn insert_device(
    tx: &Transaction<'_>,
    device: &NewDevice,
    user: UserId,
    now: i64,
) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO devices (device_id, user_id, signing_public, agreement_public, key_mac, state, created_at,
                              label, platform, label_signature)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9)
         ON CONFLICT (device_id) DO NOTHING",
        params![
            device.device_id.0,
            user.0,
            device.signing_public,
            device.agreement_public,
            device.key_mac,
            now,
            device.name.as_ref().map(|n| &n.label),
            device.name.as_ref().map(|n| &n.platform),
            device.name.as_ref().map(|n| &n.signature),
        ],
    )?;
    Ok(inserted == 1)
}

/// Device rows with their wipe report's time; conditions name the device columns `d.…`.
const DEVICE_COLUMNS: &str = "SELECT d.device_id, d.user_id, d.signing_public, d.agreement_public, \
                              d.certificate, d.state, d.created_at, d.revoked_at, d.key_mac, \
                              d.revocation_reason, w.wiped_at, d.certified_at, d.last_session_at, \
                              d.wipe_nonce_hash, d.label, d.platform, d.label_signature, d.last_seen_at \
                              FROM devices d LEFT JOIN wipe_reports w ON w.device_id = d.device_id";

fn device_from(row: &Row) -> statements::Result<DeviceRecord> {
    device_at(row, 0)
}

/// The device in the columns of [`DEVICE_COLUMNS`], the first of them at `at`.
fn device_at(row: &Row, at: usize) -> statements::Result<DeviceRecord> {
    Ok(DeviceRecord {
        device_id: DeviceId(row.get(at)?),
        user: UserId(row.get(at + 1)?),
        signing_public: row.get(at + 2)?,
        agreement_public: row.get(at + 3)?,
        certificate: row.get(at + 4)?,
        state: state_at(row, at + 5)?,
        created_at: row.get(at + 6)?,
        revoked_at: row.get(at + 7)?,
        key_mac: row.get(at + 8)?,
        revocation_reason: row.get(at + 9)?,
        wiped_at: row.get(at + 10)?,
        certified_at: row.get(at + 11)?,
        last_session_at: row.get(at + 12)?,
        wipe_nonce_hash: row.get(at + 13)?,
        name: match (row.get::<Option<String>>(at + 14)?, row.get(at + 15)?, row.get(at + 16)?) {
            (Some(label), Some(platform), Some(signature)) => Some(StoredName { label, platform, signature }),
            _ => None,
        },
        last_seen_at: row.get(at + 17)?,
    })
}

pub(super) fn devices(conn: &Connection<'_>) -> Result<Vec<DeviceRecord>> {
    let mut stmt = conn.prepare(&format!("{DEVICE_COLUMNS} ORDER BY d.created_at, d.device_id"))?;
    let rows = stmt.query_map([], device_from)?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

pub(super) fn devices_in_state(conn: &Connection<'_>, state: DeviceState) -> Result<Vec<DeviceRecord>> {
    let mut stmt =
        conn.prepare(&format!("{DEVICE_COLUMNS} WHERE d.state = $1 ORDER BY d.created_at, d.device_id"))?;
    let rows = stmt.query_map([state.as_str()], device_from)?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

pub(super) fn devices_of_user(conn: &Connection<'_>, user: UserId) -> Result<Vec<DeviceRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{DEVICE_COLUMNS} WHERE d.user_id = $1 ORDER BY d.created_at, d.device_id"
    ))?;
    let rows = stmt.query_map([user.0], device_from)?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

pub(super) fn device(conn: &Connection<'_>, id: DeviceId) -> Result<Option<DeviceRecord>> {
    Ok(conn.query_row(&format!("{DEVICE_COLUMNS} WHERE d.device_id = $1"), [id.0], device_from).optional()?)
}

pub(super) fn active_devices_of_user(conn: &Connection<'_>, user: UserId) -> Result<Vec<DeviceRecord>> {
    let mut stmt = conn.prepare(&format!(
        "{DEVICE_COLUMNS} WHERE d.user_id = $1 AND d.state = 'active' ORDER BY d.created_at, d.device_id"
    ))?;
    let rows = stmt.query_map([user.0], device_from)?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

pub(super) fn device_state(conn: &Connection<'_>, id: DeviceId) -> Result<Option<DeviceState>> {
    Ok(conn
        .query_row("SELECT state FROM devices WHERE device_id = $1", [id.0], |row| state_at(row, 0))
        .optional()?)
}

pub(super) fn activate_device(tx: &Transaction<'_>, id: DeviceId, certificate: &[u8]) -> Result<()> {
    tx.execute(
        "UPDATE devices SET state = 'active', certificate = $2 WHERE device_id = $1",
        params![id.0, certificate],
    )?;
    Ok(())
}

/// Replaces an active device's certificate, keeping the one it replaces.
pub(super) fn recertify_device(
    tx: &Transaction<'_>,
    id: DeviceId,
    old: (i64, &[u8]),
    certificate: &[u8],
    certified_at: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO device_certificates (device_id, valid_from, certificate) VALUES ($1, $2, $3)
         ON CONFLICT (device_id, valid_from) DO NOTHING",
        params![id.0, old.0, old.1],
    )?;
    tx.execute(
        "UPDATE devices SET certificate = $2, certified_at = $3 WHERE device_id = $1",
        params![id.0, certificate, certified_at],
    )?;
    Ok(())
}

/// A device's replaced certificates, oldest first.
pub(super) fn older_certificates(conn: &Connection<'_>, id: DeviceId) -> Result<Vec<Vec<u8>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT certificate FROM device_certificates WHERE device_id = $1 ORDER BY valid_from",
    )?;
    let rows = stmt.query_map([id.0], |row| row.get(0))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

pub(super) fn set_user_role(tx: &Transaction<'_>, user: UserId, role: &str) -> Result<()> {
    tx.execute("UPDATE users SET role = $2 WHERE user_id = $1", params![user.0, role])?;
    Ok(())
}

pub(super) fn revoke_device(tx: &Transaction<'_>, id: DeviceId, reason: &str, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE devices SET state = 'revoked', revoked_at = $2, revocation_reason = $3 WHERE device_id = $1",
        params![id.0, now, reason],
    )?;
    tx.execute("DELETE FROM envelopes WHERE recipient = $1", [id.0])?;
    Ok(())
}

/// Keeps the first order stored for a device.
pub(super) fn insert_wipe_order(tx: &Transaction<'_>, id: DeviceId, signed: &[u8], now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO wipe_orders (device_id, signed, stored_at) VALUES ($1, $2, $3)
         ON CONFLICT (device_id) DO NOTHING",
        params![id.0, signed, now],
    )?;
    Ok(())
}

/// The order waiting for `id`, if it is revoked.
pub(super) fn wipe_order(conn: &Connection<'_>, id: DeviceId) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row(
            "SELECT o.signed FROM wipe_orders o JOIN devices d ON d.device_id = o.device_id
             WHERE o.device_id = $1 AND d.state = 'revoked'",
            [id.0],
            |row| row.get(0),
        )
        .optional()?)
}

/// Keeps the first report stored for a device.
pub(super) fn insert_wipe_report(tx: &Transaction<'_>, id: DeviceId, signed: &[u8], now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO wipe_reports (device_id, signed, wiped_at) VALUES ($1, $2, $3)
         ON CONFLICT (device_id) DO NOTHING",
        params![id.0, signed, now],
    )?;
    Ok(())
}

/// A session's time and, when given, the nonce hash it registered; forgets a wipe report
/// (true if there was one).
pub(super) fn record_session(
    tx: &Transaction<'_>,
    id: DeviceId,
    wipe_nonce_hash: Option<[u8; 32]>,
    now: i64,
) -> Result<bool> {
    tx.execute(
        "UPDATE devices SET last_session_at = $2, wipe_nonce_hash = COALESCE($3, wipe_nonce_hash)
         WHERE device_id = $1",
        params![id.0, now, wipe_nonce_hash],
    )?;
    Ok(tx.execute("DELETE FROM wipe_reports WHERE device_id = $1", [id.0])? > 0)
}

/// Whether the device exists (and so took the name).
pub(super) fn set_device_name(tx: &Transaction<'_>, id: DeviceId, name: &StoredName) -> Result<bool> {
    Ok(tx.execute(
        "UPDATE devices SET label = $2, platform = $3, label_signature = $4 WHERE device_id = $1",
        params![id.0, name.label, name.platform, name.signature],
    )? == 1)
}

pub(super) fn set_last_seen(tx: &Transaction<'_>, id: DeviceId, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE devices SET last_seen_at = $2 WHERE device_id = $1 AND (last_seen_at IS NULL OR last_seen_at < $2)",
        params![id.0, now],
    )?;
    Ok(())
}

pub(super) fn user_exists(conn: &Connection<'_>, user: UserId) -> Result<bool> {
    Ok(conn.query_row("SELECT 1 FROM users WHERE user_id = $1", [user.0], |_| Ok(())).optional()?.is_some())
}

pub(super) fn key_share_version(conn: &Connection<'_>, device: DeviceId) -> Result<Option<(UserId, i64)>> {
    let sql = "SELECT u.user_id, u.key_share_version FROM devices d JOIN users u ON u.user_id = d.user_id
               WHERE d.device_id = $1";
    Ok(conn.query_row(sql, [device.0], |row| Ok((UserId(row.get(0)?), row.get(1)?))).optional()?)
}

pub(super) fn user_key_share_version(conn: &Connection<'_>, user: UserId) -> Result<Option<i64>> {
    let sql = "SELECT key_share_version FROM users WHERE user_id = $1";
    Ok(conn.query_row(sql, [user.0], |row| row.get(0)).optional()?)
}

// Plans and access.

pub(super) fn plan_creator(conn: &Connection<'_>, plan: &PlanId) -> Result<Option<UserId>> {
    Ok(conn
        .query_row("SELECT creator_user FROM plans WHERE plan_id = $1", [plan], |row| row.get(0).map(UserId))
        .optional()?)
}

pub(super) fn insert_plan(
    tx: &Transaction<'_>,
    plan: &PlanId,
    creator: UserId,
    created_by: DeviceId,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO plans (plan_id, creator_user, created_by, created_at) VALUES ($1, $2, $3, $4)",
        params![plan, creator.0, created_by.0, now],
    )?;
    Ok(())
}

// Membership chains.

pub(super) fn insert_membership(
    tx: &Transaction<'_>,
    plan: &PlanId,
    seq: u32,
    signed: &[u8],
    position: u64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO membership (plan_id, seq, signed, log_seq) VALUES ($1, $2, $3, $4)",
        params![plan, seq, signed, Int(position)],
    )?;
    Ok(())
}

pub(super) fn set_roster(tx: &Transaction<'_>, plan: &PlanId, roster: &[u8], level: &str) -> Result<()> {
    tx.execute("UPDATE plans SET roster = $2, level = $3 WHERE plan_id = $1", params![plan, roster, level])?;
    Ok(())
}

pub(super) fn set_closed_at(tx: &Transaction<'_>, plan: &PlanId, closed_at: i64) -> Result<()> {
    tx.execute("UPDATE plans SET closed_at = $2 WHERE plan_id = $1", params![plan, closed_at])?;
    Ok(())
}

pub(super) fn closed_plans(conn: &Connection<'_>) -> Result<Vec<(PlanId, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT plan_id, closed_at FROM plans WHERE closed_at IS NOT NULL ORDER BY closed_at, plan_id",
    )?;
    let rows = stmt.query_map([], |row| Ok((row.get::<PlanId>(0)?, row.get(1)?)))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

pub(super) fn closed_at(conn: &Connection<'_>, plan: &PlanId) -> Result<Option<i64>> {
    Ok(conn
        .query_row("SELECT closed_at FROM plans WHERE plan_id = $1", [plan], |row| row.get(0))
        .optional()?
        .flatten())
}

pub(super) fn erased_at(conn: &Connection<'_>, plan: &PlanId) -> Result<Option<i64>> {
    Ok(conn
        .query_row("SELECT erased_at FROM erased_plans WHERE plan_id = $1", [plan], |row| row.get(0))
        .optional()?)
}

/// Tables whose rows belong to one plan, besides envelopes and bundles (counted on their
/// own). Children of `plans` come before it.
const PLAN_ROWS: [&str; 8] = [
    "membership_leavers",
    "commitments",
    "rotations",
    "snapshot_requests",
    "pull_resumes",
    "refused_sealers",
    "participants",
    "membership",
];

/// Deletes every row of `plan` and leaves its tombstone.
pub(super) fn erase_plan(tx: &Transaction<'_>, plan: &PlanId, now: i64) -> Result<Erasure> {
    let count = |sql: &str| -> Result<u64> { Ok(tx.execute(sql, [plan])? as u64) };
    let envelopes = count("DELETE FROM envelopes WHERE plan_id = $1")?;
    let escrow_envelopes = count("DELETE FROM escrow_envelopes WHERE plan_id = $1")?;
    let bundles = count("DELETE FROM bundles WHERE plan_id = $1")?;
    for table in PLAN_ROWS {
        tx.execute(&format!("DELETE FROM {table} WHERE plan_id = $1"), [plan])?;
    }
    tx.execute("DELETE FROM plans WHERE plan_id = $1", [plan])?;
    tx.execute("INSERT INTO erased_plans (plan_id, erased_at) VALUES ($1, $2)", params![plan, now])?;
    Ok(Erasure { erased_at: now, envelopes, escrow_envelopes, bundles, already: false })
}

/// The chain length and roster of a plan with a chain; `NotFound` for an unknown plan.
pub(super) fn roster(conn: &Connection<'_>, plan: &PlanId) -> Result<Option<(u32, Vec<u8>)>> {
    let roster: Option<Vec<u8>> = conn
        .query_row("SELECT roster FROM plans WHERE plan_id = $1", [plan], |row| row.get(0))
        .optional()?
        .ok_or(StorageError::NotFound)?;
    let Some(roster) = roster else { return Ok(None) };
    let seq: u32 =
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM membership WHERE plan_id = $1", [plan], |row| {
            row.get(0)
        })?;
    Ok(Some((seq, roster)))
}

pub(super) fn membership_entries(conn: &Connection<'_>, plan: &PlanId, after: u32) -> Result<Vec<Vec<u8>>> {
    let mut stmt =
        conn.prepare_cached("SELECT signed FROM membership WHERE plan_id = $1 AND seq > $2 ORDER BY seq")?;
    let rows = stmt.query_map(params![plan, after], |row| row.get(0))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// (plan, position, entry) of `user`'s plans after `after`: an entry's position is its own,
/// or the user's grant when that is later (a newly granted plan's whole chain at once).
pub(super) fn membership_after(
    conn: &Connection<'_>,
    user: UserId,
    after: u64,
) -> Result<Vec<super::super::PositionedEntry>> {
    // Participants get their plans' chains; a user who left gets the chain up to the entry
    // that removed them, so their devices learn of it from the signed entry.
    let mut stmt = conn.prepare_cached(
        "SELECT plan_id, position, signed FROM (
             SELECT m.plan_id, GREATEST(m.log_seq, p.granted_at_seq) AS position, m.seq, m.signed
             FROM participants p
             JOIN membership m ON m.plan_id = p.plan_id
             WHERE p.user_id = $1 AND (m.log_seq > $2 OR p.granted_at_seq > $2)
             UNION ALL
             SELECT m.plan_id, m.log_seq AS position, m.seq, m.signed
             FROM membership_leavers l
             JOIN membership m ON m.plan_id = l.plan_id AND m.seq <= l.through_seq
             WHERE l.user_id = $1 AND m.log_seq > $2
         ) AS entries
         ORDER BY position, plan_id, seq",
    )?;
    let rows =
        stmt.query_map(params![user.0, Int(after)], |row| Ok((row.get(0)?, uint(row, 1)?, row.get(2)?)))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// Documents of plans with a chain that wait for a new epoch and that `user` reads.
pub(super) fn chartered_rotations_for(conn: &Connection<'_>, user: UserId) -> Result<Vec<DocumentId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT r.plan_id, r.compartment
         FROM rotations r
         JOIN plans pl ON pl.plan_id = r.plan_id AND pl.roster IS NOT NULL
         JOIN participants p ON p.plan_id = r.plan_id AND p.user_id = $1
         JOIN users u ON u.user_id = p.user_id
         JOIN policy_access a ON a.role = u.role AND a.compartment = r.compartment AND a.level = pl.level
         ORDER BY r.plan_id, r.compartment",
    )?;
    let rows = stmt.query_map([user.0], |row| document_at(row, 0, 1))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// The rows of the documents user `$1` reads by the stored policy: each plan the user takes
/// part in, with the policy's rows for the user's role at the plan's level
/// (`p.plan_id`, `a.compartment`, `p.granted_at_seq`, `pl` the plan). The one text of that
/// rule for [`readable`] and the statements that read it with their other facts.
///
/// The role is a scalar subquery, read once: joined as a table, it let the generic plan
/// start from every plan at a level times the role's policy rows and look for the user's
/// participation in each (0.22 ms for a user of one plan among fifty, against 0.07 ms
/// starting from the user's participations, `pgbench` on a copy of `load_bench`'s base,
/// 2026-12-06; the same 0.28 ms either way for a user of 57 plans among 15,000).
macro_rules! users_readable_documents {
    () => {
        "
        FROM participants p
        JOIN plans pl ON pl.plan_id = p.plan_id
        JOIN policy_access a ON a.level = pl.level
            AND a.role = (SELECT u.role FROM users u WHERE u.user_id = $1)
        WHERE p.user_id = $1"
    };
}

/// The current epoch of the document of row `$row` (its `plan_id` and `compartment`): the
/// greatest committed, 0 before any, as [`current_epoch`] reads it alone. The one text of
/// that rule for the statements that read it with their other facts.
macro_rules! current_epoch_of {
    ($row:literal) => {
        concat!(
            "(SELECT COALESCE(MAX(c.epoch), 0) FROM commitments c WHERE c.plan_id = ",
            $row,
            ".plan_id AND c.compartment = ",
            $row,
            ".compartment)"
        )
    };
}

/// Both arrays of a multi-row statement over `documents`: their plans and compartments.
fn document_arrays(documents: &[DocumentId]) -> [Value; 2] {
    [
        Value::ByteStrings(documents.iter().map(|d| d.plan.to_vec()).collect()),
        Value::Ints(documents.iter().map(|d| Some(i64::from(d.compartment))).collect()),
    ]
}

/// The rows of [`LogView::envelopes_after`], for its own statement and `sync_facts_rows!`: the
/// envelopes of device `$device` after position `$after`, at most `$limit`, in order.
macro_rules! mailbox_rows {
    ($device:literal, $after:literal, $limit:literal) => {
        concat!(
            "SELECT position, plan_id, compartment, epoch, bytes FROM envelopes WHERE recipient = ",
            $device,
            " AND position > ",
            $after,
            " ORDER BY position LIMIT ",
            $limit
        )
    };
}

/// The rows of [`LogView::documents_with_news`], for its own statement and `sync_facts_rows!`:
/// of the documents in the arrays `$plans` and `$compartments`, those with a bundle after
/// `$since` that device `$device` did not write. One index probe per document, spelled as a
/// `LATERAL … LIMIT 1` so that no plan can read every bundle after the cursor instead: inside
/// `SYNC_FACTS`, PostgreSQL's generic plan for the same `EXISTS` hashed all bundles after
/// `$since` (psql `EXPLAIN`, 2026-12-06), which for a device long offline is the whole log.
macro_rules! news_rows {
    ($plans:literal, $compartments:literal, $since:literal, $device:literal) => {
        concat!(
            "SELECT d.plan_id, d.compartment FROM unnest(",
            $plans,
            "::bytea[], ",
            $compartments,
            "::bigint[]) AS d (plan_id, compartment)
             CROSS JOIN LATERAL (SELECT 1 FROM bundles b WHERE b.plan_id = d.plan_id
                                 AND b.compartment = d.compartment AND b.seq > ",
            $since,
            " AND b.author <> ",
            $device,
            " LIMIT 1) AS news"
        )
    };
}

/// The rows of [`ReadRows::document_tails`], for its own statement and `sync_facts_rows!`: each
/// document's tail in the columns (snapshot_size, bundles, bytes) and its place (ord). A plain
/// join, left to the planner: forced to probe per document (`LATERAL … LIMIT 1`), a reader's
/// 200 tails took 2.3 ms where a hash join took 0.25 (`load_bench` profile, 2026-12-06).
///
/// [`ReadRows::document_tails`]: crate::storage::backend::ReadRows::document_tails
macro_rules! tail_rows {
    ($plans:literal, $compartments:literal) => {
        concat!(
            "SELECT t.snapshot_size, COALESCE(t.bundles, 0) AS bundles, COALESCE(t.bytes, 0) AS bytes, d.ord
             FROM unnest(",
            $plans,
            "::bytea[], ",
            $compartments,
            "::bigint[]) WITH ORDINALITY AS d (plan_id, compartment, ord)
             LEFT JOIN document_tails t ON t.plan_id = d.plan_id AND t.compartment = d.compartment"
        )
    };
}

/// The reads of [`crate::storage::backend::ReadRows::sync_facts`], each the statement of its
/// single read, as one statement: one round trip per answer where the single reads take
/// eight. Each row carries its read's tag (column 0) and its place in that read's order
/// (column 6, ordered by [`gather_sync_facts`]); the other columns are (n, m, bytes, plan,
/// compartment, k), as each read fills them. Tags 5–7 are the reads asked for ahead
/// (`AheadAsks`: the mailbox, the documents with news, the tails), each its single read's
/// rows as a subquery; an ask not made passes a limit of 0 or empty arrays and reads nothing.
/// Over 5,050 pushes the statement cost 831 ms where its facts and the three reads apart
/// cost 1,209 (`pg_stat_statements`, 2026-12-06; see ARCHITECTURE, "reads ahead"). The
/// user's readable documents, unminted documents, rotations and policy are read with the
/// remembered access (`domain::access`), not here: they cost this statement 0.35–1.45 ms
/// per execution (psql, 2026-12-06). Its arguments are SQL expressions: the parameters
/// `$1`–`$10` in [`SYNC_FACTS`], an answer's columns in [`SYNC_FACTS_OF_GROUP`].
macro_rules! sync_facts_rows {
    ($user:literal, $device:literal, $membership_after:literal, $mail_after:literal, $mail_limit:literal,
     $news_plans:literal, $news_compartments:literal, $since:literal, $tail_plans:literal, $tail_compartments:literal) => {
        concat!(
    "
    SELECT 0 AS tag, head AS n, (SELECT version FROM policy WHERE id = 1) AS m, NULL::bytea AS bytes,
           NULL::bytea AS plan, NULL::bigint AS compartment, 0::bigint AS ord, NULL::bigint AS k
    FROM log_head WHERE id = 1
    UNION ALL
    SELECT 1, position, seq, signed, plan_id, NULL, row_number() OVER (ORDER BY position, plan_id, seq), NULL
    FROM (SELECT m.plan_id, GREATEST(m.log_seq, p.granted_at_seq) AS position, m.seq, m.signed
          FROM participants p
          JOIN membership m ON m.plan_id = p.plan_id
          WHERE p.user_id = ", $user, " AND (m.log_seq > ", $membership_after, " OR p.granted_at_seq > ", $membership_after, ")
          UNION ALL
          SELECT m.plan_id, m.log_seq AS position, m.seq, m.signed
          FROM membership_leavers l
          JOIN membership m ON m.plan_id = l.plan_id AND m.seq <= l.through_seq
          WHERE l.user_id = ", $user, " AND m.log_seq > ", $membership_after, ") AS entries
    UNION ALL
    (SELECT 2, k.version, NULL, k.signed, NULL, NULL, 0, NULL
     FROM audit_keys k JOIN users u ON u.org_id = k.org_id
     WHERE u.user_id = ", $user, " ORDER BY k.version DESC LIMIT 1)
    UNION ALL
    SELECT 3, COALESCE(MAX(last_seq), 0), NULL, NULL, NULL, NULL, 0, NULL FROM audit_uploads WHERE device_id = ", $device, "
    UNION ALL
    SELECT 4, u.key_share_version, u.user_id, NULL, NULL, NULL, 0, NULL
    FROM devices d JOIN users u ON u.user_id = d.user_id WHERE d.device_id = ", $device, "
    UNION ALL
    SELECT 5, e.position, e.epoch, e.bytes, e.plan_id, e.compartment, e.position, NULL FROM (",
    mailbox_rows!($device, $mail_after, $mail_limit),
    ") AS e
    UNION ALL
    SELECT 6, NULL, NULL, NULL, n.plan_id, n.compartment, 0, NULL FROM (",
    news_rows!($news_plans, $news_compartments, $since, $device),
    ") AS n WHERE ", $since, " < (SELECT head FROM log_head WHERE id = 1)
    UNION ALL
    SELECT 7, s.snapshot_size, s.bundles, NULL, NULL, NULL, s.ord, s.bytes FROM (",
    tail_rows!($tail_plans, $tail_compartments),
    ") AS s"
        )
    };
}

/// One answer's facts ([`sync_facts`]).
const SYNC_FACTS: &str = sync_facts_rows!("$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10");

/// [`SYNC_FACTS`] of several answers in one statement ([`sync_facts_of_group`]): each
/// answer's parameters are one element of the arrays `$1`–`$10` (its documents with news and
/// its tails a slice, from the element's bounds, of the arrays `$11`–`$14`), and each row of
/// an answer's facts carries the answer's place (from 1) as a ninth column. Its start-up
/// and round trip are paid once for the group: in `load_bench`'s push phase 1.00 ms of
/// execution per statement of about 13 answers, 0.075 ms each, where [`SYNC_FACTS`] took
/// 0.23 ms each (`EENPLAN_PG_STATEMENTS`, 2026-12-07 and 2026-12-06).
const SYNC_FACTS_OF_GROUP: &str = concat!(
    "SELECT f.*, q.i FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], $4::bigint[], $5::bigint[],
                               $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
         WITH ORDINALITY AS q (user_id, device_id, membership_after, mail_after, mail_limit,
                               news_from, news_to, since, tails_from, tails_to, i)
     CROSS JOIN LATERAL (",
    sync_facts_rows!(
        "q.user_id",
        "q.device_id",
        "q.membership_after",
        "q.mail_after",
        "q.mail_limit",
        "($11::bytea[])[q.news_from:q.news_to]",
        "($12::bigint[])[q.news_from:q.news_to]",
        "q.since",
        "($13::bytea[])[q.tails_from:q.tails_to]",
        "($14::bigint[])[q.tails_from:q.tails_to]"
    ),
    ") AS f"
);

/// One row of [`SYNC_FACTS`], by its tag.
enum SyncFact {
    /// The log head and the policy's version.
    Head(u64, Option<u32>),
    /// A membership entry, with its place in the entries' order.
    Entry(u64, super::super::PositionedEntry),
    AuditKey(u32, Vec<u8>),
    AuditThrough(u64),
    KeyShares(UserId, i64),
    Envelope(u64, Envelope),
    News(DocumentId),
    /// A tail, with its document's place in the ask.
    Tail(u64, TailStats),
}

fn sync_fact_from(row: &Row, device: DeviceId) -> statements::Result<SyncFact> {
    Ok(match row.get::<i64>(0)? {
        0 => SyncFact::Head(uint(row, 1)?, row.get(2)?),
        1 => SyncFact::Entry(uint(row, 6)?, (row.get(4)?, uint(row, 1)?, row.get(3)?)),
        2 => SyncFact::AuditKey(row.get(1)?, row.get(3)?),
        3 => SyncFact::AuditThrough(uint(row, 1)?),
        4 => SyncFact::KeyShares(UserId(row.get(2)?), row.get(1)?),
        5 => SyncFact::Envelope(uint(row, 1)?, envelope_at(row, device, [4, 5, 2, 3])?),
        6 => SyncFact::News(document_at(row, 4, 5)?),
        7 => SyncFact::Tail(uint(row, 6)?, tail_at(row, [1, 2, 7])?),
        other => return Err(conversion(0, Type::Integer, BadValue(format!("sync fact {other}")))),
    })
}

pub(super) fn sync_facts(conn: &Connection<'_>, query: &FactsQuery) -> Result<SyncFacts> {
    let facts =
        conn.query_values(SYNC_FACTS, &sync_facts_params(query)?, |row| sync_fact_from(row, query.device))?;
    gather_sync_facts(facts, query)
}

/// [`SYNC_FACTS_OF_GROUP`]: each query's facts, in the queries' order.
pub(super) fn sync_facts_of_group(conn: &Connection<'_>, queries: &[FactsQuery]) -> Result<Vec<SyncFacts>> {
    if queries.is_empty() {
        return Ok(Vec::new());
    }
    let rows = conn.query_values(SYNC_FACTS_OF_GROUP, &sync_facts_of_group_params(queries)?, |row| {
        let query = member_of_group(row, 8, queries.len())?;
        Ok((query, sync_fact_from(row, queries[query].device)?))
    })?;
    let mut facts: Vec<Vec<SyncFact>> = queries.iter().map(|_| Vec::new()).collect();
    for (query, fact) in rows {
        facts[query].push(fact);
    }
    facts.into_iter().zip(queries).map(|(facts, query)| gather_sync_facts(facts, query)).collect()
}

/// The index of the group's member that row `row` belongs to, from its place (from 1) in
/// column `column`, one of `members`.
fn member_of_group(row: &Row, column: usize, members: usize) -> statements::Result<usize> {
    let place = uint(row, column)?;
    usize::try_from(place)
        .ok()
        .and_then(|place| place.checked_sub(1))
        .filter(|index| *index < members)
        .ok_or_else(|| conversion(column, Type::Integer, BadValue(format!("member {place} of a group"))))
}

/// Appends a group member's `documents` to the group's shared array `shared`, and its
/// bounds there to `from` and `to`: from 1 and inclusive, so that an empty slice ends
/// before it starts.
fn slice_of_group(
    shared: &mut Vec<DocumentId>,
    documents: &[DocumentId],
    from: &mut Vec<Option<i64>>,
    to: &mut Vec<Option<i64>>,
) -> statements::Result<()> {
    let place =
        |n: usize| i64::try_from(n).map_err(|e| statements::Error::ToSqlConversionFailure(e.to_string()));
    from.push(Some(place(shared.len() + 1)?));
    shared.extend_from_slice(documents);
    to.push(Some(place(shared.len())?));
    Ok(())
}

/// The parameters of [`SYNC_FACTS_OF_GROUP`]: [`sync_facts_params`] of each query as one
/// element of each array, its documents with news and its tails appended to shared arrays,
/// with the bounds of its slice ([`slice_of_group`]).
fn sync_facts_of_group_params(queries: &[FactsQuery]) -> statements::Result<Vec<Value>> {
    let int = |n: u64| i64::try_from(n).map_err(|e| statements::Error::ToSqlConversionFailure(e.to_string()));
    let column = || Vec::with_capacity(queries.len());
    let (mut users, mut devices, mut membership_after) =
        (column(), Vec::with_capacity(queries.len()), column());
    let (mut mail_after, mut mail_limit, mut since) = (column(), column(), column());
    let (mut news_from, mut news_to, mut tails_from, mut tails_to) = (column(), column(), column(), column());
    let (mut news, mut tails) = (Vec::<DocumentId>::new(), Vec::<DocumentId>::new());
    for query in queries {
        let FactsQuery { user, device, membership_after: after, ref ahead } = *query;
        let (mailbox_after, limit) = ahead.mailbox.unwrap_or((0, 0));
        let (news_of, news_since) =
            ahead.news.as_ref().map_or((&[][..], 0), |(documents, since)| (documents.as_slice(), *since));
        users.push(Some(user.0));
        devices.push(device.0.to_vec());
        membership_after.push(Some(int(after)?));
        mail_after.push(Some(int(mailbox_after)?));
        mail_limit.push(Some(int(limit_param(limit))?));
        since.push(Some(int(news_since)?));
        slice_of_group(&mut news, news_of, &mut news_from, &mut news_to)?;
        slice_of_group(&mut tails, ahead.tails.as_deref().unwrap_or(&[]), &mut tails_from, &mut tails_to)?;
    }
    let [news_plans, news_compartments] = document_arrays(&news);
    let [tail_plans, tail_compartments] = document_arrays(&tails);
    Ok(vec![
        Value::Ints(users),
        Value::ByteStrings(devices),
        Value::Ints(membership_after),
        Value::Ints(mail_after),
        Value::Ints(mail_limit),
        Value::Ints(news_from),
        Value::Ints(news_to),
        Value::Ints(since),
        Value::Ints(tails_from),
        Value::Ints(tails_to),
        news_plans,
        news_compartments,
        tail_plans,
        tail_compartments,
    ])
}

/// The parameters of [`SYNC_FACTS`] for `query`. An ask not made reads nothing: no envelope
/// under a limit of 0, no document of an empty array.
fn sync_facts_params(query: &FactsQuery) -> statements::Result<Vec<Value>> {
    let FactsQuery { user, device, membership_after, ref ahead } = *query;
    let (after, limit) = ahead.mailbox.unwrap_or((0, 0));
    let (news, since) =
        ahead.news.as_ref().map_or((&[][..], 0), |(documents, since)| (documents.as_slice(), *since));
    let [news_plans, news_compartments] = document_arrays(news);
    let [tail_plans, tail_compartments] = document_arrays(ahead.tails.as_deref().unwrap_or(&[]));
    Ok(vec![
        user.0.to_value()?,
        Value::Bytes(device.0.to_vec()),
        Int(membership_after).to_value()?,
        Int(after).to_value()?,
        Int(limit_param(limit)).to_value()?,
        news_plans,
        news_compartments,
        Int(since).to_value()?,
        tail_plans,
        tail_compartments,
    ])
}

/// The rows of [`SYNC_FACTS`] as [`SyncFacts`], each read's rows in that read's order (the
/// statement leaves them unordered: sorting them here spares PostgreSQL a sort of every row).
fn gather_sync_facts(facts: Vec<SyncFact>, query: &FactsQuery) -> Result<SyncFacts> {
    let ahead = &query.ahead;
    let mut out = SyncFacts {
        head: 0,
        policy: None,
        membership: Vec::new(),
        audit_key: None,
        audit_through: 0,
        key_shares: None,
        ahead: AheadReads {
            device: Some(query.device),
            mailbox: ahead.mailbox.map(|ask| (ask, Vec::new())),
            news: ahead.news.clone().map(|ask| (ask, HashSet::new())),
            tails: ahead.tails.clone().map(|ask| (ask, Vec::new())),
        },
    };
    let (mut head, mut entries, mut tails) = (None, Vec::new(), Vec::new());
    for fact in facts {
        match fact {
            SyncFact::Head(seq, policy) => {
                head = Some(seq);
                out.policy = policy;
            }
            SyncFact::Entry(ord, entry) => entries.push((ord, entry)),
            SyncFact::AuditKey(version, signed) => out.audit_key = Some((version, signed)),
            SyncFact::AuditThrough(through) => out.audit_through = through,
            SyncFact::KeyShares(user, version) => out.key_shares = Some((user, version)),
            SyncFact::Envelope(position, envelope) => out
                .ahead
                .mailbox
                .as_mut()
                .ok_or_else(|| asked_for_nothing("an envelope"))?
                .1
                .push((position, envelope)),
            SyncFact::News(document) => {
                out.ahead.news.as_mut().ok_or_else(|| asked_for_nothing("news"))?.1.insert(document);
            }
            SyncFact::Tail(ord, tail) => tails.push((ord, tail)),
        }
    }
    // As `head` alone: the row is made with the schema, so its absence is an error.
    out.head = head.ok_or(statements::Error::QueryReturnedNoRows)?;
    entries.sort_unstable_by_key(|(ord, _)| *ord);
    out.membership = entries.into_iter().map(|(_, entry)| entry).collect();
    if let Some((_, envelopes)) = out.ahead.mailbox.as_mut() {
        envelopes.sort_unstable_by_key(|(position, _)| *position);
    }
    if let Some((_, read)) = out.ahead.tails.as_mut() {
        tails.sort_unstable_by_key(|(ord, _)| *ord);
        *read = tails.into_iter().map(|(_, tail)| tail).collect();
    } else if !tails.is_empty() {
        return Err(asked_for_nothing("a tail").into());
    }
    // The news are not read from a cursor at the head or past it (the statement's filter).
    out.ahead.news = out.ahead.news.filter(|((_, since), _)| *since < out.head);
    Ok(out)
}

/// A row of a read that was not asked for: the statement does not match this code.
fn asked_for_nothing(what: &str) -> statements::Error {
    conversion(0, Type::Integer, BadValue(format!("{what} read ahead without an ask")))
}

/// [`ReadRows::access_stamp`] in one statement: the stamp (tag 0: the user's key-share
/// version and the policy's version) and each document's current epoch (tag 1), in the
/// columns (tag, n, plan, compartment, ord; the policy's version in `compartment`). A
/// statement of its own, not [`USER_ACCESS`] with its reads gated off by the stamp (tried
/// first): the large statement's plan cost 0.13 ms per execution to start and end with every
/// read skipped, this one 0.03 ms (psql, generic plans, on a copy of `load_bench`'s base,
/// 2026-12-06, each above a trivial statement's round trip).
///
/// [`ReadRows::access_stamp`]: crate::storage::backend::ReadRows::access_stamp
const ACCESS_STAMP: &str = concat!(
    "
    SELECT 0 AS tag, u.key_share_version AS n, NULL::bytea AS plan,
           (SELECT version FROM policy WHERE id = 1) AS compartment, 0::bigint AS ord
    FROM users u WHERE u.user_id = $1
    UNION ALL
    SELECT 1, ",
    current_epoch_of!("d"),
    ", d.plan_id, d.compartment, d.ord
    FROM unnest($2::bytea[], $3::bigint[]) WITH ORDINALITY AS d (plan_id, compartment, ord)
    ORDER BY tag, ord"
);

pub(super) fn access_stamp(
    conn: &Connection<'_>,
    user: UserId,
    documents: &[DocumentId],
) -> Result<Option<StampRead>> {
    let [plans, compartments] = document_arrays(documents);
    let (mut stamp, mut epochs) = (None, Vec::new());
    conn.query_values(ACCESS_STAMP, &[Value::Int(user.0), plans, compartments], |row| {
        match row.get::<i64>(0)? {
            0 => stamp = Some(AccessStamp { key_shares: row.get(1)?, policy: row.get(3)? }),
            1 => epochs.push((document_at(row, 2, 3)?, row.get(1)?)),
            other => return Err(conversion(0, Type::Integer, BadValue(format!("access stamp {other}")))),
        }
        Ok(())
    })?;
    Ok(stamp.map(|stamp| StampRead { stamp, epochs }))
}

/// [`ReadRows::sync_session`] in one statement, one round trip where the session's device
/// read and the stamp were two: the device with its user, the organisation's name and the
/// stamp (tag 0), and each document's current epoch (tag 1). The columns are (tag, n, plan,
/// compartment, ord) as in [`ACCESS_STAMP`] (n: the key-share version or the epoch; the
/// policy's version in `compartment`), then the device's as [`DEVICE_COLUMNS`] names them
/// (5–22), then the user's (23–26: id, organisation, name, role) and the organisation's
/// name (27). The user is joined left, so that a device whose user is missing is still
/// found (and its sync refused as the fault it is).
///
/// The user, its organisation and the wipe report are each looked up by key from the
/// device's row (a lateral subquery kept whole by `OFFSET 0`, scalar subqueries): joined as
/// tables, the generic plan hashed every user to find one, and the statement cost what the
/// two it replaces cost together (`pgbench`, prepared with parameters, on a copy of
/// `load_bench`'s base, 2026-12-06: 0.075–0.089 ms joined, 0.065–0.068 looked up, 0.078–0.083
/// for the two statements, each with its round trip).
///
/// Its arguments are SQL expressions: the parameters `$1`–`$3` in [`SYNC_SESSION`], a
/// session's columns in [`SYNC_SESSIONS_OF_GROUP`].
///
/// [`ReadRows::sync_session`]: crate::storage::backend::ReadRows::sync_session
macro_rules! sync_session_rows {
    ($device:literal, $plans:literal, $compartments:literal) => {
        concat!(
            "
    SELECT 0 AS tag, u.key_share_version AS n, NULL::bytea AS plan,
           (SELECT version FROM policy WHERE id = 1) AS compartment, 0::bigint AS ord,
           d.device_id, d.user_id, d.signing_public, d.agreement_public, d.certificate, d.state,
           d.created_at, d.revoked_at, d.key_mac, d.revocation_reason,
           (SELECT w.wiped_at FROM wipe_reports w WHERE w.device_id = d.device_id),
           d.certified_at, d.last_session_at, d.wipe_nonce_hash, d.label, d.platform,
           d.label_signature, d.last_seen_at,
           u.user_id, u.org_id, u.name, u.role, u.organisation
    FROM devices d LEFT JOIN LATERAL (
        SELECT u.user_id, u.org_id, u.name, u.role, u.key_share_version,
               (SELECT o.name FROM orgs o WHERE o.org_id = u.org_id) AS organisation
        FROM users u WHERE u.user_id = d.user_id OFFSET 0
    ) u ON true
    WHERE d.device_id = ",
            $device,
            "
    UNION ALL
    SELECT 1, ",
            current_epoch_of!("e"),
            ", e.plan_id, e.compartment, e.ord,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM unnest(",
            $plans,
            "::bytea[], ",
            $compartments,
            "::bigint[]) WITH ORDINALITY AS e (plan_id, compartment, ord)"
        )
    };
}

/// One session ([`sync_session`]).
const SYNC_SESSION: &str = concat!(sync_session_rows!("$1", "$2", "$3"), " ORDER BY tag, ord");

/// [`SYNC_SESSION`] of several syncs in one statement ([`sync_sessions`]): each session's
/// device is one element of `$1`, its documents a slice, from the element's bounds in `$2`
/// and `$3`, of the arrays `$4` and `$5`; each row carries the session's place (from 1) as
/// its first column, before [`SYNC_SESSION`]'s. Its start-up and round trip are paid once
/// for the group.
const SYNC_SESSIONS_OF_GROUP: &str = concat!(
    "SELECT q.i, s.* FROM unnest($1::bytea[], $2::bigint[], $3::bigint[])
         WITH ORDINALITY AS q (device_id, documents_from, documents_to, i)
     CROSS JOIN LATERAL (",
    sync_session_rows!(
        "q.device_id",
        "($4::bytea[])[q.documents_from:q.documents_to]",
        "($5::bigint[])[q.documents_from:q.documents_to]"
    ),
    ") AS s ORDER BY q.i, s.tag, s.ord"
);

/// The device column that [`SYNC_SESSION`]'s device starts at, and its user's.
const SESSION_DEVICE_AT: usize = 5;
const SESSION_USER_AT: usize = 23;

pub(super) fn sync_session(
    conn: &Connection<'_>,
    device: DeviceId,
    documents: &[DocumentId],
) -> Result<Option<SessionRead>> {
    let [plans, compartments] = document_arrays(documents);
    let mut session = SessionRows::default();
    let values = [Value::Bytes(device.0.to_vec()), plans, compartments];
    conn.query_values(SYNC_SESSION, &values, |row| session.add(row, 0))?;
    Ok(session.read())
}

/// [`SYNC_SESSIONS_OF_GROUP`]: each ask's session, in the asks' order.
pub(super) fn sync_sessions(conn: &Connection<'_>, asks: &[SessionAsk]) -> Result<Vec<Option<SessionRead>>> {
    if asks.is_empty() {
        return Ok(Vec::new());
    }
    let (mut devices, mut from, mut to, mut documents) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ask in asks {
        devices.push(ask.device.0.to_vec());
        slice_of_group(&mut documents, &ask.documents, &mut from, &mut to)?;
    }
    let [plans, compartments] = document_arrays(&documents);
    let values = [Value::ByteStrings(devices), Value::Ints(from), Value::Ints(to), plans, compartments];
    let mut sessions: Vec<SessionRows> = asks.iter().map(|_| SessionRows::default()).collect();
    conn.query_values(SYNC_SESSIONS_OF_GROUP, &values, |row| {
        let session = member_of_group(row, 0, sessions.len())?;
        sessions[session].add(row, 1)
    })?;
    Ok(sessions.into_iter().map(SessionRows::read).collect())
}

/// The rows of one session of [`SYNC_SESSION`] (its columns from `at` on), gathered.
#[derive(Default)]
struct SessionRows {
    session: Option<SessionRead>,
    epochs: Vec<(DocumentId, u32)>,
}

impl SessionRows {
    fn add(&mut self, row: &Row, at: usize) -> statements::Result<()> {
        match row.get::<i64>(at)? {
            0 => self.session = Some(session_from(row, at)?),
            1 => self.epochs.push((document_at(row, at + 2, at + 3)?, row.get(at + 1)?)),
            other => return Err(conversion(at, Type::Integer, BadValue(format!("session row {other}")))),
        }
        Ok(())
    }

    fn read(self) -> Option<SessionRead> {
        let SessionRows { session, epochs } = self;
        session.map(|mut session| {
            if let Some(stamp) = &mut session.stamp {
                stamp.epochs = epochs;
            }
            session
        })
    }
}

/// The device, its user with the organisation's name, and the stamp (its epochs still to
/// come) of [`SYNC_SESSION`]'s first row, its columns from `at` on; the user and stamp
/// `None` when the user is missing.
fn session_from(row: &Row, at: usize) -> statements::Result<SessionRead> {
    let device = device_at(row, at + SESSION_DEVICE_AT)?;
    let user_at = at + SESSION_USER_AT;
    let Some(user) = row.get::<Option<i64>>(user_at)? else {
        return Ok(SessionRead { device, user: None, stamp: None });
    };
    let user = User {
        id: UserId(user),
        org: OrgId(row.get(user_at + 1)?),
        name: row.get(user_at + 2)?,
        role: row.get(user_at + 3)?,
    };
    let organisation = row.get::<Option<String>>(user_at + 4)?.unwrap_or_default();
    let stamp = AccessStamp { key_shares: row.get(at + 1)?, policy: row.get(at + 3)? };
    Ok(SessionRead {
        device,
        user: Some((user, organisation)),
        stamp: Some(StampRead { stamp, epochs: Vec::new() }),
    })
}

/// [`ReadRows::user_access`] in one statement, one round trip instead of seven or more.
/// Each row carries its read's tag (column 0) and its place in that read's order (column 8):
/// the user with the organisation's name (0), the readable documents with their grant
/// positions (1), the plans' levels (2), the policy (3), the epochs of the documents asked
/// for that are readable (4), the stamp (5: the user's key-share version and the policy's
/// version, read with the rest), the readable documents without a key yet (6) and the
/// chartered rotations with their documents' current epochs (7). The readable documents are
/// joined once (`readable`), for themselves, the unminted ones and the rotations. The other
/// columns are (n, plan, compartment, t1, t2, t3, bytes), as each read fills them.
///
/// [`ReadRows::user_access`]: crate::storage::backend::ReadRows::user_access
const USER_ACCESS: &str = concat!(
    "
    WITH readable AS MATERIALIZED (
        SELECT p.plan_id, a.compartment, p.granted_at_seq, pl.roster IS NOT NULL AS chartered",
    users_readable_documents!(),
    ")
    SELECT 0 AS tag, u.org_id AS n, NULL::bytea AS plan, NULL::bigint AS compartment,
           u.name AS t1, u.role AS t2, o.name AS t3, NULL::bytea AS bytes, 0::bigint AS ord
    FROM users u LEFT JOIN orgs o ON o.org_id = u.org_id WHERE u.user_id = $1
    UNION ALL
    SELECT 1, granted_at_seq, plan_id, compartment, NULL, NULL, NULL, NULL,
           row_number() OVER (ORDER BY plan_id, compartment)
    FROM readable
    UNION ALL
    SELECT 2, NULL, p.plan_id, NULL, pl.level, NULL, NULL, NULL, row_number() OVER (ORDER BY p.plan_id)
    FROM participants p JOIN plans pl ON pl.plan_id = p.plan_id WHERE p.user_id = $1
    UNION ALL
    SELECT 3, NULL, NULL, NULL, NULL, NULL, NULL, signed, 0 FROM policy WHERE id = 1
    UNION ALL
    SELECT 4, ",
    current_epoch_of!("d"),
    ",
           d.plan_id, d.compartment, NULL, NULL, NULL, NULL, d.ord
    FROM unnest($2::bytea[], $3::bigint[]) WITH ORDINALITY AS d (plan_id, compartment, ord)
    WHERE EXISTS (SELECT 1 FROM readable r WHERE r.plan_id = d.plan_id AND r.compartment = d.compartment)
    UNION ALL
    SELECT 5, u.key_share_version, NULL, (SELECT version FROM policy WHERE id = 1), NULL, NULL, NULL, NULL, 0
    FROM users u WHERE u.user_id = $1
    UNION ALL
    SELECT 6, NULL, r.plan_id, r.compartment, NULL, NULL, NULL, NULL,
           row_number() OVER (ORDER BY r.plan_id, r.compartment)
    FROM readable r
    WHERE NOT EXISTS (SELECT 1 FROM commitments c WHERE c.plan_id = r.plan_id AND c.compartment = r.compartment)
    UNION ALL
    SELECT 7, ",
    current_epoch_of!("r"),
    ",
           r.plan_id, r.compartment, NULL, NULL, NULL, NULL, row_number() OVER (ORDER BY r.plan_id, r.compartment)
    FROM readable r
    WHERE r.chartered AND EXISTS (SELECT 1 FROM rotations q WHERE q.plan_id = r.plan_id AND q.compartment = r.compartment)
    ORDER BY tag, ord"
);

/// One row of [`USER_ACCESS`], by its tag.
enum AccessRow {
    User { org: OrgId, name: String, role: String, organisation: Option<String> },
    Readable(DocumentId, u64),
    Level(PlanId, String),
    Policy(Vec<u8>),
    Epoch(DocumentId, u32),
    Stamp(AccessStamp),
    Unminted(DocumentId),
    Rotation(DocumentId, u32),
}

fn access_row_from(row: &Row) -> statements::Result<AccessRow> {
    Ok(match row.get::<i64>(0)? {
        0 => AccessRow::User {
            org: OrgId(row.get(1)?),
            name: row.get(4)?,
            role: row.get(5)?,
            organisation: row.get(6)?,
        },
        1 => AccessRow::Readable(document_at(row, 2, 3)?, uint(row, 1)?),
        2 => AccessRow::Level(row.get(2)?, row.get(4)?),
        3 => AccessRow::Policy(row.get(7)?),
        4 => AccessRow::Epoch(document_at(row, 2, 3)?, row.get(1)?),
        5 => AccessRow::Stamp(AccessStamp { key_shares: row.get(1)?, policy: row.get(3)? }),
        6 => AccessRow::Unminted(document_at(row, 2, 3)?),
        7 => AccessRow::Rotation(document_at(row, 2, 3)?, row.get(1)?),
        other => return Err(conversion(0, Type::Integer, BadValue(format!("access fact {other}")))),
    })
}

pub(super) fn user_access(
    conn: &Connection<'_>,
    user: UserId,
    documents: &[DocumentId],
) -> Result<Option<AccessRead>> {
    let [plans, compartments] = document_arrays(documents);
    let rows = conn.query_values(USER_ACCESS, &[Value::Int(user.0), plans, compartments], access_row_from)?;
    let (mut found, mut stamp) = (None, None);
    let (mut readable, mut plan_levels, mut signed_policy, mut epochs) =
        (Vec::new(), Vec::new(), None, Vec::new());
    let (mut unminted, mut rotations) = (Vec::new(), Vec::new());
    for row in rows {
        match row {
            AccessRow::User { org, name, role, organisation } => {
                found = Some((User { id: user, org, name, role }, organisation.unwrap_or_default()))
            }
            AccessRow::Readable(document, granted) => readable.push((document, granted)),
            AccessRow::Level(plan, level) => plan_levels.push((plan, level)),
            AccessRow::Policy(signed) => signed_policy = Some(signed),
            AccessRow::Epoch(document, epoch) => epochs.push((document, epoch)),
            AccessRow::Stamp(read) => stamp = Some(read),
            AccessRow::Unminted(document) => unminted.push(document),
            AccessRow::Rotation(document, epoch) => rotations.push((document, epoch)),
        }
    }
    // As the single reads: an unknown user is `None` before the policy is looked at.
    let Some((user, organisation)) = found else { return Ok(None) };
    // Both come from the user's row, in one snapshot.
    let stamp = stamp.ok_or_else(|| StorageError::Corrupt("a user's access without its stamp".into()))?;
    let policy = signed_policy.map(PolicyRecord::from_stored).transpose()?.map(std::sync::Arc::new);
    let core = AccessCore { user, organisation, policy, plan_levels, readable, unminted, rotations };
    Ok(Some(AccessRead { stamp, core, epochs }))
}

/// [`ReadRows::admission_facts`] in one statement: one round trip per group commit inside
/// its write transaction, instead of three per pushed bundle. The authors' states (tag 0:
/// id, state) and each document's current epoch and whether a rotation waits (tag 1: plan,
/// compartment, epoch, rotating).
///
/// [`ReadRows::admission_facts`]: crate::storage::backend::ReadRows::admission_facts
const ADMISSION_FACTS: &str = concat!(
    "
    SELECT 0 AS tag, d.device_id AS id, NULL::bigint AS compartment, d.state AS state,
           NULL::bigint AS epoch, NULL::boolean AS rotating
    FROM devices d WHERE d.device_id = ANY ($1::bytea[])
    UNION ALL
    SELECT 1, q.plan_id, q.compartment, NULL, ",
    current_epoch_of!("q"),
    ",
           EXISTS (SELECT 1 FROM rotations r WHERE r.plan_id = q.plan_id AND r.compartment = q.compartment
                   AND r.queued_epoch < $4)
    FROM unnest($2::bytea[], $3::bigint[]) AS q (plan_id, compartment)"
);

pub(super) fn admission_facts(
    conn: &Connection<'_>,
    authors: &[DeviceId],
    documents: &[DocumentId],
) -> Result<AdmissionFacts> {
    let ids = Value::ByteStrings(authors.iter().map(|a| a.0.to_vec()).collect());
    let [plans, compartments] = document_arrays(documents);
    let mut facts = AdmissionFacts::default();
    let values = [ids, plans, compartments, Value::Int(i64::from(u32::MAX))];
    conn.query_values(ADMISSION_FACTS, &values, |row| {
        match row.get::<i64>(0)? {
            0 => {
                if state_at(row, 3)? == DeviceState::Revoked {
                    facts.revoked.insert(DeviceId(row.get(1)?));
                }
            }
            1 => {
                let document = document_at(row, 1, 2)?;
                if row.get::<bool>(5)? {
                    facts.rotating.insert(document);
                }
                facts.epochs.insert(document, row.get(4)?);
            }
            other => return Err(conversion(0, Type::Integer, BadValue(format!("admission fact {other}")))),
        }
        Ok(())
    })?;
    Ok(facts)
}

/// Takes the next `n` log positions and returns the last of them.
pub(super) fn advance_head(tx: &Transaction<'_>, n: u64) -> Result<u64> {
    Ok(tx.query_row("UPDATE log_head SET head = head + $1 WHERE id = 1 RETURNING head", [Int(n)], |row| {
        uint(row, 0)
    })?)
}

pub(super) fn participant_role(conn: &Connection<'_>, plan: &PlanId, user: UserId) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT plan_role FROM participants WHERE plan_id = $1 AND user_id = $2",
            params![plan, user.0],
            |row| row.get(0),
        )
        .optional()?)
}

pub(super) fn insert_participant(
    tx: &Transaction<'_>,
    plan: &PlanId,
    user: UserId,
    plan_role: &str,
    granted_at_seq: u64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO participants (plan_id, user_id, plan_role, granted_at_seq) VALUES ($1, $2, $3, $4)",
        params![plan, user.0, plan_role, Int(granted_at_seq)],
    )?;
    Ok(())
}

pub(super) fn set_participant_role(
    tx: &Transaction<'_>,
    plan: &PlanId,
    user: UserId,
    plan_role: &str,
) -> Result<()> {
    tx.execute(
        "UPDATE participants SET plan_role = $3 WHERE plan_id = $1 AND user_id = $2",
        params![plan, user.0, plan_role],
    )?;
    Ok(())
}

/// Remembers that entry `seq` of `plan`'s chain removed `user` (see `membership_after`).
pub(super) fn record_leaver(tx: &Transaction<'_>, plan: &PlanId, user: UserId, seq: u32) -> Result<()> {
    tx.execute(
        "INSERT INTO membership_leavers (plan_id, user_id, through_seq) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, plan_id) DO UPDATE SET through_seq = $3",
        params![plan, user.0, seq],
    )?;
    Ok(())
}

/// A user who takes part again is a participant, not a leaver.
pub(super) fn forget_leaver(tx: &Transaction<'_>, plan: &PlanId, user: UserId) -> Result<()> {
    tx.execute("DELETE FROM membership_leavers WHERE plan_id = $1 AND user_id = $2", params![plan, user.0])?;
    Ok(())
}

pub(super) fn delete_participant(tx: &Transaction<'_>, plan: &PlanId, user: UserId) -> Result<()> {
    tx.execute("DELETE FROM participants WHERE plan_id = $1 AND user_id = $2", params![plan, user.0])?;
    tx.execute(
        "DELETE FROM envelopes WHERE plan_id = $1
           AND recipient IN (SELECT device_id FROM devices WHERE user_id = $2)",
        params![plan, user.0],
    )?;
    Ok(())
}

pub(super) fn participants(conn: &Connection<'_>, plan: &PlanId) -> Result<Vec<Participant>> {
    let mut stmt = conn.prepare(
        "SELECT user_id, plan_role, granted_at_seq FROM participants WHERE plan_id = $1 ORDER BY user_id",
    )?;
    let rows = stmt.query_map([plan], |row| {
        Ok(Participant { user: UserId(row.get(0)?), plan_role: row.get(1)?, granted_at_seq: uint(row, 2)? })
    })?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// The plans `user` participates in, with their escalation level.
pub(super) fn plan_levels_of_user(conn: &Connection<'_>, user: UserId) -> Result<Vec<(PlanId, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.plan_id, pl.level FROM participants p JOIN plans pl ON pl.plan_id = p.plan_id
         WHERE p.user_id = $1 ORDER BY p.plan_id",
    )?;
    let rows = stmt.query_map([user.0], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// The plans `user` participates in.
pub(super) fn plans_of_user(conn: &Connection<'_>, user: UserId) -> Result<Vec<PlanId>> {
    let mut stmt =
        conn.prepare_cached("SELECT plan_id FROM participants WHERE user_id = $1 ORDER BY plan_id")?;
    let rows = stmt.query_map([user.0], |row| row.get(0))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// (document, granted_at_seq) of every document `user` may read: the participant's plans
/// joined with the compartments the user's role reads under the stored policy.
pub(super) fn readable(conn: &Connection<'_>, user: UserId) -> Result<Vec<(DocumentId, u64)>> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT p.plan_id, a.compartment, p.granted_at_seq",
        users_readable_documents!(),
        " ORDER BY p.plan_id, a.compartment"
    ))?;
    let rows = stmt.query_map([user.0], |row| Ok((document_at(row, 0, 1)?, uint(row, 2)?)))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// The readable documents of one plan for `user`.
pub(super) fn readable_in_plan(
    conn: &Connection<'_>,
    plan: &PlanId,
    user: UserId,
) -> Result<Vec<DocumentId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.plan_id, a.compartment
         FROM participants p
         JOIN plans pl ON pl.plan_id = p.plan_id
         JOIN users u ON u.user_id = p.user_id
         JOIN policy_access a ON a.role = u.role AND a.level = pl.level
         WHERE p.plan_id = $1 AND p.user_id = $2
         ORDER BY a.compartment",
    )?;
    let rows = stmt.query_map(params![plan, user.0], |row| document_at(row, 0, 1))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

// The log.

/// Waits for the head row's lock and holds it to the end of the transaction: writers take
/// turns, across every process on the database.
pub(super) fn lock_head(tx: &Transaction<'_>) -> Result<()> {
    Ok(tx.query_row("SELECT head FROM log_head WHERE id = 1 FOR UPDATE", [], |_| Ok(()))?)
}

pub(super) fn head(conn: &Connection<'_>) -> Result<u64> {
    Ok(conn.query_row("SELECT head FROM log_head WHERE id = 1", [], |row| uint(row, 0))?)
}

pub(super) fn seq_of_bundle(conn: &Connection<'_>, bundle_id: &[u8; 16]) -> Result<Option<u64>> {
    Ok(conn
        .prepare_cached("SELECT seq FROM bundles WHERE bundle_id = $1")?
        .query_row([bundle_id], |row| uint(row, 0))
        .optional()?)
}

/// Appends the bundles whose ids are not stored at consecutive positions from `first`, in one
/// statement: a group commit of N pushes is one round trip here, not N. The positions are
/// numbered after the stored ids are left out (`row_number` runs after `WHERE`), so they
/// stay consecutive; every write holds the head row's lock, so no other transaction can
/// store one of the ids between the check and the insert, and the positions returned are
/// checked all the same.
pub(super) fn append_bundles(
    tx: &Transaction<'_>,
    first: u64,
    bundles: &[(&NewBundle, Option<u64>)],
) -> Result<Vec<Option<u64>>> {
    let appended: HashMap<[u8; 16], u64> = tx
        .query_values(
            "WITH fresh AS (
                 SELECT i.*, $1::bigint - 1 + row_number() OVER (ORDER BY i.ord) AS seq
                 FROM UNNEST($2::bytea[], $3::bigint[], $4::bytea[], $5::bytea[], $6::bigint[],
                             $7::bigint[], $8::bigint[], $9::bigint[], $10::bytea[], $11::bigint[])
                      WITH ORDINALITY AS i(plan_id, compartment, bundle_id, author, epoch, kind,
                                           covers_seq, size, bytes, received_at, ord)
                 WHERE NOT EXISTS (SELECT 1 FROM bundles b WHERE b.bundle_id = i.bundle_id))
             INSERT INTO bundles (seq, plan_id, compartment, bundle_id, author, epoch, kind, covers_seq,
                                  size, bytes, received_at)
             SELECT seq, plan_id, compartment, bundle_id, author, epoch, kind, covers_seq, size, bytes,
                    received_at
             FROM fresh ORDER BY seq
             ON CONFLICT (bundle_id) DO NOTHING
             RETURNING bundle_id, seq",
            &bundle_columns(first, bundles)?,
            |row| Ok((row.get(0)?, uint(row, 1)?)),
        )?
        .into_iter()
        .collect();
    let positions: Vec<Option<u64>> =
        bundles.iter().map(|(b, _)| appended.get(&b.bundle_id).copied()).collect();
    let consecutive = positions.iter().flatten().copied().eq(first..first + appended.len() as u64);
    if !consecutive || positions.iter().flatten().count() != appended.len() {
        return Err(StorageError::Corrupt("appended bundles did not take consecutive positions".into()));
    }
    Ok(positions)
}

/// The parameters of [`append_bundles`]: the first position, then one array per column.
fn bundle_columns(first: u64, bundles: &[(&NewBundle, Option<u64>)]) -> Result<Vec<Value>> {
    let int = |v: u64| {
        i64::try_from(v).map_err(|_| StorageError::Corrupt(format!("log position {v} is out of range")))
    };
    let ints = |f: fn(&NewBundle) -> i64| Value::Ints(bundles.iter().map(|(b, _)| Some(f(b))).collect());
    let bytes =
        |f: fn(&NewBundle) -> &[u8]| Value::ByteStrings(bundles.iter().map(|(b, _)| f(b).to_vec()).collect());
    let covers = bundles.iter().map(|&(_, covers)| covers.map(int).transpose()).collect::<Result<_>>()?;
    let sizes = bundles
        .iter()
        .map(|(b, _)| {
            let size = i64::try_from(b.bytes.len());
            Ok(Some(size.map_err(|_| StorageError::InvalidState("bundle too large".into()))?))
        })
        .collect::<Result<_>>()?;
    Ok(vec![
        Value::Int(int(first)?),
        bytes(|b| &b.document.plan),
        ints(|b| i64::from(b.document.compartment)),
        bytes(|b| &b.bundle_id),
        bytes(|b| &b.author.0),
        ints(|b| i64::from(b.epoch)),
        ints(|b| kind_code(b.kind)),
        Value::Ints(covers),
        Value::Ints(sizes),
        bytes(|b| &b.bytes),
        ints(|b| b.received_at),
    ])
}

pub(super) fn set_head(tx: &Transaction<'_>, head: u64) -> Result<()> {
    tx.execute("UPDATE log_head SET head = $1 WHERE id = 1", [Int(head)])?;
    Ok(())
}

pub(super) fn document_stats(conn: &Connection<'_>, document: DocumentId) -> Result<DocStats> {
    let bundles = conn.query_row(
        "SELECT COUNT(*) FROM bundles WHERE plan_id = $1 AND compartment = $2",
        params![document.plan, document.compartment],
        |row| uint(row, 0),
    )?;
    let latest = conn.latest_snapshot(document, i64::MAX as u64)?;
    let latest_snapshot_covers = latest.as_ref().map(|s| s.covers_seq.unwrap_or(0));
    let latest_snapshot_bytes = latest.map(|s| s.size);
    let (bundles_since_snapshot, bytes_since_snapshot) = conn.query_row(
        "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM bundles
         WHERE plan_id = $1 AND compartment = $2 AND kind = 0 AND seq > $3",
        params![document.plan, document.compartment, Int(latest_snapshot_covers.unwrap_or(0))],
        |row| Ok((uint(row, 0)?, uint(row, 1)?)),
    )?;
    Ok(DocStats {
        bundles,
        bundles_since_snapshot,
        bytes_since_snapshot,
        latest_snapshot_covers,
        latest_snapshot_bytes,
    })
}

/// The documents `device` holds a key of (`held_keys`' union) and whether it holds the
/// current epoch's key, by document: the text [`held_tails`] and [`held_documents`] share.
macro_rules! held_keys_with_current {
    () => {
        "WITH held AS (
             SELECT plan_id, compartment FROM envelopes WHERE recipient = $1
             UNION
             SELECT plan_id, compartment FROM commitments WHERE minter_device = $1)
         SELECT h.plan_id, h.compartment,
                EXISTS (SELECT 1 FROM envelopes e WHERE e.recipient = $1 AND e.plan_id = h.plan_id
                        AND e.compartment = h.compartment AND e.epoch = k.epoch)
                OR EXISTS (SELECT 1 FROM commitments c WHERE c.plan_id = h.plan_id
                           AND c.compartment = h.compartment AND c.epoch = k.epoch AND c.minter_device = $1)"
    };
}

/// The held documents' tails, in one round trip: the documents `device` holds a key of,
/// whether it holds the current epoch's key, and each one's tail after its newest snapshot as
/// `document_tails` keeps it (migration 6; a document without bundles has no row there, and
/// no tail).
pub(super) fn held_tails(conn: &Connection<'_>, device: DeviceId) -> Result<Vec<HeldTail>> {
    let mut stmt = conn.prepare_cached(concat!(
        held_keys_with_current!(),
        ",
                t.snapshot_size, COALESCE(t.bundles, 0), COALESCE(t.bytes, 0)
         FROM held h
         CROSS JOIN LATERAL (
             SELECT COALESCE(MAX(c.epoch), 0) AS epoch FROM commitments c
             WHERE c.plan_id = h.plan_id AND c.compartment = h.compartment) k
         LEFT JOIN document_tails t ON t.plan_id = h.plan_id AND t.compartment = h.compartment
         ORDER BY h.plan_id, h.compartment"
    ))?;
    let rows = stmt.query_map([device.0], |row| {
        Ok(HeldTail {
            document: document_at(row, 0, 1)?,
            current_key_held: row.get(2)?,
            tail: tail_at(row, [3, 4, 5])?,
        })
    })?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// [`crate::storage::backend::ReadRows::held_documents`]: [`held_tails`] without the tails.
pub(super) fn held_documents(conn: &Connection<'_>, device: DeviceId) -> Result<Vec<(DocumentId, bool)>> {
    let mut stmt = conn.prepare_cached(concat!(
        held_keys_with_current!(),
        "
         FROM held h
         CROSS JOIN LATERAL (
             SELECT COALESCE(MAX(c.epoch), 0) AS epoch FROM commitments c
             WHERE c.plan_id = h.plan_id AND c.compartment = h.compartment) k
         ORDER BY h.plan_id, h.compartment"
    ))?;
    let rows = stmt.query_map([device.0], |row| Ok((document_at(row, 0, 1)?, row.get(2)?)))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// [`crate::storage::backend::ReadRows::document_tails`]: the rows `document_tails` keeps of
/// `documents`, in their order (none for a document without bundles: an empty tail).
pub(super) fn document_tails(conn: &Connection<'_>, documents: &[DocumentId]) -> Result<Vec<TailStats>> {
    let [plans, compartments] = document_arrays(documents);
    Ok(conn.query_values(
        concat!(tail_rows!("$1", "$2"), " ORDER BY d.ord"),
        &[plans, compartments],
        |row| tail_at(row, [0, 1, 2]),
    )?)
}

/// A tail from the columns of the newest snapshot's size, the bundles and the bytes after it.
fn tail_at(row: &Row, [snapshot, bundles, bytes]: [usize; 3]) -> statements::Result<TailStats> {
    Ok(TailStats {
        latest_snapshot_bytes: opt_uint(row, snapshot)?,
        bundles_since_snapshot: uint(row, bundles)?,
        bytes_since_snapshot: uint(row, bytes)?,
    })
}

/// An envelope of `device` from the columns (plan, compartment, epoch, bytes).
fn envelope_at(
    row: &Row,
    device: DeviceId,
    [plan, compartment, epoch, bytes]: [usize; 4],
) -> statements::Result<Envelope> {
    Ok(Envelope {
        recipient: device,
        document: document_at(row, plan, compartment)?,
        epoch: row.get(epoch)?,
        bytes: row.get(bytes)?,
    })
}

/// A stored bundle's columns, for [`stored_bundle_from`].
const STORED_BUNDLE_COLUMNS: &str = "SELECT seq, plan_id, compartment, bundle_id, author, epoch, kind, covers_seq, bytes, received_at FROM bundles";

fn stored_bundle_from(row: &Row) -> statements::Result<StoredBundle> {
    Ok(StoredBundle {
        seq: uint(row, 0)?,
        document: document_at(row, 1, 2)?,
        bundle_id: row.get(3)?,
        author: DeviceId(row.get(4)?),
        epoch: row.get(5)?,
        kind: kind_at(row, 6, 7)?,
        covers_seq: opt_uint(row, 7)?,
        bytes: row.get(8)?,
        received_at: row.get(9)?,
    })
}

/// Rows a change scan reads per statement.
const SCAN_PAGE: u64 = 256;

fn meta_from(row: &Row) -> statements::Result<RowMeta> {
    Ok(RowMeta {
        seq: uint(row, 0)?,
        author: DeviceId(row.get(1)?),
        covers_seq: opt_uint(row, 2)?,
        size: uint(row, 3)?,
    })
}

/// The pull's reads, in the transaction that holds the connection.
impl LogView for Connection<'_> {
    fn head(&self) -> Result<u64> {
        head(self)
    }

    fn readable(&self, user: UserId) -> Result<Vec<(DocumentId, u64)>> {
        readable(self, user)
    }

    fn latest_snapshot(&self, document: DocumentId, through: u64) -> Result<Option<RowMeta>> {
        // `kind = 1` spelled out so the partial index snapshots_by_document applies; `+seq`
        // keeps the planner from walking the document's whole log by seq instead.
        Ok(self
            .prepare_cached(
                "SELECT seq, author, covers_seq, size FROM bundles
                 WHERE plan_id = $1 AND compartment = $2 AND kind = 1 AND +seq <= $3
                 ORDER BY covers_seq DESC, seq DESC LIMIT 1",
            )?
            .query_row(params![document.plan, document.compartment, Int(through)], meta_from)
            .optional()?)
    }

    fn documents_with_news(
        &self,
        documents: &[DocumentId],
        since: u64,
        device: DeviceId,
    ) -> Result<HashSet<DocumentId>> {
        if documents.is_empty() {
            return Ok(HashSet::new());
        }
        let [plans, compartments] = document_arrays(documents);
        let rows = self.query_values(
            news_rows!("$1", "$2", "$3", "$4"),
            &[plans, compartments, Int(since).to_value()?, Value::Bytes(device.0.to_vec())],
            |row| document_at(row, 0, 1),
        )?;
        Ok(rows.into_iter().collect())
    }

    fn first_snapshot(&self, document: DocumentId) -> Result<Option<RowMeta>> {
        Ok(self
            .prepare_cached(
                "SELECT seq, author, covers_seq, size FROM bundles
                 WHERE plan_id = $1 AND compartment = $2 AND kind = 1
                 ORDER BY seq LIMIT 1",
            )?
            .query_row(params![document.plan, document.compartment], meta_from)
            .optional()?)
    }

    fn nth_change_back(&self, document: DocumentId, through: u64, nth: u64) -> Result<Option<u64>> {
        // A backward walk of at most `nth` index entries, however long the log.
        Ok(self
            .prepare_cached(
                "SELECT seq FROM bundles
                 WHERE plan_id = $1 AND compartment = $2 AND seq <= $3 AND kind = 0
                 ORDER BY seq DESC LIMIT 1 OFFSET $4",
            )?
            .query_row(
                params![document.plan, document.compartment, Int(through), Int(nth.saturating_sub(1))],
                |row| uint(row, 0),
            )
            .optional()?)
    }

    fn scan_changes(
        &self,
        document: DocumentId,
        after: u64,
        visit: &mut dyn FnMut(RowMeta) -> bool,
    ) -> Result<()> {
        // In pages, so that a long log is not read into memory when the visit stops early.
        let mut after = after;
        loop {
            let page = self
                .prepare_cached(
                    "SELECT seq, author, covers_seq, size FROM bundles
                     WHERE plan_id = $1 AND compartment = $2 AND seq > $3 AND kind = 0
                     ORDER BY seq LIMIT $4",
                )?
                .query_map(
                    params![document.plan, document.compartment, Int(after), Int(SCAN_PAGE)],
                    meta_from,
                )?
                .collect::<statements::Result<Vec<_>>>()?;
            let full = page.len() as u64 == SCAN_PAGE;
            for meta in page {
                after = meta.seq;
                if !visit(meta) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn next_author(&self, document: DocumentId, after: Option<DeviceId>) -> Result<Option<DeviceId>> {
        // One seek in bundles_by_author; an empty blob sorts before every id.
        let after: &[u8] = after.as_ref().map_or(&[], |a| &a.0[..]);
        Ok(self
            .prepare_cached(
                "SELECT author FROM bundles
                 WHERE plan_id = $1 AND compartment = $2 AND kind = 0 AND author > $3
                 ORDER BY author LIMIT 1",
            )?
            .query_row(params![document.plan, document.compartment, after], |row| row.get(0).map(DeviceId))
            .optional()?)
    }

    fn newest_change_by(
        &self,
        document: DocumentId,
        author: DeviceId,
        through: u64,
    ) -> Result<Option<RowMeta>> {
        Ok(self
            .prepare_cached(
                "SELECT seq, author, covers_seq, size FROM bundles
                 WHERE plan_id = $1 AND compartment = $2 AND kind = 0 AND author = $3 AND seq <= $4
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![document.plan, document.compartment, author.0, Int(through)], meta_from)
            .optional()?)
    }

    fn envelopes_after(&self, device: DeviceId, after: u64, limit: usize) -> Result<Vec<(u64, Envelope)>> {
        let mut stmt = self.prepare_cached(mailbox_rows!("$1", "$2", "$3"))?;
        let rows = stmt.query_map(params![device.0, Int(after), Int(limit_param(limit))], |row| {
            Ok((uint(row, 0)?, envelope_at(row, device, [1, 2, 3, 4])?))
        })?;
        Ok(rows.collect::<statements::Result<_>>()?)
    }

    fn resume_point(&self, device: DeviceId, token: u64) -> Result<Option<ResumePoint>> {
        Ok(self
            .prepare_cached(
                "SELECT block_seq, plan_id, compartment, after_seq, seen_head FROM pull_resumes
                 WHERE token = $1 AND device_id = $2",
            )?
            .query_row(params![Int(token), device.0], |row| {
                Ok(ResumePoint {
                    block: uint(row, 0)?,
                    document: document_at(row, 1, 2)?,
                    after: uint(row, 3)?,
                    seen_head: uint(row, 4)?,
                })
            })
            .optional()?)
    }

    fn fetch(&self, seq: u64) -> Result<StoredBundle> {
        Ok(self
            .prepare_cached(&format!("{STORED_BUNDLE_COLUMNS} WHERE seq = $1"))?
            .query_row([Int(seq)], stored_bundle_from)?)
    }

    /// One statement per [`FETCH_CHUNK`] bundles of a page instead of one per bundle, which
    /// was most of PostgreSQL's time per delivered bundle.
    fn fetch_many(&self, seqs: &[u64]) -> Result<Vec<StoredBundle>> {
        let mut bundles = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(FETCH_CHUNK) {
            bundles.extend(fetch_chunk(self, chunk)?);
        }
        Ok(bundles)
    }
}

/// Bundles read per statement. The client holds a statement's rows until they are all
/// converted, so a page's bytes are held twice over only for one chunk, not the whole page.
const FETCH_CHUNK: usize = 64;

/// The bundles at `seqs`, in that order, in one statement.
fn fetch_chunk(conn: &Connection<'_>, seqs: &[u64]) -> Result<Vec<StoredBundle>> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let wanted =
        seqs.iter().map(|&seq| i64::try_from(seq).map(Some)).collect::<std::result::Result<Vec<_>, _>>();
    let wanted = wanted.map_err(|_| StorageError::Corrupt("a log position beyond i64".into()))?;
    let mut found: HashMap<u64, StoredBundle> = conn
        .query_values(
            &format!("{STORED_BUNDLE_COLUMNS} WHERE seq = ANY($1::bigint[])"),
            &[Value::Ints(wanted)],
            stored_bundle_from,
        )?
        .into_iter()
        .map(|bundle| (bundle.seq, bundle))
        .collect();
    // Moved out when each position is asked once, as a page asks; copied otherwise.
    let once = seqs.iter().collect::<std::collections::HashSet<_>>().len() == seqs.len();
    seqs.iter()
        .map(|seq| {
            let bundle = if once { found.remove(seq) } else { found.get(seq).cloned() };
            bundle.ok_or_else(|| StorageError::Corrupt(format!("no bundle at position {seq}")))
        })
        .collect()
}

/// Stores where a page stopped inside a history block and returns its token. The device's
/// other points go, except the one it presented (it may present it again when this answer is
/// lost), so a device has at most two.
pub(super) fn insert_resume_point(
    tx: &Transaction<'_>,
    device: DeviceId,
    point: &ResumePoint,
    presented: Option<u64>,
) -> Result<u64> {
    let token = tx
        .prepare_cached(
            "INSERT INTO pull_resumes (device_id, block_seq, plan_id, compartment, after_seq, seen_head)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING token",
        )?
        .query_row(
            params![
                device.0,
                Int(point.block),
                point.document.plan,
                point.document.compartment,
                Int(point.after),
                Int(point.seen_head)
            ],
            |row| uint(row, 0),
        )?;
    tx.prepare_cached("DELETE FROM pull_resumes WHERE device_id = $1 AND token <> $2 AND token <> $3")?
        .execute(params![device.0, Int(token), Int(presented.unwrap_or(token))])?;
    Ok(token)
}

// Snapshot requests.

/// Drops the requests made before `before`.
pub(super) fn expire_snapshot_requests(tx: &Transaction<'_>, before: i64) -> Result<()> {
    tx.prepare_cached("DELETE FROM snapshot_requests WHERE requested_at < $1")?.execute([before])?;
    Ok(())
}

/// (document, covers) of `device`'s requests made at or after `since`.
pub(super) fn snapshot_requests_of(
    conn: &Connection<'_>,
    device: DeviceId,
    since: i64,
) -> Result<Vec<(DocumentId, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT plan_id, compartment, covers_seq FROM snapshot_requests
         WHERE device_id = $1 AND requested_at >= $2 ORDER BY plan_id, compartment",
    )?;
    let rows =
        stmt.query_map(params![device.0, since], |row| Ok((document_at(row, 0, 1)?, uint(row, 2)?)))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// Whether a device other than `device` was asked for a snapshot of `document` at or after
/// `since`.
pub(super) fn snapshot_requested_elsewhere(
    conn: &Connection<'_>,
    document: DocumentId,
    device: DeviceId,
    since: i64,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM snapshot_requests
             WHERE plan_id = $1 AND compartment = $2 AND device_id <> $3 AND first_asked_at >= $4 LIMIT 1",
        )?
        .query_row(params![document.plan, document.compartment, device.0, since], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Records (or renews) `device`'s request for a snapshot of `document` covering `covers`.
pub(super) fn upsert_snapshot_request(
    tx: &Transaction<'_>,
    device: DeviceId,
    document: DocumentId,
    covers: u64,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO snapshot_requests (device_id, plan_id, compartment, covers_seq, requested_at, first_asked_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (device_id, plan_id, compartment)
         DO UPDATE SET covers_seq = excluded.covers_seq, requested_at = excluded.requested_at",
    )?
    .execute(params![device.0, document.plan, document.compartment, Int(covers), now])?;
    Ok(())
}

/// Consumes `device`'s request for a snapshot of `document` covering exactly `covers`, made
/// at or after `since`; false when there is none.
pub(super) fn take_snapshot_request(
    tx: &Transaction<'_>,
    device: DeviceId,
    document: DocumentId,
    covers: u64,
    since: i64,
) -> Result<bool> {
    let taken = tx
        .prepare_cached(
            "DELETE FROM snapshot_requests
             WHERE device_id = $1 AND plan_id = $2 AND compartment = $3 AND covers_seq = $4
               AND requested_at >= $5",
        )?
        .execute(params![device.0, document.plan, document.compartment, Int(covers), since])?;
    Ok(taken == 1)
}

// Key envelopes.

/// Stores an envelope at a new log position unless the recipient has one for its (document,
/// epoch): the first stays. The recipient's next sync after its cursor delivers it, and later
/// syncs do not repeat it. False if one was there.
pub(super) fn insert_envelope(
    tx: &Transaction<'_>,
    envelope: &Envelope,
    sealer: Option<DeviceId>,
) -> Result<bool> {
    if envelope_sealer(tx, envelope.recipient, envelope.document, envelope.epoch)?.is_some() {
        return Ok(false);
    }
    // Checked first, so no log position is spent on an envelope that is not stored.
    let position = advance_head(tx, 1)?;
    tx.prepare_cached(
        "INSERT INTO envelopes (recipient, plan_id, compartment, epoch, bytes, position, sealer)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )?
    .execute(params![
        envelope.recipient.0,
        envelope.document.plan,
        envelope.document.compartment,
        envelope.epoch,
        envelope.bytes,
        Int(position),
        sealer.map(|s| s.0),
    ])?;
    Ok(true)
}

/// `Some(sealer)` when the recipient holds an envelope of (document, epoch); the sealer is
/// `None` when not known (an administrator's rotation).
pub(super) fn envelope_sealer(
    conn: &Connection<'_>,
    recipient: DeviceId,
    document: DocumentId,
    epoch: u32,
) -> Result<Option<Option<DeviceId>>> {
    Ok(conn
        .prepare_cached(
            "SELECT sealer FROM envelopes
             WHERE recipient = $1 AND plan_id = $2 AND compartment = $3 AND epoch = $4",
        )?
        .query_row(params![recipient.0, document.plan, document.compartment, epoch], |row| {
            Ok(row.get::<Option<[u8; 16]>>(0)?.map(DeviceId))
        })
        .optional()?)
}

pub(super) fn delete_envelope(
    tx: &Transaction<'_>,
    recipient: DeviceId,
    document: DocumentId,
    epoch: u32,
) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM envelopes WHERE recipient = $1 AND plan_id = $2 AND compartment = $3 AND epoch = $4",
    )?
    .execute(params![recipient.0, document.plan, document.compartment, epoch])?;
    Ok(())
}

pub(super) fn insert_refused_sealer(
    tx: &Transaction<'_>,
    recipient: DeviceId,
    document: DocumentId,
    epoch: u32,
    sealer: DeviceId,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO refused_sealers (recipient, plan_id, compartment, epoch, sealer) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![recipient.0, document.plan, document.compartment, epoch, sealer.0])?;
    Ok(())
}

pub(super) fn sealer_refused(
    conn: &Connection<'_>,
    recipient: DeviceId,
    document: DocumentId,
    epoch: u32,
    sealer: DeviceId,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM refused_sealers
             WHERE recipient = $1 AND plan_id = $2 AND compartment = $3 AND epoch = $4 AND sealer = $5",
        )?
        .query_row(params![recipient.0, document.plan, document.compartment, epoch, sealer.0], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The first escrow envelope of a (document, epoch) stays: it comes from the key's creator,
/// and no later participant may replace it with one the escrow key cannot open. False if one
/// was there.
pub(super) fn insert_escrow_envelope(tx: &Transaction<'_>, envelope: &Envelope) -> Result<bool> {
    Ok(tx
        .prepare_cached(
            "INSERT INTO escrow_envelopes (plan_id, compartment, epoch, bytes) VALUES ($1, $2, $3, $4)
             ON CONFLICT (plan_id, compartment, epoch) DO NOTHING",
        )?
        .execute(params![
            envelope.document.plan,
            envelope.document.compartment,
            envelope.epoch,
            envelope.bytes
        ])?
        == 1)
}

pub(super) fn escrow_envelopes(conn: &Connection<'_>, plan: &[u8; 16]) -> Result<Vec<Envelope>> {
    let mut stmt = conn.prepare(
        "SELECT plan_id, compartment, epoch, bytes FROM escrow_envelopes WHERE plan_id = $1
         ORDER BY compartment, epoch",
    )?;
    let rows = stmt.query_map([&plan[..]], |row| {
        Ok(Envelope {
            recipient: DeviceId(eenplan_protocol::api::ESCROW_RECIPIENT),
            document: document_at(row, 0, 1)?,
            epoch: row.get(2)?,
            bytes: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

pub(super) fn envelopes_for(conn: &Connection<'_>, device: DeviceId, since: u64) -> Result<Vec<Envelope>> {
    let mut stmt = conn.prepare(
        "SELECT plan_id, compartment, epoch, bytes FROM envelopes WHERE recipient = $1 AND position > $2
         ORDER BY position",
    )?;
    let rows = stmt.query_map(params![device.0, Int(since)], |row| {
        Ok(Envelope {
            recipient: device,
            document: document_at(row, 0, 1)?,
            epoch: row.get(2)?,
            bytes: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// [`readers`] of `document` that hold no `epoch`, in one statement: asked on every sync for
/// every key the syncing device holds, so it reads ids, not whole device rows.
pub(super) fn devices_missing_envelope(
    conn: &Connection<'_>,
    document: DocumentId,
    epoch: u32,
) -> Result<Vec<DeviceId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.device_id FROM devices d
         LEFT JOIN wipe_reports w ON w.device_id = d.device_id
         JOIN participants p ON p.user_id = d.user_id
         JOIN plans pl ON pl.plan_id = p.plan_id
         JOIN users u ON u.user_id = p.user_id
         JOIN policy_access a ON a.role = u.role AND a.compartment = $2 AND a.level = pl.level
         WHERE p.plan_id = $1 AND d.state = 'active' AND w.wiped_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM envelopes e WHERE e.recipient = d.device_id
                           AND e.plan_id = $1 AND e.compartment = $2 AND e.epoch = $3)
           AND NOT EXISTS (SELECT 1 FROM commitments c WHERE c.minter_device = d.device_id
                           AND c.plan_id = $1 AND c.compartment = $2 AND c.epoch = $3)
         ORDER BY d.device_id",
    )?;
    let ids = stmt
        .query_map(params![document.plan, document.compartment, epoch], |row| Ok(DeviceId(row.get(0)?)))?
        .collect::<statements::Result<Vec<_>>>()?;
    Ok(ids)
}

/// [`devices_missing_envelope`] of each key `device` holds, in one statement (one round trip
/// instead of one per held key): the devices entitled to each held key, less those that hold
/// it, as two sets.
///
/// Set against set, not a probe per candidate: with a probe (`NOT EXISTS` per device and key)
/// the planner, planning generically (no value of `$1` to estimate from), probed the
/// envelopes by recipient alone and filtered every envelope of each device, or started from
/// every active device of the network and each held key. Either was half of PostgreSQL's time
/// per push in `load_bench`, and 17 ms per idle sync of a reader of 200 documents
/// (2026-12-05; on `scripts/pg-region-scale.sql`, a regisseur's 220 keys: 11.8 ms, now 4.8).
/// The first two steps are materialised, so that the rest
/// starts from sets as small as the keys the device holds: the keys; the users entitled to
/// read each (the plan's participants whose role reads the compartment at the plan's
/// level). Then their active, not wiped devices, less the envelopes and commitments of
/// those keys.
pub(super) fn devices_missing_held_keys(
    conn: &Connection<'_>,
    device: DeviceId,
) -> Result<Vec<(DocumentId, u32, DeviceId)>> {
    let mut stmt = conn.prepare_cached(
        "WITH held (plan_id, compartment, epoch) AS MATERIALIZED (
             SELECT plan_id, compartment, epoch FROM envelopes WHERE recipient = $1
             UNION
             SELECT plan_id, compartment, epoch FROM commitments WHERE minter_device = $1),
         entitled (plan_id, compartment, epoch, user_id) AS MATERIALIZED (
             SELECT h.plan_id, h.compartment, h.epoch, p.user_id
             FROM held h
             JOIN participants p ON p.plan_id = h.plan_id
             JOIN plans pl ON pl.plan_id = h.plan_id
             JOIN users u ON u.user_id = p.user_id
             JOIN policy_access a ON a.role = u.role AND a.compartment = h.compartment AND a.level = pl.level)
         SELECT plan_id, compartment, epoch, device_id FROM (
             SELECT r.plan_id, r.compartment, r.epoch, d.device_id
             FROM entitled r
             JOIN devices d ON d.user_id = r.user_id
             WHERE d.state = 'active'
               AND NOT EXISTS (SELECT 1 FROM wipe_reports w WHERE w.device_id = d.device_id)
             EXCEPT
             SELECT e.plan_id, e.compartment, e.epoch, e.recipient
             FROM held h
             JOIN envelopes e ON e.plan_id = h.plan_id AND e.compartment = h.compartment AND e.epoch = h.epoch
             EXCEPT
             SELECT c.plan_id, c.compartment, c.epoch, c.minter_device
             FROM held h
             JOIN commitments c ON c.plan_id = h.plan_id AND c.compartment = h.compartment AND c.epoch = h.epoch
             WHERE c.minter_device IS NOT NULL) AS missing
         ORDER BY plan_id, compartment, epoch, device_id",
    )?;
    let rows = stmt.query_map(params![device.0], |row| {
        Ok((document_at(row, 0, 1)?, row.get(2)?, DeviceId(row.get(3)?)))
    })?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// The active, not wiped devices of the participants whose role may read `document`, each
/// with the epochs it holds: by envelope, or because it made the key.
pub(super) fn readers(conn: &Connection<'_>, document: DocumentId) -> Result<Vec<Reader>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{DEVICE_COLUMNS}
         JOIN participants p ON p.user_id = d.user_id
         JOIN plans pl ON pl.plan_id = p.plan_id
         JOIN users u ON u.user_id = p.user_id
         JOIN policy_access a ON a.role = u.role AND a.compartment = $2 AND a.level = pl.level
         WHERE p.plan_id = $1 AND d.state = 'active' AND w.wiped_at IS NULL
         ORDER BY d.device_id"
    ))?;
    let devices = stmt
        .query_map(params![document.plan, document.compartment], device_from)?
        .collect::<statements::Result<Vec<_>>>()?;
    let mut held = conn.prepare_cached(
        "SELECT epoch FROM envelopes WHERE recipient = $1 AND plan_id = $2 AND compartment = $3
         UNION
         SELECT epoch FROM commitments WHERE minter_device = $1 AND plan_id = $2 AND compartment = $3
         ORDER BY epoch",
    )?;
    let mut out = Vec::with_capacity(devices.len());
    for device in devices {
        let held_epochs = held
            .query_map(params![device.device_id.0, document.plan, document.compartment], |row| row.get(0))?
            .collect::<statements::Result<Vec<u32>>>()?;
        out.push(Reader { device, held_epochs });
    }
    Ok(out)
}

// Revocation lists.

/// The newest stored version, or version `version`: (version, signed bytes).
pub(super) fn revocation_list(conn: &Connection<'_>, version: Option<u32>) -> Result<Option<(u32, Vec<u8>)>> {
    let row = |row: &Row| Ok((row.get::<u32>(0)?, row.get::<Vec<u8>>(1)?));
    Ok(match version {
        None => conn
            .query_row("SELECT version, signed FROM revocation_lists ORDER BY version DESC LIMIT 1", [], row)
            .optional()?,
        Some(version) => conn
            .query_row("SELECT version, signed FROM revocation_lists WHERE version = $1", [version], row)
            .optional()?,
    })
}

pub(super) fn insert_revocation_list(
    tx: &Transaction<'_>,
    version: u32,
    signed: &[u8],
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO revocation_lists (version, signed, stored_at) VALUES ($1, $2, $3)",
        params![version, signed, now],
    )?;
    Ok(())
}

/// Records that `device` is listed, from `version` on (a device listed before keeps its
/// first version).
pub(super) fn insert_revocation_entry(tx: &Transaction<'_>, device: DeviceId, version: u32) -> Result<()> {
    tx.execute(
        "INSERT INTO revocation_entries (device_id, version) VALUES ($1, $2) ON CONFLICT (device_id) DO NOTHING",
        params![device.0, version],
    )?;
    Ok(())
}

pub(super) fn on_revocation_list(conn: &Connection<'_>, device: DeviceId) -> Result<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM revocation_entries WHERE device_id = $1", [device.0], |_| Ok(()))
        .optional()?
        .is_some())
}

// The sharing policy.

pub(super) fn policy(conn: &Connection<'_>) -> Result<Option<PolicyRecord>> {
    let signed: Option<Vec<u8>> =
        conn.query_row("SELECT signed FROM policy WHERE id = 1", [], |row| row.get(0)).optional()?;
    signed.map(PolicyRecord::from_stored).transpose()
}

/// An earlier (or the current) signed policy, by version.
pub(super) fn policy_version(conn: &Connection<'_>, version: u32) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row("SELECT signed FROM policy_history WHERE version = $1", [version], |row| row.get(0))
        .optional()?)
}

/// Replaces the policy and its materialised table.
pub(super) fn replace_policy(tx: &Transaction<'_>, record: &PolicyRecord, now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO policy (id, version, signed, installed_at) VALUES (1, $1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, signed = excluded.signed,
                                        installed_at = excluded.installed_at",
        params![record.policy.version, record.signed, now],
    )?;
    tx.execute(
        "INSERT INTO policy_history (version, signed) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING",
        params![record.policy.version, record.signed],
    )?;
    tx.execute("DELETE FROM policy_access", [])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO policy_access (level, role, compartment, may_write) VALUES ($1, $2, $3, $4)",
    )?;
    let policy = &record.policy;
    let roles: std::collections::BTreeSet<&String> =
        policy.roles.keys().chain(policy.levels.values().flat_map(|roles| roles.keys())).collect();
    for level in eenplan_protocol::policy::LEVELS {
        for role in &roles {
            for compartment in 0..DocumentId::COMPARTMENTS {
                if policy.may_read_at(role, compartment, level) {
                    let writes = policy.may_write_at(role, compartment, level);
                    insert.execute(params![level, role, compartment, i64::from(writes)])?;
                }
            }
        }
    }
    Ok(())
}

/// (plan, user) of every participant whose user has `role`.
pub(super) fn participants_with_role(conn: &Connection<'_>, role: &str) -> Result<Vec<(PlanId, UserId)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.plan_id, p.user_id FROM participants p JOIN users u ON u.user_id = p.user_id
         WHERE u.role = $1 ORDER BY p.plan_id, p.user_id",
    )?;
    let rows = stmt.query_map([role], |row| Ok((row.get(0)?, UserId(row.get(1)?))))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

pub(super) fn set_granted_at(tx: &Transaction<'_>, plan: &PlanId, user: UserId, granted: u64) -> Result<()> {
    tx.execute(
        "UPDATE participants SET granted_at_seq = $3 WHERE plan_id = $1 AND user_id = $2",
        params![plan, user.0, Int(granted)],
    )?;
    Ok(())
}

/// Deletes the envelopes of `user`'s devices for one document.
pub(super) fn delete_user_envelopes(tx: &Transaction<'_>, document: DocumentId, user: UserId) -> Result<()> {
    tx.execute(
        "DELETE FROM envelopes WHERE plan_id = $1 AND compartment = $2
           AND recipient IN (SELECT device_id FROM devices WHERE user_id = $3)",
        params![document.plan, document.compartment, user.0],
    )?;
    Ok(())
}

// Key epochs and rotations.

fn commitment_from(row: &Row) -> statements::Result<CommitmentRecord> {
    Ok(CommitmentRecord {
        document: document_at(row, 0, 1)?,
        epoch: row.get(2)?,
        minter_device: row.get::<Option<[u8; 16]>>(3)?.map(DeviceId),
        signed: row.get(4)?,
        stored_at: row.get(5)?,
    })
}

/// False if the (document, epoch) has a commitment already.
pub(super) fn insert_commitment(tx: &Transaction<'_>, commitment: &CommitmentRecord) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO commitments (plan_id, compartment, epoch, minter_device, signed, stored_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (plan_id, compartment, epoch) DO NOTHING",
        params![
            commitment.document.plan,
            commitment.document.compartment,
            commitment.epoch,
            commitment.minter_device.map(|d| d.0),
            commitment.signed,
            commitment.stored_at
        ],
    )?;
    Ok(inserted == 1)
}

pub(super) fn commitment(
    conn: &Connection<'_>,
    document: DocumentId,
    epoch: u32,
) -> Result<Option<CommitmentRecord>> {
    Ok(conn
        .prepare_cached(
            "SELECT plan_id, compartment, epoch, minter_device, signed, stored_at FROM commitments
             WHERE plan_id = $1 AND compartment = $2 AND epoch = $3",
        )?
        .query_row(params![document.plan, document.compartment, epoch], commitment_from)
        .optional()?)
}

/// The version of the current policy; `None` before there is one.
pub(super) fn policy_version_in_force(conn: &Connection<'_>) -> Result<Option<u32>> {
    Ok(conn.query_row("SELECT version FROM policy WHERE id = 1", [], |row| row.get(0)).optional()?)
}

pub(super) fn current_epoch(conn: &Connection<'_>, document: DocumentId) -> Result<u32> {
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(MAX(epoch), 0) FROM commitments WHERE plan_id = $1 AND compartment = $2",
        )?
        .query_row(params![document.plan, document.compartment], |row| row.get(0))?)
}

pub(super) fn unminted_documents(conn: &Connection<'_>, user: UserId) -> Result<Vec<DocumentId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.plan_id, a.compartment
         FROM participants p
         JOIN plans pl ON pl.plan_id = p.plan_id
         JOIN users u ON u.user_id = p.user_id
         JOIN policy_access a ON a.role = u.role AND a.level = pl.level
         WHERE p.user_id = $1
           AND NOT EXISTS (SELECT 1 FROM commitments c
                           WHERE c.plan_id = p.plan_id AND c.compartment = a.compartment)
         ORDER BY p.plan_id, a.compartment",
    )?;
    let rows = stmt.query_map([user.0], |row| document_at(row, 0, 1))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

pub(super) fn held_keys(conn: &Connection<'_>, device: DeviceId) -> Result<Vec<(DocumentId, u32)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT plan_id, compartment, epoch FROM envelopes WHERE recipient = $1
         UNION
         SELECT plan_id, compartment, epoch FROM commitments WHERE minter_device = $1
         ORDER BY 1, 2, 3",
    )?;
    let rows = stmt.query_map([device.0], |row| Ok((document_at(row, 0, 1)?, row.get(2)?)))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// Queues a rotation of `document` at its current epoch; a document without a key has
/// nothing to rotate.
pub(super) fn queue_rotation(tx: &Transaction<'_>, document: DocumentId, now: i64) -> Result<()> {
    let epoch = current_epoch(tx, document)?;
    if epoch >= 1 {
        tx.prepare_cached(
            "INSERT INTO rotations (plan_id, compartment, queued_epoch, queued_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (plan_id, compartment, queued_epoch) DO NOTHING",
        )?
        .execute(params![document.plan, document.compartment, epoch, now])?;
    }
    Ok(())
}

/// Whether a rotation queued before `epoch` waits (any, for `u32::MAX`).
pub(super) fn rotation_pending_before(
    conn: &Connection<'_>,
    document: DocumentId,
    epoch: u32,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM rotations WHERE plan_id = $1 AND compartment = $2 AND queued_epoch < $3 LIMIT 1",
        )?
        .query_row(params![document.plan, document.compartment, i64::from(epoch)], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(super) fn pending_rotations(conn: &Connection<'_>) -> Result<u64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM (SELECT DISTINCT plan_id, compartment FROM rotations) AS queued",
        [],
        |row| uint(row, 0),
    )?)
}

/// (document, oldest queued_at) of the longest-waiting rotations.
pub(super) fn oldest_rotations(conn: &Connection<'_>, limit: u64) -> Result<Vec<(DocumentId, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT plan_id, compartment, MIN(queued_at) AS oldest FROM rotations
         GROUP BY plan_id, compartment ORDER BY oldest, plan_id, compartment LIMIT $1",
    )?;
    let rows = stmt.query_map([Int(limit)], |row| Ok((document_at(row, 0, 1)?, row.get(2)?)))?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// Removes the rotations of `document` queued before it reached `epoch`.
pub(super) fn settle_rotations(tx: &Transaction<'_>, document: DocumentId, epoch: u32) -> Result<()> {
    tx.execute(
        "DELETE FROM rotations WHERE plan_id = $1 AND compartment = $2 AND queued_epoch < $3",
        params![document.plan, document.compartment, i64::from(epoch)],
    )?;
    Ok(())
}

// The access log.

/// True when the upload is new; false when one with its digest is stored.
pub(super) fn insert_audit_upload(tx: &Transaction<'_>, upload: &NewAuditUpload) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO audit_uploads (device_id, org_id, first_seq, last_seq, head, key_version, digest, bytes,
                                    received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (digest) DO NOTHING",
        params![
            upload.device.0,
            upload.org.0,
            Int(upload.first),
            Int(upload.last),
            upload.head,
            i64::from(upload.key_version),
            upload.digest,
            upload.bytes,
            upload.received_at
        ],
    )?;
    Ok(inserted == 1)
}

pub(super) fn audit_through(conn: &Connection<'_>, device: DeviceId) -> Result<u64> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(last_seq), 0) FROM audit_uploads WHERE device_id = $1",
        [device.0],
        |row| uint(row, 0),
    )?)
}

pub(super) fn audit_uploads(
    conn: &Connection<'_>,
    org: OrgId,
    after: u64,
    limit: u64,
) -> Result<Vec<StoredAuditUpload>> {
    let mut stmt = conn.prepare_cached(
        "SELECT upload_id, device_id, org_id, first_seq, last_seq, head, key_version, bytes, received_at
         FROM audit_uploads WHERE org_id = $1 AND upload_id > $2 ORDER BY upload_id LIMIT $3",
    )?;
    let rows = stmt.query_map(params![org.0, Int(after), Int(limit)], |row| {
        Ok(StoredAuditUpload {
            id: uint(row, 0)?,
            device: DeviceId(row.get(1)?),
            org: OrgId(row.get(2)?),
            first: uint(row, 3)?,
            last: uint(row, 4)?,
            head: row.get(5)?,
            key_version: row.get(6)?,
            bytes: row.get(7)?,
            received_at: row.get(8)?,
        })
    })?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

pub(super) fn audit_keys(conn: &Connection<'_>, org: OrgId) -> Result<Vec<AuditKeyRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT org_id, version, signed, stored_at FROM audit_keys WHERE org_id = $1 ORDER BY version",
    )?;
    let rows = stmt.query_map([org.0], |row| {
        Ok(AuditKeyRecord {
            org: OrgId(row.get(0)?),
            version: row.get(1)?,
            signed: row.get(2)?,
            stored_at: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

pub(super) fn insert_audit_key(tx: &Transaction<'_>, key: &AuditKeyRecord) -> Result<()> {
    tx.execute(
        "INSERT INTO audit_keys (org_id, version, signed, stored_at) VALUES ($1, $2, $3, $4)",
        params![key.org.0, i64::from(key.version), key.signed, key.stored_at],
    )?;
    Ok(())
}

fn server_event_from(row: &Row) -> statements::Result<ServerEventRecord> {
    Ok(ServerEventRecord { seq: uint(row, 0)?, signed: row.get(1)?, at: row.get(2)? })
}

pub(super) fn last_server_event(conn: &Connection<'_>) -> Result<Option<ServerEventRecord>> {
    Ok(conn
        .query_row(
            "SELECT seq, signed, at FROM server_events ORDER BY seq DESC LIMIT 1",
            [],
            server_event_from,
        )
        .optional()?)
}

pub(super) fn server_events(conn: &Connection<'_>, after: u64, limit: u64) -> Result<Vec<ServerEventRecord>> {
    let mut stmt = conn
        .prepare_cached("SELECT seq, signed, at FROM server_events WHERE seq > $1 ORDER BY seq LIMIT $2")?;
    let rows = stmt.query_map(params![Int(after), Int(limit)], server_event_from)?;
    Ok(rows.collect::<statements::Result<_>>()?)
}

/// One statement for the whole batch; a stored position fails it as a row each would.
pub(super) fn insert_server_events(tx: &Transaction<'_>, events: &[ServerEventRecord]) -> Result<()> {
    let seqs = events.iter().map(|e| i64::try_from(e.seq).map(Some)).collect::<Result<_, _>>();
    let seqs =
        seqs.map_err(|_| StorageError::InvalidState("a server event's position is out of range".into()))?;
    let values = [
        Value::Ints(seqs),
        Value::ByteStrings(events.iter().map(|e| e.signed.clone()).collect()),
        Value::Ints(events.iter().map(|e| Some(e.at)).collect()),
    ];
    tx.query_values(
        "INSERT INTO server_events (seq, signed, at)
         SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bigint[])",
        &values,
        |_| Ok(()),
    )?;
    Ok(())
}

/// Whether the log holds a bundle of `document` after position `after`.
pub(super) fn document_has_bundle_after(
    conn: &Connection<'_>,
    document: DocumentId,
    after: u64,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM bundles WHERE plan_id = $1 AND compartment = $2 AND seq > $3)",
        )?
        .query_row(params![document.plan, document.compartment, Int(after)], |row| row.get(0))?)
}

/// Deletes every bundle and snapshot of `document` (all of them are of older epochs when an
/// erasure makes `epoch`), its envelopes and escrow envelopes and commitments before
/// `epoch`, and the snapshots asked of it.
pub(super) fn delete_document_epochs_before(
    tx: &Transaction<'_>,
    document: DocumentId,
    epoch: u32,
) -> Result<MemberErased> {
    let plan = &document.plan;
    let compartment = document.compartment;
    let count = |sql: &str| -> Result<u64> { Ok(tx.execute(sql, params![plan, compartment, epoch])? as u64) };
    let bundles = count("DELETE FROM bundles WHERE plan_id = $1 AND compartment = $2 AND epoch < $3")?;
    let envelopes = count("DELETE FROM envelopes WHERE plan_id = $1 AND compartment = $2 AND epoch < $3")?;
    let escrow_envelopes =
        count("DELETE FROM escrow_envelopes WHERE plan_id = $1 AND compartment = $2 AND epoch < $3")?;
    count("DELETE FROM commitments WHERE plan_id = $1 AND compartment = $2 AND epoch < $3")?;
    tx.execute(
        "DELETE FROM snapshot_requests WHERE plan_id = $1 AND compartment = $2",
        params![plan, compartment],
    )?;
    Ok(MemberErased { bundles, envelopes, escrow_envelopes })
}
