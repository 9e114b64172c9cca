package nl.eenplan.demo.viewmodel

import kotlinx.coroutines.Deferred
import kotlinx.coroutines.Job
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import nl.eenplan.ActionStatus
import nl.eenplan.ApiException
import nl.eenplan.Device
import nl.eenplan.EscalationLevel
import nl.eenplan.GoalStatus
import nl.eenplan.Grondslag
import nl.eenplan.Membership
import nl.eenplan.NewAction
import nl.eenplan.NewMember
import nl.eenplan.NewParticipant
import nl.eenplan.PlanParticipant
import nl.eenplan.PlanView
import nl.eenplan.Role
import nl.eenplan.ShareOutcome
import nl.eenplan.Vocabulary
import nl.eenplan.displayLabel
import nl.eenplan.roleLabel

/** [owner] in words ("Wijkteam Noord · Wim"); [ownerUser] the participant who does it. */
data class ActionRow(val id: String, val title: String, val owner: String, val due: String?, val status: String, val ownerUser: Long? = null)

data class GoalRow(val id: String, val title: String, val status: String, val actions: List<ActionRow>)

/** One life domain (leefgebied) with the plan's goals in it. */
data class DomainSection(val domain: String, val goals: List<GoalRow>)

/** A family member (gezinslid) with their ZRM scores, newest date first. */
data class MemberRow(
    val id: String,
    val name: String,
    val relation: String,
    val birthDate: String?,
    val parentalAuthority: Boolean,
    val scores: List<ScoreRow>,
)

data class ScoreRow(val domain: String, val date: String, val score: Long)

/** A line of the safety plan: the danger and the safety goal that answers it. */
data class SafetyRow(val id: String, val danger: String, val goal: String, val createdAtMs: Long)

/** A participant as their certificate names them (the signed membership, not the plan's own list). */
data class ParticipantRow(val userId: Long, val name: String, val organisation: String, val role: String) {
    /** The role in words ("Procesregisseur Zorg- en Veiligheidshuis"), from the core's labels. */
    val roleLabel: String get() = displayLabel(Vocabulary.ROLE, role)
}

/** One step of the membership chain: the core's Dutch sentence, who signed it, when. */
data class StepRow(val seq: Int, val text: String, val by: String, val atMs: Long, val act: String)

/** Who takes part and who holds regie, from the plan's signed membership chain. */
data class MembershipUi(
    val regisseur: ParticipantRow,
    /** A warm handover: offered, not accepted yet; both are shown until then. */
    val offeredTo: ParticipantRow?,
    /** The level's code (regulier, lokaal, zorg_en_veiligheidshuis). */
    val level: String,
    val participants: List<ParticipantRow>,
    /** Oldest first. */
    val steps: List<StepRow>,
)

data class TextRow(val id: String, val text: String, val author: String, val createdAtMs: Long, val kind: String = "")

data class PlanUiState(
    val planId: String,
    val family: String = "",
    val phase: String = "",
    /** Only the domains that have goals, in the plan's own domain order. */
    val domains: List<DomainSection> = emptyList(),
    /** Every life domain of the plan, for the "new goal" picker. */
    val allDomains: List<String> = emptyList(),
    val agreements: List<TextRow> = emptyList(),
    val notes: List<TextRow> = emptyList(),
    val conflicts: Int = 0,
    /** The family members with their ZRM scores. */
    val members: List<MemberRow> = emptyList(),
    /** The safety plan (veiligheidsplan). */
    val safetyItems: List<SafetyRow> = emptyList(),
    /** Null until the first sync after the plan was made (the chain comes from the server). */
    val membership: MembershipUi? = null,
    /** This phone's user, as its certificate names them. */
    val me: String? = null,
    /** This phone's organisation. */
    val myOrganisation: String? = null,
    /** The newest verified adoption's version ("vastgesteld, versie 2"), if any. */
    val adoptedVersion: Int? = null,
    /** A membership act on its way to the server. */
    val busy: Boolean = false,
    val loaded: Boolean = false,
    /** What went wrong, in words (shown in red). */
    val message: String? = null,
    /** What happened, in words ("wacht op verbinding" for an act queued offline). */
    val notice: String? = null,
) {
    /** Only the regisseur adds, removes, hands over, escalates and de-escalates. */
    val isRegisseur: Boolean get() = me != null && membership?.regisseur?.name == me
    /** Regie was offered to this phone's user: they may accept it. */
    val offeredToMe: Boolean get() = me != null && membership?.offeredTo?.name == me
    /** Every goal, for the "new action" picker. */
    val goals: List<GoalRow> get() = domains.flatMap { it.goals }
}

/** An escalation level's code in words, from the core's labels. */
fun levelLabel(level: String): String = displayLabel(Vocabulary.LEVEL, level)

fun EscalationLevel.label(): String = nl.eenplan.levelLabel(this)

