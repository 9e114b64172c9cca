//! The command line.
//!
//! Vocabulary arguments (phase, role, statuses, ...) are parsed by the core's own `FromStr`, so
//! the CLI accepts exactly the names the documents store; clap only adds the list of possible
//! values to the help. Entity ids parse with [`EntityId`]'s `FromStr`. Everything else (dates,
//! scores, domains, text lengths) is passed through as given and validated by the core, so
//! that a phone and this CLI refuse the same input with the same message.

use std::path::PathBuf;
use std::str::FromStr;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, Parser, Subcommand};
use eenplan_core::EntityId;
use eenplan_core::plan::{
    ActionStatus, Compartment, EscalationLevel, GoalStatus, NoteKind, Phase, Role, ValidationError,
};
use eenplan_protocol::api::ServerUrl;
use eenplan_protocol::device_name::Platform;
use eenplan_protocol::membership::Grondslag;

const ENVIRONMENT_HELP: &str = "\
Environment:
  EENPLAN_DATA                 the data directory, when --data is not given
  EENPLAN_PASSPHRASE           the device passphrase; asked on the terminal when unset
  EENPLAN_NEW_PASSPHRASE       the new passphrase for `passphrase change`
  EENPLAN_TRANSFER_PASSPHRASE  the passphrase of a changes file (export, import)
  EENPLAN_MAX_FAILED_UNLOCKS   wrong passphrases in a row after which the device erases
                               itself for good (default 10)
  EENPLAN_INSECURE_FAST_KDF=1  FOR TESTS ONLY: wrap the data key with the cheapest Argon2
                               parameters (init, passphrase change). Anyone who copies the
                               data directory can then guess the passphrase quickly. Never set
                               it for real family data.";

/// eenplan: the shared family plan, on this computer.
#[derive(Debug, Parser)]
#[command(name = "eenplan", version, after_long_help = ENVIRONMENT_HELP, after_help = ENVIRONMENT_HELP)]
pub struct Cli {
    /// The device's data directory (required; or set EENPLAN_DATA).
    // Optional to clap because a global argument cannot be required; checked before any command.
    #[arg(long, value_name = "DIR", env = "EENPLAN_DATA", global = true)]
    pub data: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Creates a device in the data directory and prints its id.
    Init,
    /// The passphrase that unlocks this device.
    #[command(subcommand)]
    Passphrase(PassphraseCommand),
    /// Family plans: create, list, show, and the plan-wide settings.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Family members.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Professionals taking part in a plan.
    #[command(subcommand)]
    Participant(ParticipantCommand),
    /// Goals, per life domain.
    #[command(subcommand)]
    Goal(GoalCommand),
    /// ZRM self-sufficiency scores (1 to 5).
    #[command(subcommand)]
    Score(ScoreCommand),
    /// Actions towards a goal.
    #[command(subcommand)]
    Action(ActionCommand),
    /// Agreements (afspraken) made with the family.
    #[command(subcommand)]
    Agreement(AgreementCommand),
    /// Notes, in one of the plan's compartments.
    #[command(subcommand)]
    Note(NoteCommand),
    /// The safety plan.
    #[command(subcommand)]
    Safety(SafetyCommand),
    /// Lists the fields of a plan that hold concurrent values.
    Conflicts(ConflictsArgs),
    /// Settles a conflict: keep one of its values, or write a new one.
    Resolve(ResolveArgs),
    /// What others changed in a plan since you last marked it reviewed (--mark marks it).
    Review(ReviewArgs),
    /// Writes a whole plan to a sealed changes file, for another device to import.
    Export(ExportArgs),
    /// Merges a changes file from another device into this one.
    Import(ImportArgs),
    /// Claims an enrolment code from an administrator: registers this device's public keys.
    Enrol(EnrolArgs),
    /// Gives this device another name; the administrator sees it after the next sync.
    Rename(RenameArgs),
    /// Pushes this device's changes and pulls everything it may read, in one round trip.
    Sync(SyncArgs),
    /// This device: its id, plans, changes awaiting a push, and disk usage.
    Status(JsonFlag),
    /// My agenda across every plan: my actions overdue or due this week, evaluations due,
    /// and conflicts to settle where I hold regie.
    Agenda(JsonFlag),
    /// Evaluations of a plan with the family.
    #[command(subcommand)]
    Evaluation(EvaluationCommand),
    /// A family member's ZRM scores over time, per life domain: is the help working?
    Scores(ScoresArgs),
    /// Case meetings (casusoverleg).
    #[command(subcommand)]
    Meeting(MeetingCommand),
}

