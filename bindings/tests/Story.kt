// A home visit told through the Kotlin bindings on the JVM, against a real eenplan-server: the
// same story as story.py. Two phones are enrolled, the regisseur's phone creates a plan and
// shares it, both phones edit offline (one field on both), they sync and merge, and the
// regisseur settles the conflict. One function per step, so later steps append easily.
//
// Run by `cargo test --workspace` (bindings/tests/stories.rs), which generates the bindings,
// compiles this file with them and passes EENPLAN_SERVER, EENPLAN_ADMIN and EENPLAN_WORK.

import java.io.File
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.concurrent.thread
import kotlinx.coroutines.runBlocking
import nl.eenplan.*

const val ORG = "Wijkteam Noord"
val work: String = System.getenv("EENPLAN_WORK")

/** `eenplan-server serve` on a free loopback port; its `listening on` line gives the URL. */
class Server {
    private val process: Process = ProcessBuilder(
        System.getenv("EENPLAN_SERVER"), "serve", "--data", "$work/server", "--listen", "127.0.0.1:0"
    ).redirectError(ProcessBuilder.Redirect.INHERIT).also { it.environment()["RUST_LOG"] = "warn" }.start()
    val url: String

    init {
        val lines = process.inputStream.bufferedReader()
        url = generateSequence { lines.readLine() }
            .firstOrNull { it.startsWith("listening on ") }
            ?.let { "http://" + it.removePrefix("listening on ").trim() }
            ?: error("the server stopped before listening")
        // Keep reading its output so the server never blocks on a full pipe.
        thread(isDaemon = true) { lines.readText() }
    }

    fun stop() {
        process.destroyForcibly().waitFor()
    }
}

/** The administrator, through the real eenplan-admin binary. */
class Admin(private val serverUrl: String) {
    init {
        // A fresh server is claimed with the one-time secret it wrote to its data directory.
        val secret = java.io.File("$work/server/init-secret").readText().trim()
        run("init", "--server", serverUrl, "--name", "Beheer", "--init-secret", secret)
    }

    fun run(vararg args: String): String {
        val process = ProcessBuilder(System.getenv("EENPLAN_ADMIN"), "--data", "$work/admin", *args)
            .also {
                it.environment()["EENPLAN_ADMIN_PASSPHRASE"] = "admin-test"
                it.environment()["EENPLAN_INSECURE_FAST_KDF"] = "1"
                it.environment()["EENPLAN_SERVER"] = serverUrl
            }
            .start()
        val stdout = process.inputStream.bufferedReader().readText()
        val stderr = process.errorStream.bufferedReader().readText()
        check(process.waitFor() == 0) { "eenplan-admin ${args.toList()} failed: $stderr" }
        return stdout.trim()
    }
}

/** Records what the device announces. Called on the sync's thread before the sync returns. */
class Recorder : DeviceListener {
    val changed = CopyOnWriteArrayList<List<String>>()
    val revoked = CopyOnWriteArrayList<Boolean>()

    override fun plansChanged(planIds: List<String>) {
        changed.add(planIds)
    }

    override fun deviceRevoked(wiped: Boolean) {
        revoked.add(wiped)
    }
}

class Phone(val name: String, val user: String) {
    val listener = Recorder()
    val device: Device = Device.openOrInit("$work/$name", passphraseKeystore("$name-passphrase"))

    init {
        device.setListener(listener)
    }
}

data class SharedPlan(val plan: String, val goal: String, val action: String)

// --- the story, one step per function ------------------------------------------------------

suspend fun enrolTwoPhones(server: Server, admin: Admin): Pair<Phone, Phone> {
    admin.run("org", "add", ORG)
    admin.run("user", "add", "--org", ORG, "--name", "Rita", "--role", "wijkteam")
    admin.run("user", "add", "--org", ORG, "--name", "Wim", "--role", "wijkteam")
    val rita = Phone("rita-phone", "Rita")
    val wim = Phone("wim-phone", "Wim")
    for (phone in listOf(rita, wim)) {
        val code = admin.run("device", "enrol", "--user", phone.user)
        check(phone.device.enrol(server.url, code) == Enrolment.PENDING_APPROVAL)
        try {
            phone.device.sync()
            error("a phone that is not approved yet must not sync")
        } catch (expected: ApiException.NotApproved) {
            check(expected.message!!.isNotEmpty())
        }
        admin.run("device", "approve", "--code", code)
        phone.device.sync()
        val status = phone.device.status()
        check(status.enrolment == Enrolment.ACTIVE) { "${phone.name}: $status" }
        check(status.user == phone.user && status.organisation == ORG) { "${phone.name}: $status" }
    }
    return rita to wim
}

suspend fun createAndSharePlan(rita: Phone, wim: Phone): SharedPlan {
    val device = rita.device
    val plan = device.createPlan("Jansen")
    val goal = device.addGoal(plan, "financiën", "Schulden in beeld")
    val action = device.addAction(
        plan, NewAction(goal = goal, title = "Budgetcoach aanvragen", ownerOrg = ORG, ownerPerson = null, due = "2026-12-15")
    )
    device.addAgreement(plan, "Sanne belt de budgetcoach voor vrijdag.")
    // The first sync registers the plan with the server; then it can be shared.
    device.sync()
    device.sharePlan(plan, "Wim", Role.WIJKTEAM)
    device.sync()
    val summary = wim.device.sync()
    check(plan in summary.newPlans) { "Wim's phone received the plan: $summary" }
    check(listOf(plan) in wim.listener.changed) { "Wim's listener heard of the plan: ${wim.listener.changed}" }
    val entries = wim.device.listPlans()
    check(entries == listOf(PlanListEntry.Plan(id = plan, family = "Jansen"))) { "Wim's plans: $entries" }
    return SharedPlan(plan, goal, action)
}