/** The legal ground (grondslag) in words. */
fun Grondslag.label(): String = when (this) {
    Grondslag.CONVENANT -> "convenant"
    Grondslag.TOESTEMMING -> "toestemming"
    Grondslag.MELDCODE -> "meldcode"
    Grondslag.WETTELIJKE_TAAK -> "wettelijke taak"
}

/** A professional role in words, from the core's labels. */
fun Role.label(): String = roleLabel(this)

/** What a membership act that went to the server says once it is done or queued. */
fun ShareOutcome.words(done: String): String = when (this) {
    ShareOutcome.DONE -> done
    ShareOutcome.QUEUED -> "$done: wacht op verbinding (gaat mee met de volgende sync)"
}

/**
 * One family plan: goals per life domain with their actions, agreements and notes. Every
 * change is one call into the core; the state is always re-read from the core afterwards, so
 * the screen shows what is durably stored (and merged), never a local guess.
 */
class PlanViewModel(session: PhoneSession, val planId: String) : ViewModel(session) {
    private val _state = MutableStateFlow(PlanUiState(planId))
    val state: StateFlow<PlanUiState> = _state.asStateFlow()

    init {
        viewModelScope.launch { session.plansChanged.collect { ids -> if (planId in ids) load() } }
    }

    fun load(): Job = viewModelScope.launch {
        session.call { device ->
            Triple(device.readPlan(planId), device.conflicts(planId).size, device.status()) to device.latestAdoption(planId)
        }
            .onSuccess { (read, adopted) ->
                val (view, conflicts, status) = read
                _state.update {
                    it.from(view, conflicts).copy(me = status.user, myOrganisation = status.organisation, adoptedVersion = adopted?.version?.toInt())
                }
            }
            .onFailure { e -> if (e !is ApiException.LeaseExpired) _state.update { it.copy(message = e.forPeople()) } }
    }

    fun addGoal(domain: String, title: String): Deferred<String?> = edit { it.addGoal(planId, domain, title) }

    fun setGoalStatus(goal: String, status: GoalStatus): Deferred<Unit?> = edit { it.setGoalStatus(planId, goal, status) }

    /**
     * An action under [goal]. Its owner is a participant of the signed membership ([ownerUser],
     * from `membership.participants`; their organisation goes with it), or only an
     * organisation when nobody is named.
     */
    fun addAction(goal: String, title: String, ownerOrg: String, due: String?, ownerUser: Long? = null): Deferred<String?> = edit {
        it.addAction(planId, NewAction(goal = goal, title = title, ownerOrg = ownerOrg, ownerUser = ownerUser, due = due))
    }

    /** Makes a participant (by name) the owner of an action. */
    fun setActionOwner(action: String, participant: String): Deferred<Unit?> = edit { it.setActionOwner(planId, action, participant) }

    fun setActionDue(action: String, due: String?): Deferred<Unit?> = edit { it.setActionDue(planId, action, due) }

    fun setActionStatus(action: String, status: ActionStatus): Deferred<Unit?> = edit { it.setActionStatus(planId, action, status) }

    fun addAgreement(text: String): Deferred<String?> = edit { it.addAgreement(planId, text) }

    /** Lists someone among the plan's participants (what "zichtbaar voor" names). */
    fun addParticipant(name: String, organisation: String, role: Role): Deferred<String?> = edit {
        it.addParticipant(planId, NewParticipant(name = name, organisation = organisation, role = role))
    }

    /** A family member (gezinslid); [birthDate] is YYYY-MM-DD or empty; [gezag] is parental authority. */
    fun addMember(name: String, relation: String, birthDate: String?, gezag: Boolean): Deferred<String?> = edit {
        it.addMember(planId, NewMember(name = name, relation = relation, birthDate = birthDate?.takeIf { d -> d.isNotBlank() }, parentalAuthority = gezag))
    }

    /** A ZRM score (1–5) of a member in a life domain, for today. */
    fun setScore(member: String, domain: String, score: Int, date: String = java.time.LocalDate.now().toString()): Deferred<Unit?> = edit {
        it.setScore(planId, member, domain, date, score.toLong())
    }

    /** A line of the safety plan: a danger statement and the safety goal that answers it. */
    fun addSafetyItem(danger: String, goal: String): Deferred<String?> = edit { it.addSafetyItem(planId, danger, goal) }

    /**
     * Gives a colleague (by user name) a part in the plan with [role]: the regisseur's
     * "Deelnemer toevoegen". Signed and sent by a sync; offline it waits ("wacht op verbinding").
     */
    fun share(user: String, role: Role): Deferred<Boolean> = viewModelScope.async {
        membershipAct("$user toegevoegd als ${role.label()}") { it.sharePlan(planId, user, role) } != null
    }

    /** Removes a participant (the regisseur): their devices get nothing new. */
    fun removeParticipant(user: String): Deferred<ShareOutcome?> = viewModelScope.async {
        membershipAct("$user verwijderd uit het plan") { it.removeParticipant(planId, user) }
    }

