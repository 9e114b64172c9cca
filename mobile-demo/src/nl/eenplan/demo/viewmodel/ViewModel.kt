package nl.eenplan.demo.viewmodel

import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import nl.eenplan.ApiException

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
fun Throwable.forPeople(): String =
    (if (this is ApiException) reason else message)?.takeIf { it.isNotBlank() } ?: this::class.simpleName ?: "fout"

/**
 * The sentence for people every [ApiException] carries. (Its `message` lists all its fields,
 * `reason=…, attemptsLeft=…`: made for logs.)
 */
val ApiException.reason: String
    get() = when (this) {
        is ApiException.Invalid -> reason
        is ApiException.NotFound -> reason
        is ApiException.PlanClosed -> reason
        is ApiException.WrongKey -> reason
        is ApiException.KeyStore -> reason
        is ApiException.Busy -> reason
        is ApiException.Closed -> reason
        is ApiException.Damaged -> reason
        is ApiException.Storage -> reason
        is ApiException.NotEnrolled -> reason
        is ApiException.NotApproved -> reason
        is ApiException.Offline -> reason
        is ApiException.Server -> reason
        is ApiException.Untrusted -> reason
        is ApiException.Revoked -> reason
        is ApiException.Wiped -> reason
        is ApiException.LeaseExpired -> reason
        is ApiException.Internal -> reason
    }
