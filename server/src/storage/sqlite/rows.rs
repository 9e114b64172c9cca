//! Row-level reads (`&Connection`) and writes (`&Transaction`). The SQL stays within what
//! PostgreSQL accepts too (`ON CONFLICT`, `RETURNING`, no `INSERT OR REPLACE`), apart from
//! the `?N` placeholders.

use std::collections::HashSet;

use eenplan_protocol::{BundleKind, DocumentId};
use rusqlite::types::{ToSqlOutput, Type};
use rusqlite::{Connection, OptionalExtension, Params, Row, ToSql, Transaction, params};

use crate::storage::pull::{LogView, ResumePoint, RowMeta, limit_param};
use crate::storage::{
    AdminRecord, AuditKeyRecord, CommitmentRecord, DeviceId, DeviceRecord, DeviceState, DocStats, Envelope,
    Erasure, HeldTail, MemberErased, NetworkRecord, NewAuditUpload, NewBundle, NewDevice, Org, OrgId,
    Participant, PlanId, PolicyRecord, Reader, Result, ServerEventRecord, StorageError, StoredAuditUpload,
    StoredBundle, StoredName, TailStats, User, UserId,
};

const SERVER_SECRET: &str = "server_secret";
const SERVER_AUDIT_SEED: &str = "server_audit_seed";

/// Statements through the connection's statement cache: compiling a statement costs more
/// than running most of these (a push's transaction runs a dozen), so each is prepared once
/// per connection ([`super::STATEMENT_CACHE`] of them are kept).
trait Cached {
    fn exec<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P: Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P: Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// A log position, size or count as a parameter: the API counts in u64, SQL in i64.
struct Int(u64);

impl ToSql for Int {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        i64::try_from(self.0)
            .map(ToSqlOutput::from)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    }
}

fn uint(row: &Row<'_>, column: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(column)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(column, value))
}

fn opt_uint(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<u64>> {
    row.get::<_, Option<i64>>(column)?
        .map(|value| {
            u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(column, value))
        })
        .transpose()
}

fn conversion<E: std::error::Error + Send + Sync + 'static>(
    column: usize,
    ty: Type,
    e: E,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, ty, Box::new(e))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadValue(String);

fn document_at(row: &Row<'_>, plan: usize, compartment: usize) -> rusqlite::Result<DocumentId> {
    let plan_id: [u8; 16] = row.get(plan)?;
    DocumentId::new(plan_id, row.get(compartment)?).map_err(|e| conversion(compartment, Type::Integer, e))
}

/// The kind in `column`; a snapshot's position is in `covers`.
fn kind_at(row: &Row<'_>, column: usize, covers: usize) -> rusqlite::Result<BundleKind> {
    match row.get::<_, i64>(column)? {
        0 => Ok(BundleKind::Changes),
        1 => Ok(BundleKind::Snapshot { covers: opt_uint(row, covers)?.unwrap_or(0) }),
        other => Err(conversion(column, Type::Integer, BadValue(format!("bundle kind {other}")))),
    }
}