#[derive(Debug, Subcommand)]
pub enum EvaluationCommand {
    /// Plans an evaluation and prints its id.
    Add(EvaluationAddArgs),
    /// Records that an evaluation took place.
    Held(EvaluationHeldArgs),
}

#[derive(Debug, Args)]
pub struct EvaluationAddArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct EvaluationHeldArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The evaluation's id.
    pub evaluation: EntityId,
}

#[derive(Debug, Args)]
pub struct ScoresArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The family member: name or id.
    #[arg(long, value_name = "MEMBER")]
    pub member: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum MeetingCommand {
    /// Records a case meeting and prints its id.
    Add(MeetingAddArgs),
}

#[derive(Debug, Args)]
pub struct MeetingAddArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: String,
    /// A participant present (name or user id); repeat for each.
    #[arg(long, value_name = "USER", required = true)]
    pub attendee: Vec<String>,
    /// A decision; repeat for each. "TEXT | OWNER | DUE | GOAL" also makes it an action of
    /// OWNER (a participant) due on DUE (YYYY-MM-DD, may be empty) towards GOAL (its id, id
    /// prefix or title).
    #[arg(long, value_name = "TEXT")]
    pub decision: Vec<String>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Clone, Copy, Args)]
pub struct JsonFlag {
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, Args)]
pub struct SyncArgs {
    /// Stay online: sync whenever the server says another device pushed, printing one line
    /// per event, until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Print machine-readable JSON (with --watch: one object per line).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PassphraseCommand {
    /// Sets a new passphrase (EENPLAN_NEW_PASSPHRASE, or asked twice). No plan data is rewritten.
    Change,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Creates a plan and prints its id.
    Create(PlanCreateArgs),
    /// Lists the plans on this device; damaged entries are listed as such.
    List(JsonFlag),
    /// Shows everything in a plan.
    Show(PlanShowArgs),
    /// Moves a plan to another phase.
    Phase(PlanPhaseArgs),
    /// Escalates the case (the regisseur): records the step, its reason and legal ground,
    /// adds participants and offers regie to one of them (needs the server; queued offline).
    Escalate(PlanEscalateArgs),
    /// De-escalates (the regisseur): regie goes to USER at once, and the participants the
    /// escalation added leave.
    Deescalate(PlanDeescalateArgs),
    /// Offers regie to another participant (the regisseur); they hold it once they accept.
    Handover(PlanHandoverArgs),
    /// Accepts regie offered to you.
    AcceptRegie(PlanArg),
    /// Removes a participant (the regisseur): their devices get nothing new, and what they
    /// could read moves to a new key.
    RemoveParticipant(PlanRemoveParticipantArgs),
    /// Closes the plan (the regisseur): care has ended, nothing in the plan changes any more,
    /// and the retention period starts. Devices remove their copies after the grace period.
    Close(PlanArg),
    /// Gives another user access to the plan (the regisseur's device; needs the server).
    AddParticipant(PlanAddParticipantArgs),
    /// Lists the plan's participants who can read a compartment, under the sharing policy.
    Readers(PlanReadersArgs),
    /// Adopts the plan as it stands as the next version, together with the family (the
    /// regisseur): a signed record every participant's device checks.
    Adopt(PlanAdoptArgs),
    /// Shows an adopted version as it was, and what is not adopted yet.
    Adopted(PlanAdoptedArgs),
    /// Turns the free-text owners of older actions into participants, where the name is
    /// unambiguous (the regisseur).
    MigrateOwners(PlanArg),
    /// Writes the family's copy: the plan in plain Dutch for the family, as HTML (prints on
    /// A4) or PDF. It holds no professional notes and nothing from zorg, veiligheid or
    /// justitie, except what the regisseur put in (`plan family-copy`).
    Print(PlanPrintArgs),
    /// Puts a note or safety item in the family's copy, or takes it out (--remove). Only
    /// the regisseur.
    FamilyCopy(PlanFamilyCopyArgs),
}

