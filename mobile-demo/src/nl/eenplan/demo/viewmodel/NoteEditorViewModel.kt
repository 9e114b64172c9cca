package nl.eenplan.demo.viewmodel

import java.util.concurrent.atomic.AtomicInteger
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.Deferred
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.Job
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import nl.eenplan.Audience
import nl.eenplan.Compartment
import nl.eenplan.NoteKind

data class NoteEditorUiState(
    val planId: String,
    val noteId: String? = null,
    /** The note's text as the core holds it (merged with others' typing after a sync). */
    val text: String = "",
    val author: String = "",
    /**
     * Where the note goes: for a new note the worker picks it (starting on the core's default
     * for their role, never basis for a wijkteam worker); an opened note stays where it is.
     */
    val compartment: Compartment = Compartment.ZORG,
    /** "zichtbaar voor: …" for [compartment], shown before saving. */
    val audience: String = "",
    /** Every keystroke so far is durable on the phone. */
    val saved: Boolean = true,
    val message: String? = null,
)

/**
 * The home-visit note editor. Each edit the text field reports (a UTF-16 offset, a count of
 * removed UTF-16 units, the inserted text: exactly what a Kotlin `String` / Android `Editable`
 * / Swing `Document` reports) goes to the core's `editNote` as it is, so two workers typing in
 * the same note merge character by character instead of overwriting each other.
 */
class NoteEditorViewModel(session: PhoneSession, val planId: String) : ViewModel(session) {
    private val _state = MutableStateFlow(NoteEditorUiState(planId))
    val state: StateFlow<NoteEditorUiState> = _state.asStateFlow()

    private class Edit(val position: Int, val delete: Int, val insert: String, val done: CompletableDeferred<Unit>)

    /** Keystrokes in the order they were typed; one consumer applies them one by one. */
    private val edits = Channel<Edit>(Channel.UNLIMITED)
    private val unapplied = AtomicInteger(0)
    /** The picker starts on the core's default for this worker's role. */
    private val initialChoice: Job
    @Volatile private var picked = false
    @Volatile private var showing: Job? = null

    init {
        initialChoice = viewModelScope.launch {
            // The default applies only until the worker picks one.
            session.call { it.defaultNoteCompartment() }.onSuccess { if (!picked) show(it).join() }
        }
        viewModelScope.launch { session.plansChanged.collect { ids -> if (planId in ids && unapplied.get() == 0) load() } }
        viewModelScope.launch {
            for (edit in edits) {
                apply(edit)
                edit.done.complete(Unit)
            }
        }
    }

    /** Opens an existing note. */
    fun open(noteId: String): Job = viewModelScope.launch {
        _state.update { it.copy(noteId = noteId) }
        load().join()
    }

    /** The picker: the worker chose where a new note goes. */
    fun choose(compartment: Compartment): Job {
        picked = true
        return show(compartment)
    }

    /** Shows [compartment] and who will read it there; a newer choice cancels an older one. */
    private fun show(compartment: Compartment): Job {
        showing?.cancel()
        return viewModelScope.launch {
            if (_state.value.noteId != null) return@launch
            _state.update { it.copy(compartment = compartment, audience = "") }
            session.call { it.audience(planId, compartment) }
                .onSuccess { audience ->
                    _state.update { if (it.compartment == compartment) it.copy(audience = audience.forPeople()) else it }
                }
                .onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
        }.also { showing = it }
    }

    /** Starts a home-visit note in the chosen compartment; its id, or null if refused. */
    fun startHomeVisit(text: String): Deferred<String?> = viewModelScope.async {
        initialChoice.join()
        showing?.join()
        val compartment = _state.value.compartment
        val created = session.call { it.addNote(planId, compartment, NoteKind.HOME_VISIT, text) }
        created.onSuccess { id -> _state.update { it.copy(noteId = id, message = null) } }
            .onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
        load().join()
        created.getOrNull()
    }

    /**
     * The text field changed: [delete] UTF-16 units at [position] replaced by [insert]. Edits
     * are applied in the order they arrive; the returned job completes when this one is durable.
     */
    fun onEdited(position: Int, delete: Int, insert: String): Job {
        val done = CompletableDeferred<Unit>()
        unapplied.incrementAndGet()
        _state.update { it.copy(saved = false) }
        edits.trySend(Edit(position, delete, insert, done))
        return done
    }

    private suspend fun apply(edit: Edit) {
        val note = _state.value.noteId
        if (note != null) {
            val compartment = _state.value.compartment
            session.call { it.editNote(planId, compartment, note, edit.position, edit.delete, edit.insert) }
                .onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
        }
        // Re-read only when the field has no keystrokes in flight, so it never jumps back.
        if (unapplied.decrementAndGet() == 0) load().join()
    }

    fun load(): Job = viewModelScope.launch {
        val note = _state.value.noteId ?: return@launch
        session.call { device ->
            val view = device.readPlan(planId)
            val found = view.notes.firstOrNull { it.id == note }
            Triple(found, view.people, found?.let { device.audience(planId, it.compartment) })
        }
            .onSuccess { (found, people, audience) ->
                _state.update {
                    if (found == null) it.copy(message = "Deze notitie staat niet (meer) in het plan.")
                    else it.copy(
                        text = found.text,
                        author = session.authorName(found.author, people),
                        compartment = found.compartment,
                        audience = audience?.forPeople() ?: it.audience,
                        saved = unapplied.get() == 0,
                    )
                }
            }
            .onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
    }
}

/** "zichtbaar voor: …" in the worker's words. */
fun Audience.forPeople(): String = when (this) {
    is Audience.ThisDeviceOnly -> "alleen dit toestel (nog niet aangemeld)"
    is Audience.PolicyNotYetKnown -> "nog onbekend: synchroniseer eerst"
    is Audience.Readers -> {
        val people = if (readers.isEmpty()) "geen van de deelnemers in het plan"
        else readers.joinToString(", ") { "${it.name} (${it.organisation})" }
        "$people (volgens het plan) · rollen: ${roles.joinToString(", ")} · en de herstelsleutel van de beheerder"
    }
}