fun bothPhonesEditOffline(rita: Phone, wim: Phone, shared: SharedPlan) {
    val (plan, goal, action) = shared
    // No sync in this step: the server hears of none of it until the next one.
    val text = "Huisbezoek 😀 gezin thuis."
    val note = rita.device.addNote(plan, Compartment.BASIS, NoteKind.HOME_VISIT, text)
    // A Kotlin String index is a UTF-16 offset: the cursor right after the emoji.
    val cursor = text.indexOf("😀") + "😀".length
    rita.device.editNote(plan, Compartment.BASIS, note, cursor.toUInt(), 0u, " Sanne lacht.")
    rita.device.setActionDue(plan, action, "2026-12-22")
    wim.device.setActionDue(plan, action, "2027-01-05")
    wim.device.setGoalStatus(plan, goal, GoalStatus.IN_PROGRESS)
    wim.device.addAgreement(plan, "Wim komt dinsdag terug.")
    for (phone in listOf(rita, wim)) {
        check(phone.device.pendingChanges() > 0uL) { "${phone.name} has changes to push" }
    }
}

suspend fun syncAndMerge(rita: Phone, wim: Phone, plan: String) {
    rita.device.sync()
    wim.device.sync()
    rita.device.sync()
    val view = rita.device.readPlan(plan)
    check(view == wim.device.readPlan(plan)) { "both phones show the same plan" }
    check(view.notes.single().text == "Huisbezoek 😀 Sanne lacht. gezin thuis.") { "note: ${view.notes}" }
    check(view.agreements.map { it.text }.toSet() == setOf("Sanne belt de budgetcoach voor vrijdag.", "Wim komt dinsdag terug."))
    check(view.goals.single().status == "in_progress") { "Wim's goal status arrived" }
    val perDomain = view.goals.groupBy { it.domain }
    check(perDomain.keys == setOf("financiën") && "financiën" in view.domains)
    for (phone in listOf(rita, wim)) {
        check(phone.device.pendingChanges() == 0uL) { "${phone.name} pushed everything" }
    }
}

suspend fun settleTheConflict(rita: Phone, wim: Phone, shared: SharedPlan) {
    val (plan, _, action) = shared
    val conflict = rita.device.conflicts(plan).single()
    check(conflict.id == "basis/actions/$action/due") { "the due date conflicts: ${conflict.id}" }
    val offered = conflict.values.map { it.value }.toSet()
    check(offered == setOf(FieldValue.Text("2026-12-22"), FieldValue.Text("2027-01-05"))) { "offered: $offered" }
    rita.device.settleConflict(plan, conflict.id, Resolution.Value("2026-12-29"))
    rita.device.sync()
    wim.device.sync()
    for (phone in listOf(rita, wim)) {
        check(phone.device.conflicts(plan).isEmpty()) { "${phone.name} has no conflict left" }
        val due = phone.device.readPlan(plan).actions.single().due
        check(due == "2026-12-29") { "${phone.name} shows the settled date: $due" }
    }
}

fun badInputIsATypedError(rita: Phone, plan: String) {
    val calls = listOf<() -> Unit>(
        { rita.device.addGoal(plan, "geen domein", "x") },
        { rita.device.readPlan("not-a-plan-id") },
        { rita.device.editNote(plan, Compartment.BASIS, "00000000000000aa", 0u, 0u, "x") },
    )
    for (call in calls) {
        try {
            call()
            error("bad input was accepted")
        } catch (expected: ApiException.Invalid) {
            check(!expected.message.isNullOrEmpty()) { "the error says what was wrong" }
        }
    }
}

/** Wim's phone is stolen: revoked by the administrator, it wipes itself once online. */
suspend fun revokeAStolenPhone(admin: Admin, rita: Phone, wim: Phone, plan: String) {
    val wimId = wim.device.status().deviceId
    admin.run("device", "revoke", wimId, "--reason", "stolen")
    try {
        wim.device.sync()
        error("a revoked phone must not sync")
    } catch (expected: ApiException.Wiped) {
    }
    check(wim.listener.revoked.toList() == listOf(true)) { "Wim's listener heard of the wipe: ${wim.listener.revoked}" }
    try {
        wim.device.readPlan(plan)
        error("a wiped phone must not show the plan")
    } catch (expected: ApiException.Wiped) {
    }
    rita.device.addNote(plan, Compartment.BASIS, NoteKind.NOTE, "Na de intrekking.")
    rita.device.sync()
    check(rita.device.pendingChanges() == 0uL) { "Rita's note went out under the new key" }
    val line = admin.run("device", "list").lines().first { it.contains(wimId.take(8)) }
    check(line.contains("wiped")) { "the administrator sees the wipe: $line" }
}

fun main() = runBlocking {
    File(work).mkdirs()
    val server = Server()
    try {
        val admin = Admin(server.url)
        val (rita, wim) = enrolTwoPhones(server, admin)
        val shared = createAndSharePlan(rita, wim)
        bothPhonesEditOffline(rita, wim, shared)
        syncAndMerge(rita, wim, shared.plan)
        settleTheConflict(rita, wim, shared)
        badInputIsATypedError(rita, shared.plan)
        revokeAStolenPhone(admin, rita, wim, shared.plan)
    } finally {
        server.stop()
    }
}