#[derive(Debug, Args)]
pub struct PlanAdoptArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The family's agreement, e.g. "besproken met het gezin op 3 december; moeder en vader
    /// zijn akkoord".
    #[arg(long, value_name = "TEXT")]
    pub with_family: String,
    /// A participant present (name or user id); repeat for each.
    #[arg(long, value_name = "USER")]
    pub present: Vec<String>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct PlanAdoptedArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The version (default: the newest).
    #[arg(long)]
    pub version: Option<u32>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("format").required(true).args(["html", "pdf"])))]
pub struct PlanPrintArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// Write HTML to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write PDF (A4) to FILE.
    #[arg(long, value_name = "FILE")]
    pub pdf: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("item").required(true).args(["note", "safety_item"])))]
pub struct PlanFamilyCopyArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// A note, as COMPARTMENT:ID (e.g. zorg:0123456789abcdef).
    #[arg(long, value_name = "COMPARTMENT:ID", value_parser = note_ref)]
    pub note: Option<(Compartment, EntityId)>,
    /// A safety item (veiligheid), by id.
    #[arg(long, value_name = "ID")]
    pub safety_item: Option<EntityId>,
    /// Takes the item out of the family's copy.
    #[arg(long)]
    pub remove: bool,
}

fn note_ref(text: &str) -> Result<(Compartment, EntityId), String> {
    let (compartment, id) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not COMPARTMENT:ID (e.g. zorg:0123456789abcdef)"))?;
    let compartment = compartment.trim().parse::<Compartment>().map_err(|e| e.to_string())?;
    let id = id.trim().parse::<EntityId>().map_err(|e| e.to_string())?;
    Ok((compartment, id))
}

#[derive(Debug, Args)]
pub struct PlanReadersArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[arg(long, value_parser = vocabulary::<Compartment>())]
    pub compartment: Compartment,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct PlanAddParticipantArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The user's name (or numeric id) as the administrator registered it.
    #[arg(long)]
    pub user: String,
    /// The user's role in this plan.
    #[arg(long)]
    pub role: String,
}

#[derive(Debug, Args)]
pub struct EnrolArgs {
    /// The sync server, e.g. https://eenplan.example.nl or http://127.0.0.1:8443.
    #[arg(long, env = "EENPLAN_SERVER", value_parser = ServerUrl::parse)]
    pub server: ServerUrl,
    /// The one-time code the administrator gave you.
    #[arg(long)]
    pub code: String,
    /// What this device is called, so the administrator can find it ("Laptop van Wim"):
    /// 1–64 printable characters.
    #[arg(long)]
    pub name: String,
    /// The platform this device runs on.
    #[arg(long, default_value = "desktop", value_parser = parse_platform)]
    pub platform: Platform,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The device's new name: 1–64 printable characters. The server hears it at the next sync.
    pub name: String,
}

fn parse_platform(text: &str) -> Result<Platform, String> {
    Platform::parse(text).ok_or_else(|| "the platform is android, ios, desktop or other".to_string())
}

#[derive(Debug, Args)]
pub struct PlanCreateArgs {
    /// The family's name.
    #[arg(long)]
    pub family: String,
    /// Life domains, comma-separated, instead of the 13 ZRM-2017 domains.
    #[arg(long, value_name = "A,B,C", value_delimiter = ',')]
    pub domains: Option<Vec<String>>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct PlanShowArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct PlanPhaseArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[arg(value_parser = vocabulary::<Phase>())]
    pub phase: Phase,
}

#[derive(Debug, Args)]
pub struct PlanEscalateArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[arg(long, value_parser = vocabulary::<EscalationLevel>())]
    pub level: EscalationLevel,
    #[arg(long)]
    pub reason: String,
    /// The legal ground for sharing: convenant, toestemming, meldcode, wettelijke_taak.
    #[arg(long, value_parser = grondslag)]
    pub grondslag: Grondslag,
    /// The user offered regie (a participant, or one of those added).
    #[arg(long, value_name = "USER")]
    pub regie: Option<String>,
    /// A user who joins, by name (ROLE, when given, must be the user's certified role).
    #[arg(long = "add", value_name = "USER[:ROLE]")]
    pub add: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PlanDeescalateArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[arg(long, value_parser = vocabulary::<EscalationLevel>())]
    pub level: EscalationLevel,
    /// The participant who holds regie from now on.
    #[arg(long, value_name = "USER")]
    pub regie: String,
    #[arg(long, default_value = "")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct PlanHandoverArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The participant offered regie.
    #[arg(long, value_name = "USER")]
    pub to: String,
}

