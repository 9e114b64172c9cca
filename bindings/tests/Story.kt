// A home visit told through the Kotlin bindings on the JVM, against a real eenplan-server: the
// same story as story.py. Two phones are enrolled, the regisseur's phone creates a plan and
// shares it, both phones edit offline (one field on both), they sync and merge, and the
// regisseur settles the conflict. Then what an app developer meets in the first week: who takes
// part and the safety plan, a listener that throws, error fields, a phone on a poor link (a sync
// that waits never holds up reads and edits; shares and edits made offline go at the next
// sync), closing and reopening, a
// stolen phone revoked and the same phone set up again. One function per step, so later steps
// append easily.
//
// Run by `cargo test --workspace` (bindings/tests/stories.rs), which generates the bindings,
// compiles this file with them and passes EENPLAN_SERVER, EENPLAN_ADMIN and EENPLAN_WORK.

import java.io.File
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.concurrent.thread
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.yield
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

/**
 * The shaping proxy in front of the server (link_proxy): the phone's network, which the story
 * cuts, resets and makes silent. Each command is in effect when it answers `ok`.
 */
class LinkProxy(serverUrl: String) {
    private val process: Process = ProcessBuilder(
        System.getenv("EENPLAN_LINK"), "--upstream", serverUrl.removePrefix("http://")
    ).redirectError(ProcessBuilder.Redirect.INHERIT).start()
    private val answers = process.inputStream.bufferedReader()
    private val commands = process.outputStream.bufferedWriter()
    val url: String

    init {
        val line = answers.readLine() ?: error("the link did not start")
        check(line.startsWith("listening on ")) { "the link started: $line" }
        url = "http://" + line.removePrefix("listening on ").trim()
    }

    fun command(text: String): String {
        commands.write(text + "\n")
        commands.flush()
        val answer = answers.readLine()?.trim() ?: error("the link ended")
        check(answer.startsWith("ok")) { "link $text: $answer" }
        return answer
    }

    fun stats(): Map<String, Long> =
        command("stats").split(" ").drop(1).associate { it.substringBefore("=") to it.substringAfter("=").toLong() }

    /** Polls the link's counters until [condition] holds (not a sleep standing in for it). */
    fun waitUntil(what: String, condition: (Map<String, Long>) -> Boolean) {
        val deadline = System.nanoTime() + 30_000_000_000L
        while (System.nanoTime() < deadline) {
            if (condition(stats())) return
            Thread.sleep(10)
        }
        error("the link never showed $what")
    }

