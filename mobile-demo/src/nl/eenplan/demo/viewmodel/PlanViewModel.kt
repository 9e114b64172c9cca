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
import nl.eenplan.GoalStatus
import nl.eenplan.NewAction
import nl.eenplan.NewParticipant
import nl.eenplan.PlanView
import nl.eenplan.Role

data class ActionRow(val id: String, val title: String, val owner: String, val due: String?, val status: String)

data class GoalRow(val id: String, val title: String, val status: String, val actions: List<ActionRow>)

/** One life domain (leefgebied) with the plan's goals in it. */
data class DomainSection(val domain: String, val goals: List<GoalRow>)

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
    val loaded: Boolean = false,
    val message: String? = null,
)

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
        session.call { device -> device.readPlan(planId) to device.conflicts(planId).size }
            .onSuccess { (view, conflicts) -> _state.update { it.from(view, conflicts) } }
            .onFailure { e -> if (e !is ApiException.LeaseExpired) _state.update { it.copy(message = e.forPeople()) } }
    }

    fun addGoal(domain: String, title: String): Deferred<String?> = edit { it.addGoal(planId, domain, title) }

    fun setGoalStatus(goal: String, status: GoalStatus): Deferred<Unit?> = edit { it.setGoalStatus(planId, goal, status) }

    fun addAction(goal: String, title: String, ownerOrg: String, due: String?): Deferred<String?> = edit {
        it.addAction(planId, NewAction(goal = goal, title = title, ownerOrg = ownerOrg, ownerPerson = null, due = due))
    }

    fun setActionDue(action: String, due: String?): Deferred<Unit?> = edit { it.setActionDue(planId, action, due) }

    fun setActionStatus(action: String, status: ActionStatus): Deferred<Unit?> = edit { it.setActionStatus(planId, action, status) }

    fun addAgreement(text: String): Deferred<String?> = edit { it.addAgreement(planId, text) }

    /** Lists someone among the plan's participants (what "zichtbaar voor" names). */
    fun addParticipant(name: String, organisation: String, role: Role): Deferred<String?> = edit {
        it.addParticipant(planId, NewParticipant(name = name, organisation = organisation, role = role))
    }

    /** Gives a colleague (by user name) a part in the plan; needs the server. */
    fun share(user: String, role: Role): Deferred<Boolean> = viewModelScope.async {
        try {
            session.device.sharePlan(planId, user, role)
            _state.update { it.copy(message = "Gedeeld met $user") }
            true
        } catch (e: ApiException) {
            session.noteLock(e)
            _state.update { it.copy(message = e.forPeople()) }
            false
        }
    }

    /** Runs one edit; a refused input becomes the screen's message, and the plan is re-read. */
    private fun <T> edit(block: (Device) -> T): Deferred<T?> = viewModelScope.async {
        val result = session.call(block)
        result.onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
        result.onSuccess { _state.update { it.copy(message = null) } }
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
                            ActionRow(a.id, a.title, listOfNotNull(a.ownerOrg, a.ownerPerson).joinToString(" · "), a.due, a.status)
                        })
                    })
                }
            },
            allDomains = view.domains,
            agreements = view.agreements.map { TextRow(it.id, it.text, session.authorName(it.author, view.people), it.createdAtMs) },
            notes = view.notes.map { TextRow(it.id, it.text, session.authorName(it.author, view.people), it.createdAtMs, it.kind) },
            conflicts = conflicts,
            loaded = true,
        )
    }
}