#[derive(Debug, Args)]
pub struct PlanArg {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
}

#[derive(Debug, Args)]
pub struct PlanRemoveParticipantArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[arg(long, value_name = "USER")]
    pub user: String,
}

fn grondslag(text: &str) -> Result<Grondslag, String> {
    Grondslag::parse(text).ok_or_else(|| {
        let known: Vec<&str> = Grondslag::ALL.iter().map(|g| g.as_str()).collect();
        format!("unknown grondslag {text:?}; one of: {}", known.join(", "))
    })
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Adds a family member and prints the id.
    Add(MemberAddArgs),
    /// Erases a family member's personal data from the plan on their request (AVG; the
    /// regisseur): the plan's basis is re-sealed without them and without its history, and
    /// the server deletes everything older. Notes that mention them are not changed: edit
    /// those first. Needs the server; queued offline.
    Erase(MemberEraseArgs),
}

#[derive(Debug, Args)]
pub struct MemberEraseArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The member's id (as `plan show --json` lists it).
    pub member: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct MemberAddArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[arg(long)]
    pub name: String,
    /// How the person relates to the family (moeder, zoon, opa, ...).
    #[arg(long)]
    pub relation: String,
    /// YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub birth_date: Option<String>,
    /// The member holds parental authority (gezag).
    #[arg(long)]
    pub gezag: bool,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum ParticipantCommand {
    /// Adds a participant and prints the id.
    Add(ParticipantAddArgs),
    /// Your own contact details in the plan, which the other participants see beside your name.
    Contact(ParticipantContactArgs),
}

#[derive(Debug, Args)]
pub struct ParticipantContactArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[arg(long)]
    pub phone: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
}

#[derive(Debug, Args)]
pub struct ParticipantAddArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[arg(long)]
    pub name: String,
    /// The participant's organisation.
    #[arg(long)]
    pub org: String,
    #[arg(long, value_parser = vocabulary::<Role>())]
    pub role: Role,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum GoalCommand {
    /// Adds a goal in a life domain and prints the id.
    Add(GoalAddArgs),
    /// Changes a goal's status or title.
    Set(GoalSetArgs),
}

#[derive(Debug, Args)]
pub struct GoalAddArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// One of the plan's life domains.
    #[arg(long)]
    pub domain: String,
    #[arg(long)]
    pub title: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true).args(["status", "title"])))]
pub struct GoalSetArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The goal's id.
    pub goal: EntityId,
    #[arg(long, value_parser = vocabulary::<GoalStatus>())]
    pub status: Option<GoalStatus>,
    #[arg(long)]
    pub title: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ScoreCommand {
    /// Sets a member's score in a life domain on a date.
    Set(ScoreSetArgs),
}

#[derive(Debug, Args)]
pub struct ScoreSetArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The family member's id.
    #[arg(long)]
    pub member: EntityId,
    /// One of the plan's life domains.
    #[arg(long)]
    pub domain: String,
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: String,
    /// 1 (acute problems) to 5 (fully self-sufficient).
    // Any integer reaches the core, so that an out-of-range score gets the core's message.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub score: i64,
}

#[derive(Debug, Subcommand)]
pub enum ActionCommand {
    /// Adds an action towards a goal and prints the id.
    Add(ActionAddArgs),
    /// Changes an action's status, due date or title.
    Set(ActionSetArgs),
}