    fun stop() {
        commands.close()
        process.waitFor()
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
                it.environment()["EENPLAN_ADMIN_PASSPHRASE"] = "admin-test keyring 2026"
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

/** An app's listener with a bug in it. */
class Throwing : DeviceListener {
    @Volatile var calls = 0

    override fun plansChanged(planIds: List<String>) {
        calls++
        error("a bug in the app's listener")
    }

    override fun deviceRevoked(wiped: Boolean) {
        calls++
        error("a bug in the app's listener")
    }
}

/** What eenplan logs, where an app would send it to Logcat. */
object Warnings : LogSink {
    val lines = CopyOnWriteArrayList<String>()

    override fun warning(message: String) {
        lines.add(message)
    }
}

class Phone(val name: String, val user: String) {
    val dir = "$work/$name"
    val listener = Recorder()
    var device: Device = Device.openOrInit(dir, keystore())

    init {
        device.setListener(listener)
    }

    fun keystore(passphrase: String = "$name-passphrase"): KeyStore = passphraseKeystore(passphrase)
}

/** The sentence for people that every ApiException carries. */
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

/** Runs [call], which must throw [E]; returns it. */
inline fun <reified E : ApiException> fails(call: () -> Unit): E {
    try {
        call()
    } catch (e: ApiException) {
        check(e is E) { "expected ${E::class.simpleName}, got $e" }
        check(e.reason.isNotBlank()) { "${E::class.simpleName} says what happened" }
        return e
    }
    error("expected ${E::class.simpleName}")
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
        if (phone === rita) {
            aMistypedServerAddressIsInvalidNotOffline(rita, code)
            aDeviceNameThatDoesNotShowIsInvalid(rita, server, code)
        }
        check(phone.device.enrol(server.url, code, "${phone.user}'s Android", Platform.ANDROID) == Enrolment.PENDING_APPROVAL)
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

suspend fun aDeviceNameThatDoesNotShowIsInvalid(phone: Phone, server: Server, code: String) {
    for (name in listOf("", "x".repeat(65), "Rita\n")) {
        try {
            phone.device.enrol(server.url, code, name, Platform.ANDROID)
            error("the name ${name} was accepted")
        } catch (e: ApiException.Invalid) {
            check(e.reason.isNotEmpty())
        }
    }
    check(phone.device.deviceName() == null) { "a refused name is not kept" }
    phone.device.rename("Rita's Android")
    check(phone.device.deviceName() == "Rita's Android")
}

suspend fun aMistypedServerAddressIsInvalidNotOffline(phone: Phone, code: String) {
    for ((address, says) in listOf(
        "127.0.0.1:8443" to "https://", "not a url" to "https://",
        "ftp://eenplan.example.nl" to "ftp", "https://" to "names no server",
    )) {
        try {
            phone.device.enrol(address, code, "Rita's Android", Platform.ANDROID)
            error("$address was accepted")
        } catch (e: ApiException.Invalid) {
            check(says in e.reason) { "$address: ${e.reason}" }
        }
    }
}

suspend fun createAndSharePlan(rita: Phone, wim: Phone): SharedPlan {
    val device = rita.device
    val plan = device.createPlan("Jansen")
    val goal = device.addGoal(plan, "financiën", "Schulden in beeld")
    val action = device.addAction(
        plan, NewAction(goal = goal, title = "Budgetcoach aanvragen", ownerOrg = ORG, ownerUser = null, due = "2026-12-15")
    )
    device.addAgreement(plan, "Sanne belt de budgetcoach voor vrijdag.")
    // The first sync registers the plan with the server; then it can be shared.
    device.sync()
    try {
        device.sharePlan(plan, "Niemand", Role.WIJKTEAM)
        error("an unknown user was accepted")
    } catch (e: ApiException.NotFound) {
        check("Niemand" in e.reason) { "the error names the user: ${e.reason}" }
    }
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
    rita.device.editNote(plan, Compartment.BASIS, note, cursor, 0, " Sanne lacht.")
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
    val note = rita.device.readPlan(plan).notes.first().id
    val calls = listOf<() -> Unit>(
        { rita.device.addGoal(plan, "geen domein", "x") },
        { rita.device.readPlan("not-a-plan-id") },
        { rita.device.editNote(plan, Compartment.BASIS, "00000000000000aa", 0, 0, "x") },
        // A negative offset from an app is an ApiException like any other.
        { rita.device.editNote(plan, Compartment.BASIS, note, -1, 0, "x") },
        { rita.device.editNote(plan, Compartment.BASIS, note, 0, -3, "x") },
        { rita.device.settleConflict(plan, "basis/family", Resolution.Pick(-1)) },
        { Device.open("", rita.keystore()) },
    )
    for (call in calls) fails<ApiException.Invalid>(call)
}

suspend fun recordWhoTakesPartAndTheSafetyPlan(rita: Phone, wim: Phone, shared: SharedPlan) {
    val (plan, _, action) = shared
    val device = rita.device
    device.addParticipant(plan, NewParticipant("Rita", ORG, Role.WIJKTEAM))
    device.addParticipant(plan, NewParticipant("Wim", ORG, Role.WIJKTEAM))
    // Regie by the plan's signed membership: Rita escalates to lokaal and hands regie to
    // Wim, who accepts on his phone.
    check(device.escalate(plan, EscalationLevel.LOKAAL, "Zorgen over veiligheid thuis.", Grondslag.CONVENANT, null, listOf()) == ShareOutcome.DONE) { "escalated" }
    check(device.handOverRegie(plan, "Wim") == ShareOutcome.DONE) { "offered" }
    fails<ApiException.Invalid> { device.handOverRegie(plan, "Niemand") }
    wim.device.sync()
    check(wim.device.readPlan(plan).membership?.offeredTo?.name == "Wim") { "both shown until Wim accepts" }
    check(wim.device.acceptRegie(plan) == ShareOutcome.DONE) { "accepted" }
    val mother = device.addMember(plan, NewMember("Sanne", "moeder", null, true))
    device.updateMember(plan, mother, MemberUpdate(relation = "moeder (gezag)", birthDate = FieldChange.Set("1990-04-01")))
    // An action's owner is a participant: the app takes the user id from the signed membership.
    val wimUser = device.readPlan(plan).membership!!.participants.single { it.name == "Wim" }.userId
    device.updateAction(plan, action, ActionUpdate(ownerOrg = "Schuldhulp", ownerUser = wimUser))
    val item = device.addSafetyItem(plan, "Ruzie escaleert als vader drinkt.", "Sanne belt bij ruzie haar zus en gaat daarheen.")
    device.sync()
    wim.device.sync()
    val view = wim.device.readPlan(plan)
    check(view.participants.map { it.name to it.role }.toSet() == setOf("Rita" to "wijkteam", "Wim" to "wijkteam")) { "participants: ${view.participants}" }
    check(view.membership?.regisseur?.name == "Wim" && view.membership?.offeredTo == null) { "regisseur: ${view.membership}" }
    check(view.escalationLevel == "lokaal" && view.escalations.single().reason == "Zorgen over veiligheid thuis.") { "escalation: ${view.escalations}" }
    check(view.membership?.steps?.any { it.act == "escalate" && it.grondslag == "convenant" } == true) { "steps: ${view.membership?.steps}" }
    val member = view.members.single { it.id == mother }
    check(member.relation == "moeder (gezag)" && member.birthDate == "1990-04-01") { "member: $member" }
    val moved = view.actions.single { it.id == action }
    check(moved.ownerOrg == "Schuldhulp" && moved.ownerUser == wimUser) { "action: $moved" }
    check(view.safetyItems.map { it.id } == listOf(item)) { "safety plan: ${view.safetyItems}" }
    val other = device.createPlanWithDomains("Bakker", listOf("wonen", "school"))
    check(device.readPlan(other).domains == listOf("wonen", "school")) { "the region's own domains" }
}

/**
 * Issue 11 on the phone: labels from the core, a case meeting whose decision becomes an action
 * on its owner's agenda, an evaluation, the ZRM trend, and the regisseur (Wim, since the
 * handover) adopting the plan, verified on Rita's phone; what changed since is shown; the
 * family's copy as HTML.
 */
suspend fun theWorkingCycle(rita: Phone, wim: Phone, shared: SharedPlan) {
    val (plan, goal, action) = shared
    check(displayLabel(Vocabulary.ACTION_STATUS, "done") == "Gedaan") { "an action status in Dutch" }
    check(displayLabel(Vocabulary.ROLE, "zvh_procesregisseur") == "Procesregisseur Zorg- en Veiligheidshuis") { "a role" }
    check(displayLabel(Vocabulary.LEVEL, "lokaal") == "Lokaal (wijkteam)") { "a level" }
    check(displayLabel(Vocabulary.COMPARTMENT, "veiligheid") == "Veiligheid") { "a compartment" }
    check(displayLabel(Vocabulary.DOMAIN, "financiën") == "Financiën") { "a life domain" }
    check(displayLabel(Vocabulary.GOAL_STATUS, "iets_nieuws") == "iets_nieuws") { "a newer app's code shows as it is" }
    check(dutchDate("2026-12-03") == "3 december 2026") { "a date as people say it" }

    // The agenda's "today" is the Netherlands' date by the device's (server-anchored) clock.
    val today = rita.device.agenda().today
    val inThreeDays = java.time.LocalDate.parse(today).plusDays(3).toString()
    val wimView = wim.device.readPlan(plan)
    check(wimView.membership?.regisseur?.name == "Wim") { "Wim holds regie" }
    val meeting = wim.device.recordMeeting(plan, today, listOf("Rita", "Wim"), listOf(
        DecisionInput("Rita vraagt de schuldhulp aan", DecisionActionInput(owner = "Rita", due = today, goal = goal)),
        DecisionInput("Over een maand opnieuw bespreken", null),
    ))
    val evaluation = wim.device.addEvaluation(plan, inThreeDays)
    fails<ApiException.Invalid> { wim.device.recordMeeting(plan, today, listOf("Niemand"), listOf()) }
    val sanne = wimView.members.single { it.name == "Sanne" }.id
    wim.device.setScore(plan, sanne, "financiën", "2026-09-01", 2)
    wim.device.setScore(plan, sanne, "financiën", today, 4)
    wim.device.sync()
    rita.device.sync()

    val view = rita.device.readPlan(plan)
    val recorded = view.meetings.single { it.id == meeting }
    val made = recorded.decisions[0].action
    check(made != null && recorded.decisions[1].action == null) { "decisions: ${recorded.decisions}" }
    val ritaUser = view.membership!!.participants.single { it.name == "Rita" }.userId
    val newAction = view.actions.single { it.id == made }
    check(newAction.ownerUser == ritaUser && newAction.due == today) { "the decision's action: $newAction" }

    val agenda = rita.device.agenda()
    val mine = agenda.items.single { it.entity == made }
    check(mine.kind == AgendaKind.ACTION_DUE && mine.plan == plan) { "the action is on Rita's agenda: $agenda" }
    check("Rita vraagt de schuldhulp aan" in agendaLine(mine)) { agendaLine(mine) }
    check(agendaKindLabel(mine.kind) == "Actie deze week") { "the kind in Dutch" }
    check(agenda.items.any { it.entity == evaluation && it.kind == AgendaKind.EVALUATION_DUE }) { "the evaluation is due: $agenda" }
    check(wim.device.agenda().items.none { it.entity == made }) { "not on Wim's agenda: not his action" }
    rita.device.evaluationHeld(plan, evaluation)
    check(rita.device.agenda().items.none { it.entity == evaluation }) { "a held evaluation leaves" }

    val trend = rita.device.scores(plan, "Sanne").single { it.domain == "financiën" }
    check(trend.direction == Direction.BETTER && trend.points.map { it.score } == listOf(2L, 4L)) { "$trend" }
    check(trendLabel(trend.direction) == "beter" && trend.label == "Financiën") { "$trend" }

    // Owners are participants: by name; an unknown name is refused.
    rita.device.setActionOwner(plan, action, "Rita")
    check(rita.device.readPlan(plan).actions.single { it.id == action }.ownerUser == ritaUser) { "owner" }
    fails<ApiException.Invalid> { rita.device.setActionOwner(plan, action, "Niemand") }

    // Only the regisseur adopts; Rita is not (any more).
    fails<ApiException.Invalid> { rita.device.adopt(plan, "akkoord", listOf()) }
    rita.device.sync()
    wim.device.sync()
    val version = wim.device.adopt(plan, "Besproken met Sanne; zij is akkoord.", listOf("Rita", "Wim"))
    check(version == 1u) { "the first version: $version" }
    wim.device.sync()
    rita.device.sync()
    val adopted = rita.device.adoptions(plan).single()
    check(adopted.check == AdoptionCheck.Verified) { "verified on Rita's phone: ${adopted.check}" }
    check(adopted.signedBy?.name == "Wim" && adopted.present.map { it.name }.toSet() == setOf("Rita", "Wim")) { "$adopted" }
    check(rita.device.latestAdoption(plan) == adopted) { "the latest" }
    val asAdopted = rita.device.adoptedPlan(plan, null)
    check(asAdopted.adoption.version == 1u && asAdopted.notAdopted.isEmpty()) { "${asAdopted.notAdopted}" }
    rita.device.addAgreement(plan, "Na de vaststelling afgesproken.")
    val changed = rita.device.adoptedPlan(plan, 1u).notAdopted
    check(changed.map { it.kind to it.change } == listOf("agreement" to "added")) { "not adopted yet: $changed" }
    fails<ApiException.Invalid> { rita.device.adoptedPlan(plan, 7u) }
    rita.device.sync()
    wim.device.sync()

    // The family's copy: one HTML page to share or print, with the adopted version, the
    // agreements and no notes.
    val html = wim.device.familyCopyHtml(plan)
    check(html.trimStart().lowercase().startsWith("<!doctype html")) { html.take(80) }
    for (expected in listOf("Jansen", "Sanne belt de budgetcoach voor vrijdag.", "versie 1")) {
        check(expected in html) { "the family's copy names $expected" }
    }
    check("Huisbezoek" !in html && "Voor Wim." !in html) { "no notes in the family's copy" }

    // Review: what others changed since Wim last looked, in words; marking empties it.
    val review = wim.device.review(plan)
    check(review.sinceMs == null && review.lines.isNotEmpty()) { "a first review shows others' work: $review" }
    check(review.lines.any { "Rita" in it.whoLabel }) { review.lines.map { it.whoLabel }.toString() }
    val wimDevice = wim.device.deviceId()
    check(review.lines.none { it.device == wimDevice }) { "none of Wim's own changes" }
    wim.device.markReviewedThrough(plan, review.through)
    check(wim.device.review(plan).lines.isEmpty()) { "nothing new after marking" }
    rita.device.addAgreement(plan, "Rita belt de school.")
    rita.device.sync()
    wim.device.sync()
    val fresh = wim.device.review(plan)
    check(fresh.sinceMs != null && fresh.lines.isNotEmpty() && "Rita" in fresh.lines.last().whoLabel) { "$fresh" }
    wim.device.markReviewed(plan)
    check(wim.device.review(plan).lines.isEmpty()) { "marked" }
}

/** The app's listener has a bug: eenplan logs it, and the sync's result stands. */
suspend fun aListenerThatThrowsDoesNotUndoTheSync(rita: Phone, wim: Phone, plan: String) {
    setLogSink(Warnings)
    val broken = Throwing()
    wim.device.setListener(broken)
    rita.device.addNote(plan, Compartment.BASIS, NoteKind.NOTE, "Voor Wim.")
    rita.device.sync()
    val summary = wim.device.sync()
    check(plan in summary.plansUpdated) { "the sync's result reached the app: $summary" }
    check(broken.calls == 1) { "the listener was called" }
    check(Warnings.lines.any { "plansChanged" in it || "plans_changed" in it }) { "the failure was logged: ${Warnings.lines}" }
    check(Warnings.lines.any { "a bug in the app's listener" in it }) { "with the app's words: ${Warnings.lines}" }
    check("Voor Wim." in wim.device.readPlan(plan).notes.map { it.text }) { "the note arrived" }
    wim.device.setListener(wim.listener)
}

/** A code someone already used: the server's refusal, with its status and typed code. */
suspend fun errorsCarryTheFieldsAnAppActsOn(server: Server, admin: Admin) {
    val stranger = Phone("stranger-phone", "Wim")
    val code = admin.run("device", "enrol", "--user", "Wim")
    stranger.device.enrol(server.url, code, "Onbekend toestel", Platform.ANDROID)
    val other = Phone("other-phone", "Wim")
    try {
        other.device.enrol(server.url, code, "Ander toestel", Platform.ANDROID)
        error("a used code was accepted")
    } catch (e: ApiException.Server) {
        check(e.status == 404.toUShort() && e.code == ErrorCode.UnknownCode) { "$e" }
    }
    for (phone in listOf(stranger, other)) phone.device.closeDevice()
}

/**
 * closeDevice() frees the directory at once; a second open while open is Busy at once; a wrong
 * passphrase says how many attempts are left.
 */
suspend fun closeAndOpenAgain(rita: Phone, plan: String) = coroutineScope {
    val device = rita.device
    var started = System.nanoTime()
    fails<ApiException.Busy> { Device.open(rita.dir, rita.keystore()) }
    check(System.nanoTime() - started < 2_000_000_000L) { "Busy is answered at once" }
    // A sync that races the close: it finishes first or finds the device closed; nothing else.
    val racing = async { runCatching { device.sync() } }
    device.closeDevice()
    device.closeDevice()
    racing.await().onFailure { check(it is ApiException.Closed) { "the racing sync: $it" } }
    fails<ApiException.Closed> { device.readPlan(plan) }
    fails<ApiException.Closed> { device.addAgreement(plan, "na het sluiten") }
    try {
        device.sync()
        error("a closed device synced")
    } catch (e: ApiException.Closed) {
    }
    val wrong = fails<ApiException.WrongKey> { Device.open(rita.dir, rita.keystore("fout")) }
    check(wrong.attemptsLeft == 9u) { "attempts left: $wrong" }
    started = System.nanoTime()
    rita.device = Device.open(rita.dir, rita.keystore())
    check(System.nanoTime() - started < 2_000_000_000L) { "the directory was free at once" }
    rita.device.setListener(rita.listener)
    check(rita.device.readPlan(plan).family == "Jansen") { "the plan is all there" }
    device.close()
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
    check(line.contains("gewist")) { "the administrator sees the wipe: $line" }
}

/** The wiped screen says why; init makes a new device, enrolled with a new code. */
suspend fun theWipedPhoneIsSetUpAgain(server: Server, admin: Admin, wim: Phone) {
    val state = deviceState(wim.dir)
    check(state is DeviceState.Wiped && state.reason == WipeReason.ORDERED) { "state: $state" }
    check(!deviceExists(wim.dir)) { "no device to open" }
    fails<ApiException.Wiped> { Device.openOrInit(wim.dir, wim.keystore()) }
    wim.device.closeDevice()
    val fresh = Device.init(wim.dir, wim.keystore("a new passphrase"))
    check(deviceState(wim.dir) == DeviceState.Present) { "a device again" }
    val code = admin.run("device", "enrol", "--user", "Wim")
    fresh.enrol(server.url, code, "Nieuwe telefoon", Platform.ANDROID)
    admin.run("device", "approve", "--code", code)
    fresh.sync()
    val newId = fresh.deviceId()
    val line = admin.run("device", "list").lines().first { it.contains(newId.take(8)) }
    check(line.contains("actief")) { "the new device is active: $line" }
    fresh.closeDevice()
}

/**
 * A phone behind a link the story controls: a plan shared before its first sync, reads and
 * edits while a sync waits for a server that does not answer, a link that drops, a share and
 * edits made offline that the next sync carries.
 */
suspend fun onAPoorLink(server: Server, admin: Admin, rita: Phone) = coroutineScope {
    admin.run("user", "add", "--org", ORG, "--name", "Lotte", "--role", "wijkteam")
    val link = LinkProxy(server.url)
    try {
        val lotte = Phone("lotte-phone", "Lotte")
        val code = admin.run("device", "enrol", "--user", "Lotte")
        lotte.device.enrol(link.url, code, "Lotte's iPhone", Platform.IOS)
        admin.run("device", "approve", "--code", code)
        lotte.device.sync()

        // Shared straight after it was made: the sharing sync registers the plan first.
        val plan = rita.device.createPlan("Bakker")
        rita.device.addNote(plan, Compartment.BASIS, NoteKind.HOME_VISIT, "eerste huisbezoek")
        val shared = rita.device.sharePlan(plan, "Lotte", Role.WIJKTEAM)
        check(shared == ShareOutcome.DONE) { "shared before its first sync: $shared" }
        lotte.device.sync()
        check(lotte.device.readPlan(plan).family == "Bakker") { "the shared plan reached Lotte" }

        // The server stops answering. A sync waits for it; reading and writing do not.
        link.command("unanswered")
        link.command("reset")
        // The failure is caught inside: a failed child would cancel the whole scope.
        val syncing = async {
            try {
                lotte.device.sync()
                null
            } catch (e: ApiException) {
                e
            }
        }
        yield()
        link.waitUntil("the sync's request") { (it["unanswered"] ?: 0) > 0 }
        check(lotte.device.readPlan(plan).family == "Bakker") { "read while the sync waits" }
        lotte.device.addNote(plan, Compartment.BASIS, NoteKind.NOTE, "tijdens de storing")
        check(!syncing.isCompleted) { "the sync still waits for its answer" }
        // The link drops: the sync is offline, in plain words; the note waits.
        link.command("reset")
        val offline = syncing.await()
        check(offline is ApiException.Offline) { "the dropped link is Offline: $offline" }
        check(!offline.reason.contains("os error") && !offline.reason.contains("timeout: global")) { offline.reason }
        check(lotte.device.pendingChanges() > 0uL) { "the note written during the sync waits" }

        // No connection at all: a share waits for the next sync, and says so.
        link.command("refuse")
        val own = lotte.device.createPlan("De Vries")
        val queued = lotte.device.sharePlan(own, "Rita", Role.WIJKTEAM)
        check(queued == ShareOutcome.QUEUED) { "offline, the share waits: $queued" }
        check(lotte.device.status().queuedShares == 1uL) { "one share waits" }
        fails<ApiException.Offline> { lotte.device.sync() }

        link.command("accept")
        lotte.device.sync()
        val status = lotte.device.status()
        check(status.queuedShares == 0uL && status.pendingChanges == 0uL) { "all sent: $status" }
        rita.device.sync()
        val notes = rita.device.readPlan(plan).notes.map { it.text }
        check("tijdens de storing" in notes) { "the note reached Rita: $notes" }
        check(rita.device.readPlan(own).family == "De Vries") { "the queued share was carried out" }
        lotte.device.closeDevice()
    } finally {
        link.stop()
    }
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
        recordWhoTakesPartAndTheSafetyPlan(rita, wim, shared)
        theWorkingCycle(rita, wim, shared)
        aListenerThatThrowsDoesNotUndoTheSync(rita, wim, shared.plan)
        errorsCarryTheFieldsAnAppActsOn(server, admin)
        onAPoorLink(server, admin, rita)
        closeAndOpenAgain(rita, shared.plan)
        revokeAStolenPhone(admin, rita, wim, shared.plan)
        theWipedPhoneIsSetUpAgain(server, admin, wim)
    } finally {
        server.stop()
    }
}
