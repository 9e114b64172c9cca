//! The command line. Roles parse with eenplan-core's `Role`, so a user's certificate and a
//! plan's participants carry exactly the names the sharing policy knows.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, Parser, Subcommand};
use eenplan_core::PlanId;
use eenplan_core::plan::Role;
use eenplan_protocol::wipe::RevocationReason;

const ENVIRONMENT_HELP: &str = "\
Environment:
  EENPLAN_ADMIN_DATA           the keyring directory, when --data is not given
  EENPLAN_SERVER               the server, when --server is not given (init stores it)
  EENPLAN_OFFLINE_KEYRING      the offline keyring, when --offline-keyring is not given
  EENPLAN_ADMIN_PASSPHRASE     the keyring passphrase; asked on the terminal when unset
  EENPLAN_OFFLINE_PASSPHRASE   the offline keyring's passphrase; asked when unset
  EENPLAN_INSECURE_FAST_KDF=1  FOR TESTS ONLY: wrap keyrings with the cheapest Argon2
                               parameters. Refused unless the server is on this machine
                               (127.0.0.1, localhost, [::1]): anyone who copies such a keyring
                               can guess its passphrase quickly and owns the network.

Keys and the offline keyring:
  Daily work (org, user, device enrol/approve/revoke, plan, rekey of new epochs) needs only
  the daily keyring in --data. The network root (signs the sharing policy and administrator
  certificates) and the escrow secret (recovers keys that no remaining device holds) are in it
  too, unless `init --offline-keyring PATH` put them in a separate file. Then `policy set`
  and a `rekey` that must recover keys through escrow ask for --offline-keyring PATH.";

/// eenplan-admin: run an eenplan network — organisations, users, device enrolment and
/// revocation, the sharing policy, and the key rotations they cause.
#[derive(Debug, Parser)]
#[command(name = "eenplan-admin", version, after_help = ENVIRONMENT_HELP, after_long_help = ENVIRONMENT_HELP)]
pub struct Cli {
    /// The directory holding the keyring (required; or set EENPLAN_ADMIN_DATA).
    // Optional to clap because a global argument cannot be required; checked before any command.
    #[arg(long, value_name = "DIR", env = "EENPLAN_ADMIN_DATA", global = true)]
    pub data: Option<PathBuf>,

    /// The server, as https://host[:port]; overrides the one stored at init.
    #[arg(long, value_name = "URL", env = "EENPLAN_SERVER", global = true)]
    pub server: Option<String>,

    /// The offline keyring with the root and escrow keys: where `init` writes them instead of
    /// into the daily keyring, and where the commands that need them read them.
    #[arg(long, value_name = "PATH", env = "EENPLAN_OFFLINE_KEYRING", global = true)]
    pub offline_keyring: Option<PathBuf>,

    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Creates the network's keys, registers them with a fresh server, and prints the root
    /// key's fingerprint. With --offline-keyring PATH the root and escrow keys go to PATH, not
    /// into the daily keyring.
    Init(InitArgs),
    /// Organisations, each with its offline lease.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Users: people, each of one organisation, in one role.
    #[command(subcommand)]
    User(UserCommand),
    /// Devices: enrolment codes, approval, listing, revocation.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Who takes part in which plan.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// The sharing policy: which role may read and write which compartment.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Retention: erases closed plans whose retention period (the policy's years after the
    /// close) has ended.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Moves every document that waits for a new key to a new key epoch; continues an
    /// interrupted run.
    #[command(long_about = REKEY_HELP)]
    Rekey,
    /// The access log (NEN 7513): audit keys, verifying every chain, who did what.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Administrators: a new one per organisation (or network-wide), certified by the root
    /// without their key leaving their own keyring.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The administrator's web page (in Dutch), served by this process on 127.0.0.1 only, so
    /// the keys never leave this keyring. Prints a one-time login link; stop with Ctrl-C.
    Console(ConsoleArgs),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Run by the new administrator: makes their key in a new keyring directory (--data) and
    /// prints a request to hand to whoever holds the network root.
    Request(AdminRequestArgs),
    /// Run by whoever holds the root: certifies the key of a request for one organisation
    /// (--org) or the whole network (--network-wide), registers it with the server, and
    /// prints a grant to hand back.
    Add(AdminAddArgs),
    /// Run by the new administrator: finishes their keyring with the grant. The network's
    /// root key comes from the grant (compare its fingerprint with the root holder's).
    Accept(AdminAcceptArgs),
}