#[derive(Debug, Args)]
pub struct ActionAddArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The goal's id.
    #[arg(long)]
    pub goal: EntityId,
    #[arg(long)]
    pub title: String,
    /// The organisation that carries the action out.
    #[arg(long, value_name = "ORG")]
    pub owner: String,
    /// Who does it: a participant of the plan (name or user id).
    #[arg(long, value_name = "USER")]
    pub owner_person: Option<String>,
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub due: Option<String>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("change").required(true).multiple(true).args(["status", "due", "no_due", "title", "owner_person"])
))]
pub struct ActionSetArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The action's id.
    pub action: EntityId,
    #[arg(long, value_parser = vocabulary::<ActionStatus>())]
    pub status: Option<ActionStatus>,
    #[arg(long, value_name = "YYYY-MM-DD", conflicts_with = "no_due")]
    pub due: Option<String>,
    /// Clears the due date.
    #[arg(long)]
    pub no_due: bool,
    #[arg(long)]
    pub title: Option<String>,
    /// Who does it: a participant of the plan (name or user id).
    #[arg(long, value_name = "USER")]
    pub owner_person: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AgreementCommand {
    /// Adds an agreement and prints the id.
    Add(AgreementAddArgs),
}

#[derive(Debug, Args)]
pub struct AgreementAddArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[arg(long)]
    pub text: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum NoteCommand {
    /// Adds a note and prints the id.
    Add(NoteAddArgs),
    /// Copies a note into another compartment (to pass it to a partner who reads that one),
    /// with its origin shown; prints the copy's id and who can read it.
    Copy(NoteCopyArgs),
}

#[derive(Debug, Args)]
pub struct NoteCopyArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The note's id.
    pub note: EntityId,
    #[arg(long, value_parser = vocabulary::<Compartment>())]
    pub from: Compartment,
    #[arg(long, value_parser = vocabulary::<Compartment>())]
    pub to: Compartment,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct NoteAddArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[arg(long)]
    pub text: String,
    /// The compartment the note belongs in; the privacy rules share each with different
    /// partners. By default the most closed one your role may write (a wijkteam note goes to
    /// zorg), never basis unless your role writes nothing else.
    #[arg(long, value_parser = vocabulary::<Compartment>())]
    pub compartment: Option<Compartment>,
    /// home_visit by default, note when another compartment than the default is named.
    #[arg(long, value_parser = vocabulary::<NoteKind>())]
    pub kind: Option<NoteKind>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub enum SafetyCommand {
    /// Adds a line to the safety plan and prints the id.
    Add(SafetyAddArgs),
}

#[derive(Debug, Args)]
pub struct SafetyAddArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The danger statement: what the worry is.
    #[arg(long, value_name = "TEXT")]
    pub danger: String,
    /// The safety goal that answers it.
    #[arg(long, value_name = "TEXT")]
    pub goal: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ConflictsArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// Mark everything this device holds of the plan now as reviewed, instead of listing.
    #[arg(long, conflicts_with = "json")]
    pub mark: bool,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("resolution").required(true).args(["pick", "value"])))]
pub struct ResolveArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The conflict's id, as `conflicts` lists it.
    pub conflict: String,
    /// Keep value N (1-based, as `conflicts` numbers them).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub pick: Option<u32>,
    /// Write this value instead, checked like any edit of the field.
    #[arg(long, value_name = "V")]
    pub value: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The plan's id, or a unique prefix of at least 4 characters.
    pub plan: String,
    /// The file to write.
    #[arg(long, value_name = "FILE")]
    pub changes: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to read.
    #[arg(long, value_name = "FILE")]
    pub changes: PathBuf,
    #[command(flatten)]
    pub output: JsonFlag,
}

/// A core vocabulary, so that one parser can list and parse all of them.
pub trait Vocabulary: Copy + Send + Sync + FromStr<Err = ValidationError> + 'static {
    fn all() -> &'static [Self];
    fn name(self) -> &'static str;
}

macro_rules! vocabularies {
    ($($ty:ty => $all:expr),+ $(,)?) => {
        $(impl Vocabulary for $ty {
            fn all() -> &'static [Self] {
                $all
            }
            fn name(self) -> &'static str {
                self.as_str()
            }
        })+
    };
}

vocabularies!(
    Phase => Phase::ALL,
    EscalationLevel => EscalationLevel::ALL,
    Role => Role::ALL,
    GoalStatus => GoalStatus::ALL,
    ActionStatus => ActionStatus::ALL,
    NoteKind => NoteKind::ALL,
    Compartment => &Compartment::ALL,
);

fn vocabulary<T: Vocabulary>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::all().iter().map(|v| PossibleValue::new(v.name())))
        .try_map(|text: String| text.parse::<T>())
}