    /** Offers regie to a participant (warm handover): they hold it once they accept. */
    fun handOverRegie(to: String): Deferred<ShareOutcome?> = viewModelScope.async {
        membershipAct("Regie aangeboden aan $to") { it.handOverRegie(planId, to) }
    }

    /** Accepts the regie offered to this phone's user. */
    fun acceptRegie(): Deferred<ShareOutcome?> = viewModelScope.async {
        membershipAct("U heeft de regie aanvaard") { it.acceptRegie(planId) }
    }

    /**
     * Escalates the case (opschalen): [add] are "Naam" or "Naam:rol"; [regie] is offered regie
     * (one of the participants or of those added), or nobody.
     */
    fun escalate(level: EscalationLevel, grondslag: Grondslag, reason: String, add: List<String>, regie: String?): Deferred<ShareOutcome?> =
        viewModelScope.async {
            membershipAct("Opgeschaald naar ${level.label()}") {
                it.escalate(planId, level, reason, grondslag, regie?.takeIf { r -> r.isNotBlank() }, add.map(String::trim).filter(String::isNotEmpty))
            }
        }

    /** De-escalates (afschalen): regie goes to [regie] at once; those the escalation added leave. */
    fun deescalate(level: EscalationLevel, regie: String, reason: String): Deferred<ShareOutcome?> = viewModelScope.async {
        membershipAct("Afgeschaald naar ${level.label()}; regie bij $regie") { it.deescalate(planId, level, regie, reason) }
    }

    /**
     * One act on the plan's signed membership: the bindings' `suspend` call queues it and syncs
     * on a thread of the library's own, so nothing here blocks the UI thread. `QUEUED` (no
     * connection) is no error: the act waits on the phone for the next sync.
     */
    private suspend fun membershipAct(done: String, act: suspend (Device) -> ShareOutcome): ShareOutcome? {
        _state.update { it.copy(busy = true, message = null, notice = null) }
        val outcome = try {
            act(session.device).also { outcome -> _state.update { it.copy(notice = outcome.words(done)) } }
        } catch (e: ApiException) {
            session.noteLock(e)
            _state.update { it.copy(message = e.forPeople()) }
            null
        } finally {
            _state.update { it.copy(busy = false) }
        }
        session.refreshPendingChanges()
        load().join()
        return outcome
    }

    /** Runs one edit; a refused input becomes the screen's message, and the plan is re-read. */
    private fun <T> edit(block: (Device) -> T): Deferred<T?> = viewModelScope.async {
        val result = session.call(block)
        result.onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
        result.onSuccess { _state.update { it.copy(message = null, notice = null) } }
        load().join()
        result.getOrNull()
    }

    private fun PlanUiState.from(view: PlanView, conflicts: Int): PlanUiState {
        val actionsPerGoal = view.actions.groupBy { it.goal }
        val goalsPerDomain = view.goals.groupBy { it.domain }
        return copy(
            family = view.family,
            phase = view.phase,
            domains = view.domains.mapNotNull { domain ->
                goalsPerDomain[domain]?.let { goals ->
                    DomainSection(domain, goals.map { g ->
                        GoalRow(g.id, g.title, g.status, actionsPerGoal[g.id].orEmpty().map { a ->
                            val person = view.membership?.participants?.firstOrNull { p -> p.userId == a.ownerUser }?.name
                            ActionRow(a.id, a.title, listOfNotNull(a.ownerOrg.ifEmpty { null }, person).joinToString(" · "), a.due, a.status, a.ownerUser)
                        })
                    })
                }
            },
            allDomains = view.domains,
            agreements = view.agreements.map { TextRow(it.id, it.text, session.authorName(it.author, view.people), it.createdAtMs) },
            notes = view.notes.map { TextRow(it.id, it.text, session.authorName(it.author, view.people), it.createdAtMs, it.kind) },
            conflicts = conflicts,
            members = view.members.map { m ->
                MemberRow(m.id, m.name, m.relation, m.birthDate, m.parentalAuthority,
                    view.scores.filter { it.member == m.id }.sortedWith(compareByDescending<nl.eenplan.Score> { it.date }.thenBy { it.domain })
                        .map { ScoreRow(it.domain, it.date, it.score) })
            },
            safetyItems = view.safetyItems.map { SafetyRow(it.id, it.dangerStatement, it.safetyGoal, it.createdAtMs) },
            membership = view.membership?.let(::membershipUi),
            loaded = true,
        )
    }

    private fun membershipUi(m: Membership) = MembershipUi(
        regisseur = m.regisseur.row(),
        offeredTo = m.offeredTo?.row(),
        level = m.level,
        participants = m.participants.map { it.row() },
        steps = m.steps.map { StepRow(it.seq.toInt(), it.text, it.by, it.atMs, it.act) },
    )

    private fun PlanParticipant.row() = ParticipantRow(userId, name, organisation, role)
}