fn state_at(row: &Row<'_>, column: usize) -> rusqlite::Result<DeviceState> {
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

pub(super) fn network(conn: &Connection) -> Result<Option<NetworkRecord>> {
    Ok(conn
        .row("SELECT root_public, escrow_public, escrow_signature FROM network WHERE id = 1", [], |row| {
            Ok(NetworkRecord {
                root_public: row.get(0)?,
                escrow_public: row.get(1)?,
                escrow_signature: row.get(2)?,
            })
        })
        .optional()?)
}

/// False if the network was set before.
pub(super) fn insert_network(tx: &Transaction<'_>, network: &NetworkRecord) -> Result<bool> {
    let inserted = tx.exec(
        "INSERT INTO network (id, root_public, escrow_public, escrow_signature) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO NOTHING",
        params![network.root_public, network.escrow_public, network.escrow_signature],
    )?;
    Ok(inserted == 1)
}

/// False if the key is an administrator already.
pub(super) fn insert_admin(tx: &Transaction<'_>, admin: &AdminRecord) -> Result<bool> {
    let inserted = tx.exec(
        "INSERT INTO admins (admin_public, certificate, name) VALUES (?1, ?2, ?3)
         ON CONFLICT (admin_public) DO NOTHING",
        params![admin.admin_public, admin.certificate, admin.name],
    )?;
    Ok(inserted == 1)
}

pub(super) fn admin(conn: &Connection, public: &[u8; 32]) -> Result<Option<AdminRecord>> {
    Ok(conn
        .row("SELECT admin_public, certificate, name FROM admins WHERE admin_public = ?1", [public], |row| {
            Ok(AdminRecord { admin_public: row.get(0)?, certificate: row.get(1)?, name: row.get(2)? })
        })
        .optional()?)
}

pub(super) fn server_secret(conn: &Connection) -> Result<Option<[u8; 32]>> {
    meta_secret(conn, SERVER_SECRET)
}

/// Stores `fresh` unless a secret exists; returns the one that is stored.
pub(super) fn ensure_server_secret(tx: &Transaction<'_>, fresh: &[u8; 32]) -> Result<[u8; 32]> {
    ensure_meta_secret(tx, SERVER_SECRET, fresh)
}

pub(super) fn forget_stale_admin_signatures(tx: &Transaction<'_>, now: i64) -> Result<()> {
    tx.exec("DELETE FROM admin_signatures WHERE stale_after < ?1", params![now])?;
    Ok(())
}

/// False if `signature` is stored already.
pub(super) fn insert_admin_signature(
    tx: &Transaction<'_>,
    signature: &[u8; 64],
    stale_after: i64,
) -> Result<bool> {
    let inserted = tx.exec(
        "INSERT INTO admin_signatures (signature, stale_after) VALUES (?1, ?2) ON CONFLICT (signature) DO NOTHING",
        params![&signature[..], stale_after],
    )?;
    Ok(inserted == 1)
}

pub(super) fn server_audit_seed(conn: &Connection) -> Result<Option<[u8; 32]>> {
    meta_secret(conn, SERVER_AUDIT_SEED)
}

/// Stores `fresh` unless a seed exists; returns the one that is stored.
pub(super) fn ensure_server_audit_seed(tx: &Transaction<'_>, fresh: &[u8; 32]) -> Result<[u8; 32]> {
    ensure_meta_secret(tx, SERVER_AUDIT_SEED, fresh)
}

fn meta_secret(conn: &Connection, name: &str) -> Result<Option<[u8; 32]>> {
    Ok(conn.row("SELECT value FROM meta WHERE name = ?1", [name], |row| row.get(0)).optional()?)
}

fn ensure_meta_secret(tx: &Transaction<'_>, name: &str, fresh: &[u8; 32]) -> Result<[u8; 32]> {
    tx.exec(
        "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        params![name, fresh],
    )?;
    meta_secret(tx, name)?.ok_or_else(|| StorageError::Corrupt(format!("the meta value {name} vanished")))
}

// Organisations and users.

fn org_from(row: &Row<'_>) -> rusqlite::Result<Org> {
    Ok(Org { id: OrgId(row.get(0)?), name: row.get(1)?, lease_hours: row.get(2)? })
}

/// None if the name is taken.
pub(super) fn insert_org(tx: &Transaction<'_>, name: &str, lease_hours: u32) -> Result<Option<OrgId>> {
    Ok(tx
        .row(
            "INSERT INTO orgs (name, lease_hours) VALUES (?1, ?2) ON CONFLICT DO NOTHING RETURNING org_id",
            params![name, lease_hours],
            |row| row.get(0).map(OrgId),
        )
        .optional()?)
}

pub(super) fn orgs(conn: &Connection) -> Result<Vec<Org>> {
    let mut stmt = conn.prepare_cached("SELECT org_id, name, lease_hours FROM orgs ORDER BY org_id")?;
    let rows = stmt.query_map([], org_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn org_by_name(conn: &Connection, name: &str) -> Result<Option<Org>> {
    Ok(conn.row("SELECT org_id, name, lease_hours FROM orgs WHERE name = ?1", [name], org_from).optional()?)
}

pub(super) fn org(conn: &Connection, org: OrgId) -> Result<Option<Org>> {
    Ok(conn
        .row("SELECT org_id, name, lease_hours FROM orgs WHERE org_id = ?1", [org.0], org_from)
        .optional()?)
}

const USER_COLUMNS: &str = "SELECT user_id, org_id, name, role FROM users";

fn user_from(row: &Row<'_>) -> rusqlite::Result<User> {
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
        .row(
            "INSERT INTO users (org_id, name, role) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING RETURNING user_id",
            params![org.0, name, role],
            |row| row.get(0).map(UserId),
        )
        .optional()?)
}

pub(super) fn users(conn: &Connection) -> Result<Vec<User>> {
    let mut stmt = conn.prepare_cached(&format!("{USER_COLUMNS} ORDER BY user_id"))?;
    let rows = stmt.query_map([], user_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn user(conn: &Connection, id: UserId) -> Result<Option<User>> {
    Ok(conn.row(&format!("{USER_COLUMNS} WHERE user_id = ?1"), [id.0], user_from).optional()?)
}

pub(super) fn users_by_name(conn: &Connection, name: &str) -> Result<Vec<User>> {
    let mut stmt = conn.prepare_cached(&format!("{USER_COLUMNS} WHERE name = ?1 ORDER BY user_id"))?;
    let rows = stmt.query_map([name], user_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// Enrolment and devices.

/// False if the code id is stored already.
pub(super) fn insert_enrolment(
    tx: &Transaction<'_>,
    code_id: &[u8; 32],
    user: UserId,
    expires_at: i64,
) -> Result<bool> {
    let inserted = tx.exec(
        "INSERT INTO enrolments (code_id, user_id, expires_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (code_id) DO NOTHING",
        params![code_id, user.0, expires_at],
    )?;
    Ok(inserted == 1)
}

/// An unused code's user and expiry.
pub(super) fn unused_enrolment(conn: &Connection, code_id: &[u8; 32]) -> Result<Option<(UserId, i64)>> {
    Ok(conn
        .row(
            "SELECT user_id, expires_at FROM enrolments WHERE code_id = ?1 AND used_at IS NULL",
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
    tx.exec(
        "UPDATE enrolments SET used_at = ?2, used_by = ?3 WHERE code_id = ?1",
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
    let inserted = tx.exec(
        "INSERT INTO devices (device_id, user_id, signing_public, agreement_public, key_mac, state, created_at,
                              label, platform, label_signature)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8, ?9)
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

fn device_from(row: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord {
        device_id: DeviceId(row.get(0)?),
        user: UserId(row.get(1)?),
        signing_public: row.get(2)?,
        agreement_public: row.get(3)?,
        certificate: row.get(4)?,
        state: state_at(row, 5)?,
        created_at: row.get(6)?,
        revoked_at: row.get(7)?,
        key_mac: row.get(8)?,
        revocation_reason: row.get(9)?,
        wiped_at: row.get(10)?,
        certified_at: row.get(11)?,
        last_session_at: row.get(12)?,
        wipe_nonce_hash: row.get(13)?,
        name: match (row.get::<_, Option<String>>(14)?, row.get(15)?, row.get(16)?) {
            (Some(label), Some(platform), Some(signature)) => Some(StoredName { label, platform, signature }),
            _ => None,
        },
        last_seen_at: row.get(17)?,
    })
}

pub(super) fn devices(conn: &Connection) -> Result<Vec<DeviceRecord>> {
    let mut stmt = conn.prepare_cached(&format!("{DEVICE_COLUMNS} ORDER BY d.created_at, d.device_id"))?;
    let rows = stmt.query_map([], device_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn devices_in_state(conn: &Connection, state: DeviceState) -> Result<Vec<DeviceRecord>> {
    let mut stmt = conn
        .prepare_cached(&format!("{DEVICE_COLUMNS} WHERE d.state = ?1 ORDER BY d.created_at, d.device_id"))?;
    let rows = stmt.query_map([state.as_str()], device_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn devices_of_user(conn: &Connection, user: UserId) -> Result<Vec<DeviceRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{DEVICE_COLUMNS} WHERE d.user_id = ?1 ORDER BY d.created_at, d.device_id"
    ))?;
    let rows = stmt.query_map([user.0], device_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn device(conn: &Connection, id: DeviceId) -> Result<Option<DeviceRecord>> {
    Ok(conn.row(&format!("{DEVICE_COLUMNS} WHERE d.device_id = ?1"), [id.0], device_from).optional()?)
}

pub(super) fn active_devices_of_user(conn: &Connection, user: UserId) -> Result<Vec<DeviceRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{DEVICE_COLUMNS} WHERE d.user_id = ?1 AND d.state = 'active' ORDER BY d.created_at, d.device_id"
    ))?;
    let rows = stmt.query_map([user.0], device_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn device_state(conn: &Connection, id: DeviceId) -> Result<Option<DeviceState>> {
    Ok(conn
        .row("SELECT state FROM devices WHERE device_id = ?1", [id.0], |row| state_at(row, 0))
        .optional()?)
}

pub(super) fn activate_device(tx: &Transaction<'_>, id: DeviceId, certificate: &[u8]) -> Result<()> {
    tx.exec(
        "UPDATE devices SET state = 'active', certificate = ?2 WHERE device_id = ?1",
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
    tx.exec(
        "INSERT INTO device_certificates (device_id, valid_from, certificate) VALUES (?1, ?2, ?3)
         ON CONFLICT (device_id, valid_from) DO NOTHING",
        params![id.0, old.0, old.1],
    )?;
    tx.exec(
        "UPDATE devices SET certificate = ?2, certified_at = ?3 WHERE device_id = ?1",
        params![id.0, certificate, certified_at],
    )?;
    Ok(())
}

/// A device's replaced certificates, oldest first.
pub(super) fn older_certificates(conn: &Connection, id: DeviceId) -> Result<Vec<Vec<u8>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT certificate FROM device_certificates WHERE device_id = ?1 ORDER BY valid_from",
    )?;
    let rows = stmt.query_map([id.0], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn set_user_role(tx: &Transaction<'_>, user: UserId, role: &str) -> Result<()> {
    tx.exec("UPDATE users SET role = ?2 WHERE user_id = ?1", params![user.0, role])?;
    Ok(())
}

pub(super) fn revoke_device(tx: &Transaction<'_>, id: DeviceId, reason: &str, now: i64) -> Result<()> {
    tx.exec(
        "UPDATE devices SET state = 'revoked', revoked_at = ?2, revocation_reason = ?3 WHERE device_id = ?1",
        params![id.0, now, reason],
    )?;
    tx.exec("DELETE FROM envelopes WHERE recipient = ?1", [id.0])?;
    Ok(())
}

/// Keeps the first order stored for a device.
pub(super) fn insert_wipe_order(tx: &Transaction<'_>, id: DeviceId, signed: &[u8], now: i64) -> Result<()> {
    tx.exec(
        "INSERT INTO wipe_orders (device_id, signed, stored_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (device_id) DO NOTHING",
        params![id.0, signed, now],
    )?;
    Ok(())
}

/// The order waiting for `id`, if it is revoked.
pub(super) fn wipe_order(conn: &Connection, id: DeviceId) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .row(
            "SELECT o.signed FROM wipe_orders o JOIN devices d ON d.device_id = o.device_id
             WHERE o.device_id = ?1 AND d.state = 'revoked'",
            [id.0],
            |row| row.get(0),
        )
        .optional()?)
}

/// Keeps the first report stored for a device.
pub(super) fn insert_wipe_report(tx: &Transaction<'_>, id: DeviceId, signed: &[u8], now: i64) -> Result<()> {
    tx.exec(
        "INSERT INTO wipe_reports (device_id, signed, wiped_at) VALUES (?1, ?2, ?3)
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
    tx.exec(
        "UPDATE devices SET last_session_at = ?2, wipe_nonce_hash = COALESCE(?3, wipe_nonce_hash)
         WHERE device_id = ?1",
        params![id.0, now, wipe_nonce_hash],
    )?;
    Ok(tx.exec("DELETE FROM wipe_reports WHERE device_id = ?1", [id.0])? > 0)
}

/// Whether the device exists (and so took the name).
pub(super) fn set_device_name(tx: &Transaction<'_>, id: DeviceId, name: &StoredName) -> Result<bool> {
    Ok(tx.exec(
        "UPDATE devices SET label = ?2, platform = ?3, label_signature = ?4 WHERE device_id = ?1",
        params![id.0, name.label, name.platform, name.signature],
    )? == 1)
}

pub(super) fn set_last_seen(tx: &Transaction<'_>, id: DeviceId, now: i64) -> Result<()> {
    tx.exec(
        "UPDATE devices SET last_seen_at = ?2 WHERE device_id = ?1 AND (last_seen_at IS NULL OR last_seen_at < ?2)",
        params![id.0, now],
    )?;
    Ok(())
}

pub(super) fn user_exists(conn: &Connection, user: UserId) -> Result<bool> {
    Ok(conn.row("SELECT 1 FROM users WHERE user_id = ?1", [user.0], |_| Ok(())).optional()?.is_some())
}

pub(super) fn key_share_version(conn: &Connection, device: DeviceId) -> Result<Option<(UserId, i64)>> {
    let sql = "SELECT u.user_id, u.key_share_version FROM devices d JOIN users u ON u.user_id = d.user_id
               WHERE d.device_id = ?1";
    Ok(conn.row(sql, [device.0], |row| Ok((UserId(row.get(0)?), row.get(1)?))).optional()?)
}

pub(super) fn user_key_share_version(conn: &Connection, user: UserId) -> Result<Option<i64>> {
    let sql = "SELECT key_share_version FROM users WHERE user_id = ?1";
    Ok(conn.row(sql, [user.0], |row| row.get(0)).optional()?)
}

// Plans and access.

pub(super) fn plan_creator(conn: &Connection, plan: &PlanId) -> Result<Option<UserId>> {
    Ok(conn
        .row("SELECT creator_user FROM plans WHERE plan_id = ?1", [plan], |row| row.get(0).map(UserId))
        .optional()?)
}

pub(super) fn insert_plan(
    tx: &Transaction<'_>,
    plan: &PlanId,
    creator: UserId,
    created_by: DeviceId,
    now: i64,
) -> Result<()> {
    tx.exec(
        "INSERT INTO plans (plan_id, creator_user, created_by, created_at) VALUES (?1, ?2, ?3, ?4)",
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
    tx.exec(
        "INSERT INTO membership (plan_id, seq, signed, log_seq) VALUES (?1, ?2, ?3, ?4)",
        params![plan, seq, signed, Int(position)],
    )?;
    Ok(())
}

pub(super) fn set_roster(tx: &Transaction<'_>, plan: &PlanId, roster: &[u8], level: &str) -> Result<()> {
    tx.exec("UPDATE plans SET level = ?2 WHERE plan_id = ?1", params![plan, level])?;
    tx.exec(
        "INSERT INTO plan_rosters (plan_id, roster) VALUES (?1, ?2)
         ON CONFLICT (plan_id) DO UPDATE SET roster = excluded.roster",
        params![plan, roster],
    )?;
    Ok(())
}

pub(super) fn set_closed_at(tx: &Transaction<'_>, plan: &PlanId, closed_at: i64) -> Result<()> {
    tx.exec("UPDATE plans SET closed_at = ?2 WHERE plan_id = ?1", params![plan, closed_at])?;
    Ok(())
}

pub(super) fn closed_plans(conn: &Connection) -> Result<Vec<(PlanId, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT plan_id, closed_at FROM plans WHERE closed_at IS NOT NULL ORDER BY closed_at, plan_id",
    )?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, PlanId>(0)?, row.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn closed_at(conn: &Connection, plan: &PlanId) -> Result<Option<i64>> {
    Ok(conn
        .row("SELECT closed_at FROM plans WHERE plan_id = ?1", [plan], |row| row.get(0))
        .optional()?
        .flatten())
}

pub(super) fn erased_at(conn: &Connection, plan: &PlanId) -> Result<Option<i64>> {
    Ok(conn
        .row("SELECT erased_at FROM erased_plans WHERE plan_id = ?1", [plan], |row| row.get(0))
        .optional()?)
}

/// Tables whose rows belong to one plan, besides envelopes and bundles (counted on their
/// own). Children of `plans` come before it.
const PLAN_ROWS: [&str; 9] = [
    "plan_rosters",
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
    let count = |sql: &str| -> Result<u64> { Ok(tx.exec(sql, [plan])? as u64) };
    let envelopes = count("DELETE FROM envelopes WHERE plan_id = ?1")?;
    let escrow_envelopes = count("DELETE FROM escrow_envelopes WHERE plan_id = ?1")?;
    let bundles = count("DELETE FROM bundles WHERE plan_id = ?1")?;
    for table in PLAN_ROWS {
        tx.exec(&format!("DELETE FROM {table} WHERE plan_id = ?1"), [plan])?;
    }
    tx.exec("DELETE FROM plans WHERE plan_id = ?1", [plan])?;
    tx.exec("INSERT INTO erased_plans (plan_id, erased_at) VALUES (?1, ?2)", params![plan, now])?;
    Ok(Erasure { erased_at: now, envelopes, escrow_envelopes, bundles, already: false })
}

/// The chain length and roster of a plan with a chain; `NotFound` for an unknown plan.
pub(super) fn roster(conn: &Connection, plan: &PlanId) -> Result<Option<(u32, Vec<u8>)>> {
    let roster: Option<Vec<u8>> = conn
        .row(
            "SELECT r.roster FROM plans p LEFT JOIN plan_rosters r ON r.plan_id = p.plan_id WHERE p.plan_id = ?1",
            [plan],
            |row| row.get(0),
        )
        .optional()?
        .ok_or(StorageError::NotFound)?;
    let Some(roster) = roster else { return Ok(None) };
    let seq: u32 =
        conn.row("SELECT COALESCE(MAX(seq), 0) FROM membership WHERE plan_id = ?1", [plan], |row| {
            row.get(0)
        })?;
    Ok(Some((seq, roster)))
}

pub(super) fn membership_entries(conn: &Connection, plan: &PlanId, after: u32) -> Result<Vec<Vec<u8>>> {
    let mut stmt =
        conn.prepare_cached("SELECT signed FROM membership WHERE plan_id = ?1 AND seq > ?2 ORDER BY seq")?;
    let rows = stmt.query_map(params![plan, after], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// [`membership_after`]'s statement: its filter on positions is answered by the index
/// `membership_by_plan`, so an entry (several KiB) is read only when it is new (schema 15).
pub(super) const MEMBERSHIP_AFTER: &str = "SELECT plan_id, position, signed FROM (
             SELECT m.plan_id, MAX(m.log_seq, p.granted_at_seq) AS position, m.seq, m.signed
             FROM participants p
             JOIN membership m ON m.plan_id = p.plan_id
             WHERE p.user_id = ?1 AND (m.log_seq > ?2 OR p.granted_at_seq > ?2)
             UNION ALL
             SELECT m.plan_id, m.log_seq AS position, m.seq, m.signed
             FROM membership_leavers l
             JOIN membership m ON m.plan_id = l.plan_id AND m.seq <= l.through_seq
             WHERE l.user_id = ?1 AND m.log_seq > ?2
         )
         ORDER BY position, plan_id, seq";

/// (plan, position, entry) of `user`'s plans after `after`: an entry's position is its own,
/// or the user's grant when that is later (a newly granted plan's whole chain at once).
pub(super) fn membership_after(
    conn: &Connection,
    user: UserId,
    after: u64,
) -> Result<Vec<super::super::PositionedEntry>> {
    // Participants get their plans' chains; a user who left gets the chain up to the entry
    // that removed them, so their devices learn of it from the signed entry.
    let mut stmt = conn.prepare_cached(MEMBERSHIP_AFTER)?;
    let rows =
        stmt.query_map(params![user.0, Int(after)], |row| Ok((row.get(0)?, uint(row, 1)?, row.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Documents of plans with a chain that wait for a new epoch and that `user` reads.
pub(super) fn chartered_rotations_for(conn: &Connection, user: UserId) -> Result<Vec<DocumentId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT r.plan_id, r.compartment
         FROM rotations r
         JOIN plans pl ON pl.plan_id = r.plan_id
         JOIN plan_rosters pr ON pr.plan_id = r.plan_id
         JOIN participants p ON p.plan_id = r.plan_id AND p.user_id = ?1
         JOIN users u ON u.user_id = p.user_id
         JOIN policy_access a ON a.role = u.role AND a.compartment = r.compartment AND a.level = pl.level
         ORDER BY r.plan_id, r.compartment",
    )?;
    let rows = stmt.query_map([user.0], |row| document_at(row, 0, 1))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Takes the next `n` log positions and returns the last of them.
pub(super) fn advance_head(tx: &Transaction<'_>, n: u64) -> Result<u64> {
    Ok(tx.row("UPDATE log_head SET head = head + ?1 WHERE id = 1 RETURNING head", [Int(n)], |row| {
        uint(row, 0)
    })?)
}

pub(super) fn participant_role(conn: &Connection, plan: &PlanId, user: UserId) -> Result<Option<String>> {
    Ok(conn
        .row(
            "SELECT plan_role FROM participants WHERE plan_id = ?1 AND user_id = ?2",
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
    tx.exec(
        "INSERT INTO participants (plan_id, user_id, plan_role, granted_at_seq) VALUES (?1, ?2, ?3, ?4)",
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
    tx.exec(
        "UPDATE participants SET plan_role = ?3 WHERE plan_id = ?1 AND user_id = ?2",
        params![plan, user.0, plan_role],
    )?;
    Ok(())
}

/// Remembers that entry `seq` of `plan`'s chain removed `user` (see `membership_after`).
pub(super) fn record_leaver(tx: &Transaction<'_>, plan: &PlanId, user: UserId, seq: u32) -> Result<()> {
    tx.exec(
        "INSERT INTO membership_leavers (plan_id, user_id, through_seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id, plan_id) DO UPDATE SET through_seq = ?3",
        params![plan, user.0, seq],
    )?;
    Ok(())
}

/// A user who takes part again is a participant, not a leaver.
pub(super) fn forget_leaver(tx: &Transaction<'_>, plan: &PlanId, user: UserId) -> Result<()> {
    tx.exec("DELETE FROM membership_leavers WHERE plan_id = ?1 AND user_id = ?2", params![plan, user.0])?;
    Ok(())
}

pub(super) fn delete_participant(tx: &Transaction<'_>, plan: &PlanId, user: UserId) -> Result<()> {
    tx.exec("DELETE FROM participants WHERE plan_id = ?1 AND user_id = ?2", params![plan, user.0])?;
    tx.exec(
        "DELETE FROM envelopes WHERE plan_id = ?1
           AND recipient IN (SELECT device_id FROM devices WHERE user_id = ?2)",
        params![plan, user.0],
    )?;
    Ok(())
}

pub(super) fn participants(conn: &Connection, plan: &PlanId) -> Result<Vec<Participant>> {
    let mut stmt = conn.prepare_cached(
        "SELECT user_id, plan_role, granted_at_seq FROM participants WHERE plan_id = ?1 ORDER BY user_id",
    )?;
    let rows = stmt.query_map([plan], |row| {
        Ok(Participant { user: UserId(row.get(0)?), plan_role: row.get(1)?, granted_at_seq: uint(row, 2)? })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The plans `user` participates in, with their escalation level.
pub(super) fn plan_levels_of_user(conn: &Connection, user: UserId) -> Result<Vec<(PlanId, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.plan_id, pl.level FROM participants p JOIN plans pl ON pl.plan_id = p.plan_id
         WHERE p.user_id = ?1 ORDER BY p.plan_id",
    )?;
    let rows = stmt.query_map([user.0], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The plans `user` participates in.
pub(super) fn plans_of_user(conn: &Connection, user: UserId) -> Result<Vec<PlanId>> {
    let mut stmt =
        conn.prepare_cached("SELECT plan_id FROM participants WHERE user_id = ?1 ORDER BY plan_id")?;
    let rows = stmt.query_map([user.0], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// (document, granted_at_seq) of every document `user` may read: the participant's plans
/// joined with the compartments the user's role reads under the stored policy.
pub(super) fn readable(conn: &Connection, user: UserId) -> Result<Vec<(DocumentId, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.plan_id, a.compartment, p.granted_at_seq
         FROM participants p
         JOIN plans pl ON pl.plan_id = p.plan_id
         JOIN users u ON u.user_id = p.user_id
         JOIN policy_access a ON a.role = u.role AND a.level = pl.level
         WHERE p.user_id = ?1
         ORDER BY p.plan_id, a.compartment",
    )?;
    let rows = stmt.query_map([user.0], |row| Ok((document_at(row, 0, 1)?, uint(row, 2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The readable documents of one plan for `user`.
pub(super) fn readable_in_plan(conn: &Connection, plan: &PlanId, user: UserId) -> Result<Vec<DocumentId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.plan_id, a.compartment
         FROM participants p
         JOIN plans pl ON pl.plan_id = p.plan_id
         JOIN users u ON u.user_id = p.user_id
         JOIN policy_access a ON a.role = u.role AND a.level = pl.level
         WHERE p.plan_id = ?1 AND p.user_id = ?2
         ORDER BY a.compartment",
    )?;
    let rows = stmt.query_map(params![plan, user.0], |row| document_at(row, 0, 1))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// The log.

pub(super) fn head(conn: &Connection) -> Result<u64> {
    Ok(conn.row("SELECT head FROM log_head WHERE id = 1", [], |row| uint(row, 0))?)
}

pub(super) fn seq_of_bundle(conn: &Connection, bundle_id: &[u8; 16]) -> Result<Option<u64>> {
    Ok(conn
        .prepare_cached("SELECT seq FROM bundles WHERE bundle_id = ?1")?
        .query_row([bundle_id], |row| uint(row, 0))
        .optional()?)
}

/// Appends `bundle` at `seq` unless its id is stored; false if it was.
fn insert_bundle(
    tx: &Transaction<'_>,
    seq: u64,
    bundle: &NewBundle,
    covers_seq: Option<u64>,
) -> Result<bool> {
    let inserted = tx.prepare_cached(
        "INSERT INTO bundles (seq, plan_id, compartment, bundle_id, author, epoch, kind, covers_seq, size,
                              bytes, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (bundle_id) DO NOTHING",
    )?
    .execute(params![
        Int(seq),
        bundle.document.plan,
        bundle.document.compartment,
        bundle.bundle_id,
        bundle.author.0,
        bundle.epoch,
        kind_code(bundle.kind),
        covers_seq.map(Int),
        i64::try_from(bundle.bytes.len()).map_err(|_| StorageError::InvalidState("bundle too large".into()))?,
        bundle.bytes,
        bundle.received_at,
    ])?;
    Ok(inserted == 1)
}

/// Appends each bundle whose id is not stored at the next position from `first`; a row
/// each, which costs SQLite no round trip.
pub(super) fn append_bundles(
    tx: &Transaction<'_>,
    first: u64,
    bundles: &[(&NewBundle, Option<u64>)],
) -> Result<Vec<Option<u64>>> {
    let mut next = first;
    let mut positions = Vec::with_capacity(bundles.len());
    for &(bundle, covers_seq) in bundles {
        let inserted = insert_bundle(tx, next, bundle, covers_seq)?;
        positions.push(inserted.then_some(next));
        next += u64::from(inserted);
    }
    Ok(positions)
}

pub(super) fn set_head(tx: &Transaction<'_>, head: u64) -> Result<()> {
    tx.exec("UPDATE log_head SET head = ?1 WHERE id = 1", [Int(head)])?;
    Ok(())
}

pub(super) fn document_stats(conn: &Connection, document: DocumentId) -> Result<DocStats> {
    let bundles = conn.row(
        "SELECT COUNT(*) FROM bundles WHERE plan_id = ?1 AND compartment = ?2",
        params![document.plan, document.compartment],
        |row| uint(row, 0),
    )?;
    let latest = SqliteLog(conn).latest_snapshot(document, i64::MAX as u64)?;
    let latest_snapshot_covers = latest.as_ref().map(|s| s.covers_seq.unwrap_or(0));
    let latest_snapshot_bytes = latest.map(|s| s.size);
    let (bundles_since_snapshot, bytes_since_snapshot) = conn.row(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM bundles
         WHERE plan_id = ?1 AND compartment = ?2 AND kind = 0 AND seq > ?3",
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

/// The documents device `?1` holds a key of, as the common table `held`: those it was sent an
/// envelope of and those it minted a key of (`held_keys`' union).
macro_rules! held_documents_of_device {
    () => {
        "WITH held AS (
             SELECT plan_id, compartment FROM envelopes WHERE recipient = ?1
             UNION
             SELECT plan_id, compartment FROM commitments WHERE minter_device = ?1)"
    };
}

/// Whether device `?1` holds the key of epoch `l.epoch` of the document `l`.
macro_rules! current_key_held {
    () => {
        "EXISTS (SELECT 1 FROM envelopes e WHERE e.recipient = ?1 AND e.plan_id = l.plan_id
                 AND e.compartment = l.compartment AND e.epoch = l.epoch)
         OR EXISTS (SELECT 1 FROM commitments c WHERE c.plan_id = l.plan_id
                    AND c.compartment = l.compartment AND c.epoch = l.epoch AND c.minter_device = ?1)"
    };
}

/// The documents device `?1` holds a key of (`held_documents_of_device!`), each with its
/// current epoch, as the common table `epochs`: materialised, since `current_key_held!`
/// compares the epoch twice and it should be read once per document.
macro_rules! held_documents_with_epochs {
    () => {
        concat!(
            held_documents_of_device!(),
            ",
     epochs AS MATERIALIZED (
         SELECT h.plan_id, h.compartment,
                (SELECT COALESCE(MAX(c.epoch), 0) FROM commitments c
                 WHERE c.plan_id = h.plan_id AND c.compartment = h.compartment) AS epoch
         FROM held h)"
        )
    };
}

/// The held documents' tails ([`held_tails`]): the documents `?1` holds a key of
/// (`held_keys`' union), whether `?1` holds each one's current epoch's key, and its tail as
/// `document_tails` keeps it (one primary-key lookup per document; a document without a
/// bundle has no row: no snapshot and an empty tail).
pub(super) const HELD_TAILS: &str = concat!(
    held_documents_with_epochs!(),
    "
     SELECT l.plan_id, l.compartment, ",
    current_key_held!(),
    ",
            t.snapshot_size, COALESCE(t.changes, 0), COALESCE(t.change_bytes, 0)
     FROM epochs l
     LEFT JOIN document_tails t ON t.plan_id = l.plan_id AND t.compartment = l.compartment
     ORDER BY l.plan_id, l.compartment"
);

/// [`crate::storage::backend::ReadRows::held_documents`]: [`HELD_TAILS`] without the tails.
pub(super) const HELD_DOCUMENTS: &str = concat!(
    held_documents_with_epochs!(),
    "
     SELECT l.plan_id, l.compartment, ",
    current_key_held!(),
    "
     FROM epochs l
     ORDER BY l.plan_id, l.compartment"
);

pub(super) fn held_documents(conn: &Connection, device: DeviceId) -> Result<Vec<(DocumentId, bool)>> {
    let mut stmt = conn.prepare_cached(HELD_DOCUMENTS)?;
    let rows = stmt.query_map([device.0], |row| Ok((document_at(row, 0, 1)?, row.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn held_tails(conn: &Connection, device: DeviceId) -> Result<Vec<HeldTail>> {
    let mut stmt = conn.prepare_cached(HELD_TAILS)?;
    let rows = stmt.query_map([device.0], |row| {
        let tail = TailStats {
            latest_snapshot_bytes: opt_uint(row, 3)?,
            bundles_since_snapshot: uint(row, 4)?,
            bytes_since_snapshot: uint(row, 5)?,
        };
        Ok(HeldTail { document: document_at(row, 0, 1)?, current_key_held: row.get(2)?, tail })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// [`crate::storage::backend::ReadRows::document_tails`]: each document's newest snapshot and
/// the change bundles after what it covers, as `document_tails` keeps them (one primary-key
/// lookup per document; no round trip to save here).
pub(super) fn document_tails(conn: &Connection, documents: &[DocumentId]) -> Result<Vec<TailStats>> {
    let mut stmt = conn.prepare_cached(DOCUMENT_TAIL)?;
    let mut tails = Vec::with_capacity(documents.len());
    for document in documents {
        let tail = stmt
            .query_row(params![document.plan, document.compartment], |row| {
                Ok(TailStats {
                    latest_snapshot_bytes: opt_uint(row, 0)?,
                    bundles_since_snapshot: uint(row, 1)?,
                    bytes_since_snapshot: uint(row, 2)?,
                })
            })
            .optional()?;
        // No row: the document has no bundle, so no snapshot and nothing after one.
        tails.push(tail.unwrap_or(TailStats {
            bundles_since_snapshot: 0,
            bytes_since_snapshot: 0,
            latest_snapshot_bytes: None,
        }));
    }
    Ok(tails)
}

/// One document's kept tail ([`document_tails`]).
pub(super) const DOCUMENT_TAIL: &str =
    "SELECT snapshot_size, changes, change_bytes FROM document_tails WHERE plan_id = ?1 AND compartment = ?2";

/// The pull's reads; the caller holds one read transaction around all of them.
pub(super) struct SqliteLog<'c>(pub(super) &'c Connection);

fn meta_from(row: &Row<'_>) -> rusqlite::Result<RowMeta> {
    Ok(RowMeta {
        seq: uint(row, 0)?,
        author: DeviceId(row.get(1)?),
        covers_seq: opt_uint(row, 2)?,
        size: uint(row, 3)?,
    })
}

impl LogView for SqliteLog<'_> {
    fn head(&self) -> Result<u64> {
        head(self.0)
    }

    fn readable(&self, user: UserId) -> Result<Vec<(DocumentId, u64)>> {
        readable(self.0, user)
    }

    fn documents_with_news(
        &self,
        documents: &[DocumentId],
        since: u64,
        device: DeviceId,
    ) -> Result<HashSet<DocumentId>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM bundles WHERE plan_id = ?1 AND compartment = ?2
                            AND seq > ?3 AND author <> ?4)",
        )?;
        let mut news = HashSet::new();
        for document in documents {
            let found: bool = stmt
                .query_row(params![document.plan, document.compartment, Int(since), device.0], |row| {
                    row.get(0)
                })?;
            if found {
                news.insert(*document);
            }
        }
        Ok(news)
    }

    fn latest_snapshot(&self, document: DocumentId, through: u64) -> Result<Option<RowMeta>> {
        // `kind = 1` spelled out so the partial index snapshots_by_document applies; `+seq`
        // keeps the planner from walking the document's whole log by seq instead.
        Ok(self
            .0
            .prepare_cached(
                "SELECT seq, author, covers_seq, size FROM bundles
                 WHERE plan_id = ?1 AND compartment = ?2 AND kind = 1 AND +seq <= ?3
                 ORDER BY covers_seq DESC, seq DESC LIMIT 1",
            )?
            .query_row(params![document.plan, document.compartment, Int(through)], meta_from)
            .optional()?)
    }

    fn first_snapshot(&self, document: DocumentId) -> Result<Option<RowMeta>> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT seq, author, covers_seq, size FROM bundles
                 WHERE plan_id = ?1 AND compartment = ?2 AND kind = 1
                 ORDER BY seq LIMIT 1",
            )?
            .query_row(params![document.plan, document.compartment], meta_from)
            .optional()?)
    }

    fn nth_change_back(&self, document: DocumentId, through: u64, nth: u64) -> Result<Option<u64>> {
        // A backward walk of at most `nth` index entries, however long the log.
        Ok(self
            .0
            .prepare_cached(
                "SELECT seq FROM bundles
                 WHERE plan_id = ?1 AND compartment = ?2 AND seq <= ?3 AND kind = 0
                 ORDER BY seq DESC LIMIT 1 OFFSET ?4",
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
        let mut stmt = self.0.prepare_cached(
            "SELECT seq, author, covers_seq, size FROM bundles
             WHERE plan_id = ?1 AND compartment = ?2 AND seq > ?3 AND kind = 0
             ORDER BY seq",
        )?;
        let mut rows = stmt.query(params![document.plan, document.compartment, Int(after)])?;
        while let Some(row) = rows.next()? {
            if !visit(meta_from(row)?) {
                break;
            }
        }
        Ok(())
    }

    fn next_author(&self, document: DocumentId, after: Option<DeviceId>) -> Result<Option<DeviceId>> {
        // One seek in bundles_by_author; an empty blob sorts before every id.
        let after: &[u8] = after.as_ref().map_or(&[], |a| &a.0[..]);
        Ok(self
            .0
            .prepare_cached(
                "SELECT author FROM bundles
                 WHERE plan_id = ?1 AND compartment = ?2 AND kind = 0 AND author > ?3
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
            .0
            .prepare_cached(
                "SELECT seq, author, covers_seq, size FROM bundles
                 WHERE plan_id = ?1 AND compartment = ?2 AND kind = 0 AND author = ?3 AND seq <= ?4
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![document.plan, document.compartment, author.0, Int(through)], meta_from)
            .optional()?)
    }

    fn envelopes_after(&self, device: DeviceId, after: u64, limit: usize) -> Result<Vec<(u64, Envelope)>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT position, plan_id, compartment, epoch, bytes FROM envelopes
             WHERE recipient = ?1 AND position > ?2 ORDER BY position LIMIT ?3",
        )?;
        let limit = limit_param(limit);
        let rows = stmt.query_map(params![device.0, Int(after), Int(limit)], |row| {
            let envelope = Envelope {
                recipient: device,
                document: document_at(row, 1, 2)?,
                epoch: row.get(3)?,
                bytes: row.get(4)?,
            };
            Ok((uint(row, 0)?, envelope))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn resume_point(&self, device: DeviceId, token: u64) -> Result<Option<ResumePoint>> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT block_seq, plan_id, compartment, after_seq, seen_head FROM pull_resumes
                 WHERE token = ?1 AND device_id = ?2",
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
            .0
            .prepare_cached(
                "SELECT seq, plan_id, compartment, bundle_id, author, epoch, kind, covers_seq, bytes,
                        received_at
                 FROM bundles WHERE seq = ?1",
            )?
            .query_row([Int(seq)], |row| {
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
            })?)
    }
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING token",
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
    tx.prepare_cached("DELETE FROM pull_resumes WHERE device_id = ?1 AND token <> ?2 AND token <> ?3")?
        .execute(params![device.0, Int(token), Int(presented.unwrap_or(token))])?;
    Ok(token)
}

// Snapshot requests.

/// Drops the requests made before `before`.
pub(super) fn expire_snapshot_requests(tx: &Transaction<'_>, before: i64) -> Result<()> {
    tx.prepare_cached("DELETE FROM snapshot_requests WHERE requested_at < ?1")?.execute([before])?;
    Ok(())
}

/// (document, covers) of `device`'s requests made at or after `since`.
pub(super) fn snapshot_requests_of(
    conn: &Connection,
    device: DeviceId,
    since: i64,
) -> Result<Vec<(DocumentId, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT plan_id, compartment, covers_seq FROM snapshot_requests
         WHERE device_id = ?1 AND requested_at >= ?2 ORDER BY plan_id, compartment",
    )?;
    let rows =
        stmt.query_map(params![device.0, since], |row| Ok((document_at(row, 0, 1)?, uint(row, 2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Whether a device other than `device` was first asked for a snapshot of `document` at or
/// after `since` (its request renewed since does not count).
pub(super) fn snapshot_requested_elsewhere(
    conn: &Connection,
    document: DocumentId,
    device: DeviceId,
    since: i64,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM snapshot_requests
             WHERE plan_id = ?1 AND compartment = ?2 AND device_id <> ?3 AND first_asked_at >= ?4 LIMIT 1",
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
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
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
             WHERE device_id = ?1 AND plan_id = ?2 AND compartment = ?3 AND covers_seq = ?4
               AND requested_at >= ?5",
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
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
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
    conn: &Connection,
    recipient: DeviceId,
    document: DocumentId,
    epoch: u32,
) -> Result<Option<Option<DeviceId>>> {
    Ok(conn
        .prepare_cached(
            "SELECT sealer FROM envelopes
             WHERE recipient = ?1 AND plan_id = ?2 AND compartment = ?3 AND epoch = ?4",
        )?
        .query_row(params![recipient.0, document.plan, document.compartment, epoch], |row| {
            Ok(row.get::<_, Option<[u8; 16]>>(0)?.map(DeviceId))
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
        "DELETE FROM envelopes WHERE recipient = ?1 AND plan_id = ?2 AND compartment = ?3 AND epoch = ?4",
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
        "INSERT INTO refused_sealers (recipient, plan_id, compartment, epoch, sealer) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![recipient.0, document.plan, document.compartment, epoch, sealer.0])?;
    Ok(())
}

pub(super) fn sealer_refused(
    conn: &Connection,
    recipient: DeviceId,
    document: DocumentId,
    epoch: u32,
    sealer: DeviceId,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM refused_sealers
             WHERE recipient = ?1 AND plan_id = ?2 AND compartment = ?3 AND epoch = ?4 AND sealer = ?5",
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
            "INSERT INTO escrow_envelopes (plan_id, compartment, epoch, bytes) VALUES (?1, ?2, ?3, ?4)
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

pub(super) fn escrow_envelopes(conn: &Connection, plan: &[u8; 16]) -> Result<Vec<Envelope>> {
    let mut stmt = conn.prepare_cached(
        "SELECT plan_id, compartment, epoch, bytes FROM escrow_envelopes WHERE plan_id = ?1
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
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn envelopes_for(conn: &Connection, device: DeviceId, since: u64) -> Result<Vec<Envelope>> {
    let mut stmt = conn.prepare_cached(
        "SELECT plan_id, compartment, epoch, bytes FROM envelopes WHERE recipient = ?1 AND position > ?2
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
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// [`readers`] of `document` that hold no `epoch`, in one statement: asked on every sync for
/// every key the syncing device holds, so it reads ids, not whole device rows.
pub(super) fn devices_missing_envelope(
    conn: &Connection,
    document: DocumentId,
    epoch: u32,
) -> Result<Vec<DeviceId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.device_id FROM devices d
         LEFT JOIN wipe_reports w ON w.device_id = d.device_id
         JOIN participants p ON p.user_id = d.user_id
         JOIN plans pl ON pl.plan_id = p.plan_id
         JOIN users u ON u.user_id = p.user_id
         JOIN policy_access a ON a.role = u.role AND a.compartment = ?2 AND a.level = pl.level
         WHERE p.plan_id = ?1 AND d.state = 'active' AND w.wiped_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM envelopes e WHERE e.recipient = d.device_id
                           AND e.plan_id = ?1 AND e.compartment = ?2 AND e.epoch = ?3)
           AND NOT EXISTS (SELECT 1 FROM commitments c WHERE c.minter_device = d.device_id
                           AND c.plan_id = ?1 AND c.compartment = ?2 AND c.epoch = ?3)
         ORDER BY d.device_id",
    )?;
    let ids = stmt
        .query_map(params![document.plan, document.compartment, epoch], |row| Ok(DeviceId(row.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// [`devices_missing_held_keys`]'s statement; the devices of each participant are read
/// from the covering index `devices_by_user` (schema 15), not from their 4 KiB rows.
pub(super) const DEVICES_MISSING_HELD_KEYS: &str = "WITH held (plan_id, compartment, epoch) AS (
             SELECT plan_id, compartment, epoch FROM envelopes WHERE recipient = ?1
             UNION
             SELECT plan_id, compartment, epoch FROM commitments WHERE minter_device = ?1)
         SELECT h.plan_id, h.compartment, h.epoch, d.device_id
         FROM held h
         CROSS JOIN plans pl ON pl.plan_id = h.plan_id
         CROSS JOIN participants p ON p.plan_id = h.plan_id
         CROSS JOIN users u ON u.user_id = p.user_id
         CROSS JOIN policy_access a ON a.role = u.role AND a.compartment = h.compartment AND a.level = pl.level
         CROSS JOIN devices d ON d.user_id = p.user_id
         LEFT JOIN wipe_reports w ON w.device_id = d.device_id
         WHERE d.state = 'active' AND w.wiped_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM envelopes e WHERE e.recipient = d.device_id
                           AND e.plan_id = h.plan_id AND e.compartment = h.compartment AND e.epoch = h.epoch)
           AND NOT EXISTS (SELECT 1 FROM commitments c WHERE c.minter_device = d.device_id
                           AND c.plan_id = h.plan_id AND c.compartment = h.compartment AND c.epoch = h.epoch)
         ORDER BY h.plan_id, h.compartment, h.epoch, d.device_id";

/// [`devices_missing_envelope`] of each key `device` holds, in one statement. The held keys
/// come first (`CROSS JOIN` keeps that order): a device holds a few hundred keys, while the
/// other tables hold the whole region.
pub(super) fn devices_missing_held_keys(
    conn: &Connection,
    device: DeviceId,
) -> Result<Vec<(DocumentId, u32, DeviceId)>> {
    let mut stmt = conn.prepare_cached(DEVICES_MISSING_HELD_KEYS)?;
    let rows =
        stmt.query_map([device.0], |row| Ok((document_at(row, 0, 1)?, row.get(2)?, DeviceId(row.get(3)?))))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The active, not wiped devices of the participants whose role may read `document`, each
/// with the epochs it holds: by envelope, or because it made the key.
pub(super) fn readers(conn: &Connection, document: DocumentId) -> Result<Vec<Reader>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{DEVICE_COLUMNS}
         JOIN participants p ON p.user_id = d.user_id
         JOIN plans pl ON pl.plan_id = p.plan_id
         JOIN users u ON u.user_id = p.user_id
         JOIN policy_access a ON a.role = u.role AND a.compartment = ?2 AND a.level = pl.level
         WHERE p.plan_id = ?1 AND d.state = 'active' AND w.wiped_at IS NULL
         ORDER BY d.device_id"
    ))?;
    let devices = stmt
        .query_map(params![document.plan, document.compartment], device_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut held = conn.prepare_cached(
        "SELECT epoch FROM envelopes WHERE recipient = ?1 AND plan_id = ?2 AND compartment = ?3
         UNION
         SELECT epoch FROM commitments WHERE minter_device = ?1 AND plan_id = ?2 AND compartment = ?3
         ORDER BY epoch",
    )?;
    let mut out = Vec::with_capacity(devices.len());
    for device in devices {
        let held_epochs = held
            .query_map(params![device.device_id.0, document.plan, document.compartment], |row| row.get(0))?
            .collect::<rusqlite::Result<Vec<u32>>>()?;
        out.push(Reader { device, held_epochs });
    }
    Ok(out)
}

// Revocation lists.

/// The newest stored version, or version `version`: (version, signed bytes).
pub(super) fn revocation_list(conn: &Connection, version: Option<u32>) -> Result<Option<(u32, Vec<u8>)>> {
    let row = |row: &Row<'_>| Ok((row.get::<_, u32>(0)?, row.get::<_, Vec<u8>>(1)?));
    Ok(match version {
        None => conn
            .row("SELECT version, signed FROM revocation_lists ORDER BY version DESC LIMIT 1", [], row)
            .optional()?,
        Some(version) => conn
            .row("SELECT version, signed FROM revocation_lists WHERE version = ?1", [version], row)
            .optional()?,
    })
}

pub(super) fn insert_revocation_list(
    tx: &Transaction<'_>,
    version: u32,
    signed: &[u8],
    now: i64,
) -> Result<()> {
    tx.exec(
        "INSERT INTO revocation_lists (version, signed, stored_at) VALUES (?1, ?2, ?3)",
        params![version, signed, now],
    )?;
    Ok(())
}

/// Records that `device` is listed, from `version` on (a device listed before keeps its
/// first version).
pub(super) fn insert_revocation_entry(tx: &Transaction<'_>, device: DeviceId, version: u32) -> Result<()> {
    tx.exec(
        "INSERT INTO revocation_entries (device_id, version) VALUES (?1, ?2) ON CONFLICT (device_id) DO NOTHING",
        params![device.0, version],
    )?;
    Ok(())
}

pub(super) fn on_revocation_list(conn: &Connection, device: DeviceId) -> Result<bool> {
    Ok(conn
        .row("SELECT 1 FROM revocation_entries WHERE device_id = ?1", [device.0], |_| Ok(()))
        .optional()?
        .is_some())
}

// The sharing policy.

pub(super) fn policy(conn: &Connection) -> Result<Option<PolicyRecord>> {
    let signed: Option<Vec<u8>> =
        conn.row("SELECT signed FROM policy WHERE id = 1", [], |row| row.get(0)).optional()?;
    signed.map(PolicyRecord::from_stored).transpose()
}

/// An earlier (or the current) signed policy, by version.
pub(super) fn policy_version(conn: &Connection, version: u32) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .row("SELECT signed FROM policy_history WHERE version = ?1", [version], |row| row.get(0))
        .optional()?)
}

/// Replaces the policy and its materialised table.
pub(super) fn replace_policy(tx: &Transaction<'_>, record: &PolicyRecord, now: i64) -> Result<()> {
    tx.exec(
        "INSERT INTO policy (id, version, signed, installed_at) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, signed = excluded.signed,
                                        installed_at = excluded.installed_at",
        params![record.policy.version, record.signed, now],
    )?;
    tx.exec(
        "INSERT INTO policy_history (version, signed) VALUES (?1, ?2) ON CONFLICT (version) DO NOTHING",
        params![record.policy.version, record.signed],
    )?;
    tx.exec("DELETE FROM policy_access", [])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO policy_access (level, role, compartment, may_write) VALUES (?1, ?2, ?3, ?4)",
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
pub(super) fn participants_with_role(conn: &Connection, role: &str) -> Result<Vec<(PlanId, UserId)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.plan_id, p.user_id FROM participants p JOIN users u ON u.user_id = p.user_id
         WHERE u.role = ?1 ORDER BY p.plan_id, p.user_id",
    )?;
    let rows = stmt.query_map([role], |row| Ok((row.get(0)?, UserId(row.get(1)?))))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn set_granted_at(tx: &Transaction<'_>, plan: &PlanId, user: UserId, granted: u64) -> Result<()> {
    tx.exec(
        "UPDATE participants SET granted_at_seq = ?3 WHERE plan_id = ?1 AND user_id = ?2",
        params![plan, user.0, Int(granted)],
    )?;
    Ok(())
}

/// Deletes the envelopes of `user`'s devices for one document.
pub(super) fn delete_user_envelopes(tx: &Transaction<'_>, document: DocumentId, user: UserId) -> Result<()> {
    tx.exec(
        "DELETE FROM envelopes WHERE plan_id = ?1 AND compartment = ?2
           AND recipient IN (SELECT device_id FROM devices WHERE user_id = ?3)",
        params![document.plan, document.compartment, user.0],
    )?;
    Ok(())
}

// Key epochs and rotations.

fn commitment_from(row: &Row<'_>) -> rusqlite::Result<CommitmentRecord> {
    Ok(CommitmentRecord {
        document: document_at(row, 0, 1)?,
        epoch: row.get(2)?,
        minter_device: row.get::<_, Option<[u8; 16]>>(3)?.map(DeviceId),
        signed: row.get(4)?,
        stored_at: row.get(5)?,
    })
}

/// False if the (document, epoch) has a commitment already.
pub(super) fn insert_commitment(tx: &Transaction<'_>, commitment: &CommitmentRecord) -> Result<bool> {
    let inserted = tx.exec(
        "INSERT INTO commitments (plan_id, compartment, epoch, minter_device, signed, stored_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
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
    conn: &Connection,
    document: DocumentId,
    epoch: u32,
) -> Result<Option<CommitmentRecord>> {
    Ok(conn
        .prepare_cached(
            "SELECT plan_id, compartment, epoch, minter_device, signed, stored_at FROM commitments
             WHERE plan_id = ?1 AND compartment = ?2 AND epoch = ?3",
        )?
        .query_row(params![document.plan, document.compartment, epoch], commitment_from)
        .optional()?)
}

/// The version of the current policy; `None` before there is one.
pub(super) fn policy_version_in_force(conn: &Connection) -> Result<Option<u32>> {
    Ok(conn.row("SELECT version FROM policy WHERE id = 1", [], |row| row.get(0)).optional()?)
}

pub(super) fn current_epoch(conn: &Connection, document: DocumentId) -> Result<u32> {
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(MAX(epoch), 0) FROM commitments WHERE plan_id = ?1 AND compartment = ?2",
        )?
        .query_row(params![document.plan, document.compartment], |row| row.get(0))?)
}

pub(super) fn unminted_documents(conn: &Connection, user: UserId) -> Result<Vec<DocumentId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.plan_id, a.compartment
         FROM participants p
         JOIN plans pl ON pl.plan_id = p.plan_id
         JOIN users u ON u.user_id = p.user_id
         JOIN policy_access a ON a.role = u.role AND a.level = pl.level
         WHERE p.user_id = ?1
           AND NOT EXISTS (SELECT 1 FROM commitments c
                           WHERE c.plan_id = p.plan_id AND c.compartment = a.compartment)
         ORDER BY p.plan_id, a.compartment",
    )?;
    let rows = stmt.query_map([user.0], |row| document_at(row, 0, 1))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn held_keys(conn: &Connection, device: DeviceId) -> Result<Vec<(DocumentId, u32)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT plan_id, compartment, epoch FROM envelopes WHERE recipient = ?1
         UNION
         SELECT plan_id, compartment, epoch FROM commitments WHERE minter_device = ?1
         ORDER BY 1, 2, 3",
    )?;
    let rows = stmt.query_map([device.0], |row| Ok((document_at(row, 0, 1)?, row.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Queues a rotation of `document` at its current epoch; a document without a key has
/// nothing to rotate.
pub(super) fn queue_rotation(tx: &Transaction<'_>, document: DocumentId, now: i64) -> Result<()> {
    let epoch = current_epoch(tx, document)?;
    if epoch >= 1 {
        tx.prepare_cached(
            "INSERT INTO rotations (plan_id, compartment, queued_epoch, queued_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (plan_id, compartment, queued_epoch) DO NOTHING",
        )?
        .execute(params![document.plan, document.compartment, epoch, now])?;
    }
    Ok(())
}

/// Whether a rotation queued before `epoch` waits (any, for `u32::MAX`).
pub(super) fn rotation_pending_before(conn: &Connection, document: DocumentId, epoch: u32) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM rotations WHERE plan_id = ?1 AND compartment = ?2 AND queued_epoch < ?3 LIMIT 1",
        )?
        .query_row(params![document.plan, document.compartment, i64::from(epoch)], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(super) fn pending_rotations(conn: &Connection) -> Result<u64> {
    Ok(conn.row("SELECT COUNT(*) FROM (SELECT DISTINCT plan_id, compartment FROM rotations)", [], |row| {
        uint(row, 0)
    })?)
}

/// (document, oldest queued_at) of the longest-waiting rotations.
pub(super) fn oldest_rotations(conn: &Connection, limit: u64) -> Result<Vec<(DocumentId, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT plan_id, compartment, MIN(queued_at) AS oldest FROM rotations
         GROUP BY plan_id, compartment ORDER BY oldest, plan_id, compartment LIMIT ?1",
    )?;
    let rows = stmt.query_map([Int(limit)], |row| Ok((document_at(row, 0, 1)?, row.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Removes the rotations of `document` queued before it reached `epoch`.
pub(super) fn settle_rotations(tx: &Transaction<'_>, document: DocumentId, epoch: u32) -> Result<()> {
    tx.exec(
        "DELETE FROM rotations WHERE plan_id = ?1 AND compartment = ?2 AND queued_epoch < ?3",
        params![document.plan, document.compartment, i64::from(epoch)],
    )?;
    Ok(())
}

// The access log.

/// True when the upload is new; false when one with its digest is stored.
pub(super) fn insert_audit_upload(tx: &Transaction<'_>, upload: &NewAuditUpload) -> Result<bool> {
    let inserted = tx.exec(
        "INSERT INTO audit_uploads (device_id, org_id, first_seq, last_seq, head, key_version, digest, bytes,
                                    received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (digest) DO NOTHING",
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

pub(super) fn audit_through(conn: &Connection, device: DeviceId) -> Result<u64> {
    Ok(conn.row(
        "SELECT COALESCE(MAX(last_seq), 0) FROM audit_uploads WHERE device_id = ?1",
        [device.0],
        |row| uint(row, 0),
    )?)
}

pub(super) fn audit_uploads(
    conn: &Connection,
    org: OrgId,
    after: u64,
    limit: u64,
) -> Result<Vec<StoredAuditUpload>> {
    let mut stmt = conn.prepare_cached(
        "SELECT upload_id, device_id, org_id, first_seq, last_seq, head, key_version, bytes, received_at
         FROM audit_uploads WHERE org_id = ?1 AND upload_id > ?2 ORDER BY upload_id LIMIT ?3",
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
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn audit_keys(conn: &Connection, org: OrgId) -> Result<Vec<AuditKeyRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT org_id, version, signed, stored_at FROM audit_keys WHERE org_id = ?1 ORDER BY version",
    )?;
    let rows = stmt.query_map([org.0], |row| {
        Ok(AuditKeyRecord {
            org: OrgId(row.get(0)?),
            version: row.get(1)?,
            signed: row.get(2)?,
            stored_at: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn insert_audit_key(tx: &Transaction<'_>, key: &AuditKeyRecord) -> Result<()> {
    tx.exec(
        "INSERT INTO audit_keys (org_id, version, signed, stored_at) VALUES (?1, ?2, ?3, ?4)",
        params![key.org.0, i64::from(key.version), key.signed, key.stored_at],
    )?;
    Ok(())
}

fn server_event_from(row: &Row<'_>) -> rusqlite::Result<ServerEventRecord> {
    Ok(ServerEventRecord { seq: uint(row, 0)?, signed: row.get(1)?, at: row.get(2)? })
}

pub(super) fn last_server_event(conn: &Connection) -> Result<Option<ServerEventRecord>> {
    Ok(conn
        .row("SELECT seq, signed, at FROM server_events ORDER BY seq DESC LIMIT 1", [], server_event_from)
        .optional()?)
}

pub(super) fn server_events(conn: &Connection, after: u64, limit: u64) -> Result<Vec<ServerEventRecord>> {
    let mut stmt = conn
        .prepare_cached("SELECT seq, signed, at FROM server_events WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
    let rows = stmt.query_map(params![Int(after), Int(limit)], server_event_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A row each, which costs SQLite no round trip.
pub(super) fn insert_server_events(tx: &Transaction<'_>, events: &[ServerEventRecord]) -> Result<()> {
    for event in events {
        tx.exec(
            "INSERT INTO server_events (seq, signed, at) VALUES (?1, ?2, ?3)",
            params![Int(event.seq), event.signed, event.at],
        )?;
    }
    Ok(())
}

/// Whether the log holds a bundle of `document` after position `after`.
pub(super) fn document_has_bundle_after(conn: &Connection, document: DocumentId, after: u64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM bundles WHERE plan_id = ?1 AND compartment = ?2 AND seq > ?3)",
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
    let count = |sql: &str| -> Result<u64> { Ok(tx.exec(sql, params![plan, compartment, epoch])? as u64) };
    let bundles = count("DELETE FROM bundles WHERE plan_id = ?1 AND compartment = ?2 AND epoch < ?3")?;
    let envelopes = count("DELETE FROM envelopes WHERE plan_id = ?1 AND compartment = ?2 AND epoch < ?3")?;
    let escrow_envelopes =
        count("DELETE FROM escrow_envelopes WHERE plan_id = ?1 AND compartment = ?2 AND epoch < ?3")?;
    count("DELETE FROM commitments WHERE plan_id = ?1 AND compartment = ?2 AND epoch < ?3")?;
    tx.exec(
        "DELETE FROM snapshot_requests WHERE plan_id = ?1 AND compartment = ?2",
        params![plan, compartment],
    )?;
    Ok(MemberErased { bundles, envelopes, escrow_envelopes })
}
