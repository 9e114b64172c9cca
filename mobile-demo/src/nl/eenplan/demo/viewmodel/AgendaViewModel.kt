package nl.eenplan.demo.viewmodel

import kotlinx.coroutines.Job
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import nl.eenplan.AgendaItem
import nl.eenplan.AgendaKind
import nl.eenplan.agendaKindLabel
import nl.eenplan.agendaLine
import nl.eenplan.dutchDate

/** One thing on the agenda, in the core's words; tapping it opens [planId]. */
data class AgendaRow(
    val kind: AgendaKind,
    /** "Actie te laat", "Evaluatie deze week", … (the core's label). */
    val kindLabel: String,
    val planId: String,
    val family: String,
    /** "3 december 2026", or null for conflicts. */
    val date: String?,
    val text: String,
    /** The whole line, as the CLI prints it. */
    val line: String,
    /** The action or evaluation. */
    val entity: String?,
)

data class AgendaUiState(
    /** "3 december 2026": today in the Netherlands, by the device's clock. */
    val today: String = "",
    val overdue: List<AgendaRow> = emptyList(),
    val thisWeek: List<AgendaRow> = emptyList(),
    /** Plans where this user holds regie and fields conflict. */
    val toSettle: List<AgendaRow> = emptyList(),
    /** Plans that could not be read: named, so that nothing is silently missing. */
    val unreadable: List<String> = emptyList(),
    val loaded: Boolean = false,
    val message: String? = null,
) {
    val all: List<AgendaRow> get() = overdue + thisWeek + toSettle
}

/**
 * The phone's start screen: what needs this user across every plan (the core's
 * `Device.agenda()`: their own actions overdue or due this week, evaluations due, conflicts in
 * the plans where they hold regie). Read from the device's own copies, so it works offline; it
 * re-reads itself when a sync changes plans.
 */
class AgendaViewModel(session: PhoneSession) : ViewModel(session) {
    private val _state = MutableStateFlow(AgendaUiState())
    val state: StateFlow<AgendaUiState> = _state.asStateFlow()

    init {
        viewModelScope.launch { session.plansChanged.collect { load() } }
    }

    fun load(): Job = viewModelScope.launch {
        session.call { it.agenda() }
            .onSuccess { agenda ->
                val rows = agenda.items.map { it.row() }
                _state.update {
                    it.copy(
                        today = dutchDate(agenda.today),
                        overdue = rows.filter { r -> r.kind == AgendaKind.ACTION_OVERDUE || r.kind == AgendaKind.EVALUATION_OVERDUE },
                        thisWeek = rows.filter { r -> r.kind == AgendaKind.ACTION_DUE || r.kind == AgendaKind.EVALUATION_DUE },
                        toSettle = rows.filter { r -> r.kind == AgendaKind.CONFLICTS },
                        unreadable = agenda.unreadable,
                        loaded = true,
                        message = null,
                    )
                }
            }
            .onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
    }

    private fun AgendaItem.row() = AgendaRow(
        kind = kind,
        kindLabel = agendaKindLabel(kind),
        planId = plan,
        family = family,
        date = date?.let(::dutchDate),
        text = text,
        line = agendaLine(this),
        entity = entity,
    )
}
