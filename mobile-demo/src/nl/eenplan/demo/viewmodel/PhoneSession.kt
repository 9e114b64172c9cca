package nl.eenplan.demo.viewmodel

import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.MutableSharedFlow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.SharedFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asSharedFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.withContext
import nl.eenplan.ApiException
import nl.eenplan.Device
import nl.eenplan.DeviceListener
import nl.eenplan.KeyStore
import nl.eenplan.Person
import nl.eenplan.passphraseKeystore

/**
 * Why the app cannot show plans right now. The core decides (it throws `ApiException.Wiped`,
 * `Revoked`, `LeaseExpired`, or tells the listener `deviceRevoked(wiped)`); the app only shows it.
 */
sealed interface LockState {
    data object Unlocked : LockState
    /** An administrator revoked this device; it can no longer sync. */
    data class Revoked(val message: String) : LockState
    /** The device destroyed its keys (a wipe order, or too many failed unlocks). */
    data class Wiped(val message: String) : LockState
    /** No sync within the organisation's lease: plans stay locked until a sync succeeds. */
    data class LeaseExpired(val message: String) : LockState
}

/**
 * One phone's device, shared by its view models (what an Android app keeps in its
 * Application / DI graph). It is the [DeviceListener], keeps the lock state and the
 * pending-changes count, and runs every device call on one background thread in order:
 * the core's calls are blocking and durable when they return, so the UI thread never
 * makes them.
 */
class PhoneSession(
    val name: String,
    val device: Device,
    /** Where the phone puts files it hands on (the family's copy): the share sheet's source. */
    val exportDir: java.io.File = java.io.File(System.getProperty("java.io.tmpdir"), "eenplan-demo-$name"),
) : DeviceListener, AutoCloseable {
    /** One thread, in submission order: a note typed fast reaches the core keystroke by keystroke. */
    val io: CoroutineDispatcher = Dispatchers.IO.limitedParallelism(1)

    private val _lock = MutableStateFlow<LockState>(LockState.Unlocked)
    val lock: StateFlow<LockState> = _lock.asStateFlow()

    private val _pendingChanges = MutableStateFlow(0L)
    /** Changes made on this phone that the server has not acknowledged: the offline indicator. */
    val pendingChanges: StateFlow<Long> = _pendingChanges.asStateFlow()

    private val _plansChanged = MutableSharedFlow<List<String>>(extraBufferCapacity = 64)
    /** Plans a sync changed or brought (from the listener, on the sync's thread). */
    val plansChanged: SharedFlow<List<String>> = _plansChanged.asSharedFlow()

    /** This device's id; the core names the author of a conflicting value by device. */
    val deviceId: String = device.deviceId()

    init {
        device.setListener(this)
    }

    /** Who wrote something, as far as the phone can tell: itself, or another device by id. */
    /**
     * Who wrote something, for people: the name and organisation the core found in the
     * writer's certificate ([people] from `PlanView.people`, or a conflict value's
     * `authorPerson`), else the device.
     */
    fun authorName(author: String?, people: List<Person> = emptyList()): String {
        if (author.isNullOrEmpty()) return "onbekend"
        val person = people.firstOrNull { it.device == author }
        return when {
            person != null && author == deviceId -> "${person.name} (dit toestel)"
            person != null -> "${person.name}, ${person.organisation}"
            author == deviceId -> "dit toestel"
            else -> "toestel ${author.take(8)}"
        }
    }

    override fun plansChanged(planIds: List<String>) {
        _plansChanged.tryEmit(planIds)
    }

    override fun deviceRevoked(wiped: Boolean) {
        _lock.value = if (wiped) {
            LockState.Wiped("Dit toestel is ingetrokken en gewist. Vraag de beheerder om een nieuwe aanmeldcode.")
        } else {
            LockState.Revoked("Dit toestel is ingetrokken door de beheerder en kan niet meer synchroniseren.")
        }
    }

    /**
     * Runs a device call on [io]. Errors that lock the whole app become [lock]; the others are
     * returned to the view model, which shows them where they belong.
     */
    suspend fun <T> call(block: (Device) -> T): Result<T> = withContext(io) {
        try {
            val value = block(device)
            refreshPending()
            Result.success(value)
        } catch (e: ApiException) {
            noteLock(e)
            Result.failure(e)
        }
    }

    /** Re-reads the pending-changes count (after a call the bindings made on a thread of their own). */
    suspend fun refreshPendingChanges() {
        call { }
    }

    /** Lets the lock state follow what the core said. */
    fun noteLock(e: ApiException) {
        when (e) {
            is ApiException.Wiped -> _lock.value = LockState.Wiped(e.reason)
            is ApiException.Revoked -> if (_lock.value !is LockState.Wiped) _lock.value = LockState.Revoked(e.reason)
            is ApiException.LeaseExpired -> _lock.value = LockState.LeaseExpired(e.reason)
            else -> {}
        }
    }

    /** The device's status says the lease ran out (the core refuses plan content until a sync). */
    fun leaseRanOut() {
        if (_lock.value is LockState.Unlocked) {
            _lock.value = LockState.LeaseExpired("De offline-periode is verlopen: synchroniseer om de plannen weer te openen.")
        }
    }

    /** A sync succeeded: a lease that had run out is renewed by it. */
    fun syncSucceeded() {
        if (_lock.value is LockState.LeaseExpired) _lock.value = LockState.Unlocked
    }

    private fun refreshPending() {
        try {
            _pendingChanges.value = device.pendingChanges().toLong()
        } catch (e: ApiException) {
            noteLock(e)
        }
    }

    /** Closes the device (its directory can be opened again at once), then frees the object. */
    override fun close() {
        device.closeDevice()
        device.close()
    }

    companion object {
        /**
         * Opens (or creates) the phone's device in [dataDir]. On the JVM the data key is wrapped
         * with a passphrase (Argon2id); an Android app passes its Android Keystore [KeyStore]
         * instead, an iOS app its Keychain one (mobile-demo/README.md).
         */
        fun open(name: String, dataDir: String, keystore: KeyStore = passphraseKeystore(demoPassphrase(name))): PhoneSession =
            PhoneSession(name, Device.openOrInit(dataDir, keystore), java.io.File(dataDir).absoluteFile.resolveSibling("$name-gedeeld"))

        fun demoPassphrase(name: String): String =
            (System.getenv("EENPLAN_DEMO_PASSPHRASE") ?: "eenplan-demo") + "/" + name
    }
}
