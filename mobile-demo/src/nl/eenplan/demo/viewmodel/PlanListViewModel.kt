package nl.eenplan.demo.viewmodel

import kotlinx.coroutines.Deferred
import kotlinx.coroutines.Job
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import nl.eenplan.PlanListEntry

data class PlanRow(val id: String, val family: String)

data class PlanListUiState(
    val plans: List<PlanRow> = emptyList(),
    /** Stored entries that could not be read; the other plans are unaffected. */
    val damaged: List<String> = emptyList(),
    val loaded: Boolean = false,
    val message: String? = null,
)

/** Every family plan on the phone. Re-reads itself when a sync brings or changes plans. */
class PlanListViewModel(session: PhoneSession) : ViewModel(session) {
    private val _state = MutableStateFlow(PlanListUiState())
    val state: StateFlow<PlanListUiState> = _state.asStateFlow()

    init {
        viewModelScope.launch { session.plansChanged.collect { load() } }
    }

    fun load(): Job = viewModelScope.launch {
        session.call { it.listPlans() }
            .onSuccess { entries ->
                _state.update {
                    it.copy(
                        plans = entries.filterIsInstance<PlanListEntry.Plan>().map { p -> PlanRow(p.id, p.family) },
                        damaged = entries.filterIsInstance<PlanListEntry.Damaged>().map { d -> d.detail },
                        loaded = true,
                        message = null,
                    )
                }
            }
            .onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
    }

    /** A new plan for a family (with the ZRM-2017 life domains); its id, or null if refused. */
    fun createPlan(family: String): Deferred<String?> = viewModelScope.async {
        val created = session.call { it.createPlan(family) }
        created.onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
        load().join()
        created.getOrNull()
    }
}
