package nl.eenplan.demo.viewmodel

import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel

/**
 * The base of every view model, shaped like Android's `ViewModel`: a scope that lives as long
 * as the screen's entry in the back stack, state exposed as a `StateFlow`, and one function per
 * user intent that launches work and returns at once. Functions return the `Job` (or `Deferred`)
 * they launched; a screen ignores it, the headless script joins it.
 */
abstract class ViewModel(protected val session: PhoneSession) : AutoCloseable {
    protected val viewModelScope = CoroutineScope(SupervisorJob() + Dispatchers.Default)

    override fun close() {
        viewModelScope.cancel()
    }
}

/** A short text for a refused input, shown near the field that caused it. */
fun Throwable.forPeople(): String = message?.takeIf { it.isNotBlank() } ?: this::class.simpleName ?: "fout"
