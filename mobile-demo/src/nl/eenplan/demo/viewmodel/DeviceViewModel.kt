package nl.eenplan.demo.viewmodel

import kotlinx.coroutines.Job
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import nl.eenplan.ApiException
import nl.eenplan.DeviceStatus
import nl.eenplan.Enrolment
import nl.eenplan.Platform

/** How the phone stands with the server, as the offline indicator shows it. */
enum class Connectivity {
    /** The last sync reached the server. */
    ONLINE,
    /** The worker chose to work offline (a home visit without signal): nothing is sent. */
    WORKING_OFFLINE,
    /** The last sync could not reach the server (`ApiException.Offline`). */
    UNREACHABLE,
}

data class DeviceUiState(
    val phone: String,
    val deviceId: String = "",
    val enrolment: Enrolment = Enrolment.NOT_ENROLLED,
    val user: String? = null,
    val organisation: String? = null,
    val role: String? = null,
    val server: String? = null,
    val leaseExpiresAtMs: Long? = null,
    val connectivity: Connectivity = Connectivity.ONLINE,
    val pendingChanges: Long = 0,
    val syncing: Boolean = false,
    /** What the last sync did, in words. */
    val lastSync: String? = null,
    val lock: LockState = LockState.Unlocked,
    val message: String? = null,
)

/**
 * The phone's relation to the server: enrolment, sync, the offline indicator, and the lock
 * states (revoked, wiped, lease expired). Sync is the bindings' `suspend fun sync()`, which
 * runs on a thread of the library's own; this view model only awaits it.
 */
class DeviceViewModel(session: PhoneSession) : ViewModel(session) {
    private val _state = MutableStateFlow(DeviceUiState(phone = session.name))
    val state: StateFlow<DeviceUiState> = _state.asStateFlow()

    init {
        viewModelScope.launch { session.pendingChanges.collect { n -> _state.update { it.copy(pendingChanges = n) } } }
        viewModelScope.launch { session.lock.collect { lock -> _state.update { it.copy(lock = lock) } } }
    }

    fun refresh(): Job = viewModelScope.launch {
        // A wiped device has nothing left to report (its store is gone).
        if (session.lock.value is LockState.Wiped) return@launch
        session.call { it.status() }
            .onSuccess { status ->
                if (status.leaseExpired) session.leaseRanOut()
                _state.update { it.withStatus(status) }
            }
            .onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
    }

    /**
     * Claims the administrator's enrolment code, saying what this phone is called (the name the
     * administrator finds it by); the phone then waits for approval.
     */
    fun enrol(server: String, code: String, name: String): Job = viewModelScope.launch {
        _state.update { it.copy(syncing = true, message = null) }
        try {
            val enrolment = session.device.enrol(server.trim(), code.trim(), name.trim(), Platform.ANDROID)
            _state.update { it.copy(enrolment = enrolment, message = "Aangemeld: wacht op goedkeuring door de beheerder.") }
        } catch (e: ApiException) {
            session.noteLock(e)
            _state.update { it.copy(message = e.forPeople(), connectivity = connectivityAfter(e)) }
        } finally {
            _state.update { it.copy(syncing = false) }
            refresh().join()
        }
    }

    /**
     * One round trip: push what this phone wrote, pull what it may read. While the worker works
     * offline nothing is sent; the edits wait on the phone (and survive a restart).
     */
    fun sync(): Job = viewModelScope.launch {
        if (_state.value.connectivity == Connectivity.WORKING_OFFLINE) {
            _state.update { it.copy(message = "Offline: ${it.pendingChanges} wijziging(en) blijven op dit toestel tot u weer online gaat.") }
            return@launch
        }
        _state.update { it.copy(syncing = true, message = null) }
        try {
            val summary = session.device.sync()
            session.syncSucceeded()
            val words = buildList {
                add("${summary.pushedBundles} verzonden")
                add("${summary.receivedBundles} ontvangen")
                if (summary.newPlans.isNotEmpty()) add("${summary.newPlans.size} nieuw plan")
                if (summary.refused.isNotEmpty()) add("${summary.refused.size} geweigerd")
            }.joinToString(", ")
            _state.update { it.copy(connectivity = Connectivity.ONLINE, lastSync = words) }
        } catch (e: ApiException) {
            session.noteLock(e)
            _state.update { it.copy(message = e.forPeople(), connectivity = connectivityAfter(e)) }
        } finally {
            _state.update { it.copy(syncing = false) }
            refresh().join()
        }
    }

    /** The worker's "work offline" switch. Coming back online syncs at once. */
    fun setWorkOffline(offline: Boolean): Job = viewModelScope.launch {
        if (offline) {
            _state.update { it.copy(connectivity = Connectivity.WORKING_OFFLINE, message = null) }
        } else {
            _state.update { it.copy(connectivity = Connectivity.ONLINE, message = null) }
            sync().join()
        }
    }

    private fun connectivityAfter(e: ApiException): Connectivity =
        if (e is ApiException.Offline) Connectivity.UNREACHABLE else _state.value.connectivity

    private fun DeviceUiState.withStatus(status: DeviceStatus) = copy(
        deviceId = status.deviceId,
        enrolment = status.enrolment,
        user = status.user,
        organisation = status.organisation,
        role = status.role,
        server = status.server,
        leaseExpiresAtMs = status.leaseExpiresAtMs,
        pendingChanges = status.pendingChanges.toLong(),
    )
}