#[derive(Debug, Args)]
pub struct AdminRequestArgs {
    /// The new administrator's name, as devices will show who approved them.
    #[arg(long)]
    pub name: String,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("scope").required(true).args(["org", "network_wide"])))]
pub struct AdminAddArgs {
    /// The organisation the new administrator serves (by its exact name).
    #[arg(long)]
    pub org: Option<String>,
    /// A network-wide administrator instead.
    #[arg(long)]
    pub network_wide: bool,
    /// The request `admin request` printed.
    pub request: String,
}

#[derive(Debug, Args)]
pub struct AdminAcceptArgs {
    /// The grant `admin add` printed.
    pub grant: String,
    /// The root fingerprint the root holder told you (out of band); refused if it differs.
    #[arg(long)]
    pub root_fingerprint: Option<String>,
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The port on 127.0.0.1 (0: any free port; the login link names it).
    #[arg(long, default_value_t = 8470)]
    pub port: u16,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// An organisation's audit keys.
    #[command(subcommand)]
    Key(AuditKeyCommand),
    /// Fetches every access-log upload of the organisations whose audit key this keyring
    /// holds, and the server's own log, and checks every chain: missing, forged and forked
    /// events, and devices silent past their lease. Exits non-zero when anything is wrong.
    Verify,
    /// The access-log events of one plan, user or device (NEN 7513 fields), from verified
    /// chains only.
    Query(AuditQueryArgs),
    /// "Wie heeft ons dossier bekeken?": one plain-Dutch line per person for a family.
    FamilyReport(FamilyReportArgs),
}

#[derive(Debug, Subcommand)]
pub enum AuditKeyCommand {
    /// Makes the organisation's next audit key: the secret stays in this keyring, the public
    /// half is signed by the network root (ask --offline-keyring when it lives there) and
    /// sent to the server, which hands it to the organisation's devices.
    Create(AuditKeyCreateArgs),
}

#[derive(Debug, Args)]
pub struct AuditKeyCreateArgs {
    /// The organisation, by name.
    #[arg(long)]
    pub org: String,
}

/// The days an audit read covers: YYYY-MM-DD, both included, as the Netherlands counts days.
#[derive(Debug, Args)]
pub struct DateRange {
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: Option<String>,
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("subject").required(true).args(["plan", "user", "device"])))]
pub struct AuditQueryArgs {
    /// A plan id (hex).
    #[arg(long)]
    pub plan: Option<String>,
    /// A user: a name, or the numeric id from `user list`.
    #[arg(long)]
    pub user: Option<String>,
    /// A device: its id, a unique prefix of at least six characters, or its unique name.
    #[arg(long)]
    pub device: Option<String>,
    #[command(flatten)]
    pub dates: DateRange,
    /// Comma-separated values with a header row, instead of a table.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct FamilyReportArgs {
    /// The plan id (hex).
    pub plan: String,
    #[command(flatten)]
    pub dates: DateRange,
}

const REKEY_HELP: &str = "\
Moves every document that waits for a new key to a new key epoch.

