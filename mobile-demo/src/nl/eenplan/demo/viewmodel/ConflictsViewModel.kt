package nl.eenplan.demo.viewmodel

import kotlinx.coroutines.Deferred
import kotlinx.coroutines.Job
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import nl.eenplan.Conflict
import nl.eenplan.FieldValue
import nl.eenplan.Resolution

data class ConflictOption(val index: Int, val value: String, val author: String, val atMs: Long?)

data class ConflictRow(val id: String, val label: String, val options: List<ConflictOption>)

data class ConflictsUiState(
    val planId: String,
    val conflicts: List<ConflictRow> = emptyList(),
    val loaded: Boolean = false,
    val message: String? = null,
)

/**
 * The regisseur's conflicts screen: fields that two people set at the same time, each value
 * with who wrote it and when; settling keeps one of them or writes a new one (checked by the
 * core like any edit). Settling is an ordinary change that the next sync spreads.
 */
class ConflictsViewModel(session: PhoneSession, val planId: String) : ViewModel(session) {
    private val _state = MutableStateFlow(ConflictsUiState(planId))
    val state: StateFlow<ConflictsUiState> = _state.asStateFlow()

    init {
        viewModelScope.launch { session.plansChanged.collect { ids -> if (planId in ids) load() } }
    }

    fun load(): Job = viewModelScope.launch {
        session.call { it.conflicts(planId) }
            .onSuccess { list -> _state.update { it.copy(conflicts = list.map(::row), loaded = true, message = null) } }
            .onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
    }

    fun keep(conflict: String, option: Int): Deferred<Boolean> = settle(conflict, Resolution.Pick(option))

    fun settleWith(conflict: String, value: String): Deferred<Boolean> = settle(conflict, Resolution.Value(value))

    private fun settle(conflict: String, resolution: Resolution): Deferred<Boolean> = viewModelScope.async {
        val result = session.call { it.settleConflict(planId, conflict, resolution) }
        result.onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
        load().join()
        result.isSuccess
    }

    private fun row(conflict: Conflict) = ConflictRow(
        id = conflict.id,
        label = conflict.label,
        options = conflict.values.mapIndexed { i, v ->
            ConflictOption(i, v.value.shown(), v.authorPerson?.let { "${it.name}, ${it.organisation}" } ?: session.authorName(v.author), v.atMs)
        },
    )
}

/** A conflicting value as people read it. */
fun FieldValue.shown(): String = when (this) {
    is FieldValue.Text -> v1
    is FieldValue.Int -> v1.toString()
    is FieldValue.Bool -> if (v1) "ja" else "nee"
    FieldValue.Null -> "(leeg)"
}