A revocation, an unassignment or a policy change queues the documents that someone may no
longer read; until they move on, the server refuses writes to them. For each one this makes a
new key, seals it to every device that may still read the document (after checking its
certificate against this keyring's root and its role against the policy) and to escrow, and
seals older keys to devices that lack them, opened from escrow. Nothing is decrypted but keys.
A device this keyring revoked gets nothing, whatever the server lists.

Without the escrow secret (kept in an offline keyring that was not given), older keys are
left to the devices that hold them; a document whose older keys no remaining device holds
is left waiting for `eenplan-admin rekey --offline-keyring PATH`.

`device revoke`, `plan unassign` and `policy set` run this themselves; run it alone to finish
what an interrupted run left. Running it again is always safe: work that was done is not
redone, and the end state is the same.";

#[derive(Debug, Args)]
pub struct InitArgs {
    /// This administrator's name, as devices will show it.
    #[arg(long)]
    pub name: String,
    /// The one-time secret the new server wrote to the file `init-secret` in its data
    /// directory: only who can read the server's files may claim it.
    #[arg(long, env = "EENPLAN_INIT_SECRET", hide_env_values = true)]
    pub init_secret: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Adds an organisation.
    Add(OrgAddArgs),
    /// Lists the organisations.
    List,
}

#[derive(Debug, Args)]
pub struct OrgAddArgs {
    pub name: String,
    /// How long its devices may work without syncing before they lock, in hours.
    #[arg(long, default_value_t = 72, value_parser = clap::value_parser!(u32).range(1..=24 * 366))]
    pub lease_hours: u32,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Adds a user to an organisation.
    Add(UserAddArgs),
    /// Lists the users.
    List,
    /// Gives a user another role: re-certifies their devices for it, and moves what the
    /// user can no longer read or write to a new key epoch (progress as for `rekey`).
    SetRole(UserSetRoleArgs),
    /// Moves every user of a retired role to another role, re-certifying each one's devices
    /// as `set-role` does (one line per user), then moves what they lost to a new key epoch.
    #[command(long_about = RETIRE_ROLE_HELP)]
    RetireRole(UserRetireRoleArgs),
    /// Offboards someone who leaves: revokes every device of theirs in one revocation list,
    /// leaves a wipe order for each, removes them from every plan they take part in, and
    /// moves what they could read to new keys in one pass. Running it again finishes an
    /// interrupted offboarding and changes nothing after a finished one.
    Offboard(UserOffboardArgs),
}

#[derive(Debug, Args)]
pub struct UserOffboardArgs {
    /// The user: a name, or the numeric id from `user list`.
    pub user: String,
    /// Why, for the record (shown in the output, e.g. "uit dienst").
    #[arg(long)]
    pub reason: Option<String>,
}

const RETIRE_ROLE_HELP: &str = "\
Moves every user of a retired role to another role.

Each user whose role is --from gets role --to: their devices are re-certified as `user
set-role` does, and one line per user says so. Then the documents they can no longer read or
write move to a new key epoch (progress as for `rekey`). Running it again is safe: users
already moved are no longer in --from.

Example: regie is a function per plan, not a role, so certificates of networks set up with
the old role `regisseur` are moved with

    eenplan-admin user retire-role --from regisseur --to wijkteam

--to must be a role the policy in force names; --from may be any role users still carry.
Run it while the policy still names --from, then `policy set` one without it: users keep
what both roles read, and nothing is taken from anyone before they are moved.";

#[derive(Debug, Args)]
pub struct UserRetireRoleArgs {
    /// The retired role, as users and their certificates carry it (it need not be one this
    /// CLI still offers).
    #[arg(long)]
    pub from: String,
    /// The role they get instead.
    #[arg(long, value_parser = role())]
    pub to: Role,
}

#[derive(Debug, Args)]
pub struct UserSetRoleArgs {
    /// The user: a name, or the numeric id from `user list`.
    pub user: String,
    #[arg(long, value_parser = role())]
    pub role: Role,
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The organisation's name.
    #[arg(long)]
    pub org: String,
    #[arg(long)]
    pub name: String,
    #[arg(long, value_parser = role())]
    pub role: Role,
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Makes an enrolment code for one of a user's devices and prints it.
    Enrol(EnrolArgs),
    /// Lists devices.
    List(DeviceListArgs),
    /// Certifies devices that claimed an enrolment code.
    Approve(ApproveArgs),
    /// Revokes a device: the server refuses it at once and deletes its keys, a wipe order
    /// waits for it, and every document it could read moves to a new key.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The device: its id as `device list` shows it, a unique prefix of at least six
    /// characters, or its unique name ("Wim's Android").
    pub device: String,
    /// Why it is revoked.
    #[arg(long, value_parser = reason())]
    pub reason: RevocationReason,
}

#[derive(Debug, Args)]
pub struct EnrolArgs {
    /// The user: a name, or the numeric id from `user list`.
    #[arg(long)]
    pub user: String,
    /// How long the code may be claimed, in hours.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=24 * 30))]
    pub valid_hours: u32,
}

#[derive(Debug, Args)]
pub struct DeviceListArgs {
    /// Only devices that claimed a code and wait for approval.
    #[arg(long)]
    pub pending: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["code", "all_pending"])))]
pub struct ApproveArgs {
    /// The enrolment code the device was enrolled with (as `device enrol` printed it).
    #[arg(long)]
    pub code: Option<String>,
    /// Every device waiting for approval.
    #[arg(long)]
    pub all_pending: bool,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Makes a user a participant of a plan.
    Assign(AssignArgs),
    /// Removes a user from a plan; the documents they could read move to a new key, so their
    /// devices read nothing written afterwards. In a plan with a signed membership chain, the
    /// removal is an entry this administrator signs.
    Unassign(UnassignArgs),
    /// Offers regie of a plan to a participant, for a regisseur who is gone (an entry of the
    /// plan's membership chain this administrator signs); they hold it once they accept.
    Handover(HandoverArgs),
}

#[derive(Debug, Args)]
pub struct HandoverArgs {
    /// The plan's id (32 hexadecimal characters).
    pub plan: PlanId,
    /// The participant offered regie: a name, or the numeric id from `user list`.
    #[arg(long)]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct UnassignArgs {
    /// The plan's id (32 hexadecimal characters).
    pub plan: PlanId,
    /// The user: a name, or the numeric id from `user list`.
    #[arg(long)]
    pub user: String,
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Lists the closed plans, verifies each one's membership chain against the root, and
    /// asks the server to erase every plan whose retention period has ended: its envelopes
    /// (escrow's too), bundles and chain. The server checks the same by its own clock.
    Run(RetentionRunArgs),
}

#[derive(Debug, Args)]
pub struct RetentionRunArgs {
    /// The moment to judge by (YYYY-MM-DD, midnight UTC) instead of now; the server still
    /// erases only what has ended by its own clock.
    #[arg(long, value_parser = parse_day)]
    pub now: Option<i64>,
}

/// A day (YYYY-MM-DD) as milliseconds since the epoch at midnight UTC.
fn parse_day(text: &str) -> Result<i64, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day =
        time::Date::parse(text.trim(), format).map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD)"))?;
    let seconds = day.midnight().assume_utc().unix_timestamp();
    seconds.checked_mul(1000).ok_or_else(|| format!("{text:?} is out of range"))
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Prints the policy in force, after checking the root's signature on it, as a TOML file
    /// that `policy set` reads back (JSON with --json).
    Show,
    /// Signs a policy file with the root key and makes it the network's policy. Its `version`
    /// must be higher than the current one. Documents a role may no longer read move to a new
    /// key. Needs the root: the offline keyring, if init made one.
    Set(PolicySetArgs),
}

#[derive(Debug, Args)]
pub struct PolicySetArgs {
    /// The policy file (TOML, like the one `policy show` prints).
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct AssignArgs {
    /// The plan's id (32 hexadecimal characters).
    pub plan: PlanId,
    /// The user: a name, or the numeric id from `user list`.
    #[arg(long)]
    pub user: String,
    #[arg(long, value_parser = role())]
    pub role: Role,
}

fn reason() -> impl TypedValueParser<Value = RevocationReason> {
    PossibleValuesParser::new(["lost", "stolen", "replaced", "left"])
        .try_map(|text: String| RevocationReason::parse(&text).ok_or("lost, stolen, replaced or left"))
}

fn role() -> impl TypedValueParser<Value = Role> {
    PossibleValuesParser::new(Role::ALL.iter().map(|r| r.as_str()))
        .try_map(|text: String| text.parse::<Role>())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
