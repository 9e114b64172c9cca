package nl.eenplan.demo

import java.io.File
import java.util.concurrent.CountDownLatch
import javax.imageio.ImageIO
import javax.swing.SwingUtilities
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking
import nl.eenplan.Enrolment
import nl.eenplan.demo.script.HomeVisitScript
import nl.eenplan.demo.script.ScriptFailure
import nl.eenplan.demo.script.composeScreenshot
import nl.eenplan.demo.ui.PhoneWindow
import nl.eenplan.demo.ui.Route
import nl.eenplan.demo.viewmodel.LockState

const val USAGE = """eenplan mobile demo (Kotlin on the JVM, through the uniffi bindings)

  --window  --phone NAME=DIR [--phone NAME=DIR]        one phone window (390×844) per device
  --enrol   --phone NAME=DIR --server URL --code CODE  claim an enrolment code (headless)
  --script  --phone NAME=DIR (four times) [--screenshot FILE]
            play a home visit headless: the first phone's user is the plan's regisseur, the
            second a worker, the third the Zorg- en Veiligheidshuis' procesregisseur (offered
            regie at the escalation), the fourth a PGA-expert; with --screenshot (needs a
            display, e.g. xvfb-run) the phones are shown and pictured at the offline, conflict,
            regie, agenda and adoption moments
  --after-revocation --phone NAME=DIR                  sync once and expect the revoked/wiped state

A device's data key is wrapped with a passphrase (EENPLAN_DEMO_PASSPHRASE, default
"eenplan-demo", plus the phone's name); on a phone it is the platform keystore."""

private class Args(argv: Array<String>) {
    val modes = mutableSetOf<String>()
    val phones = mutableListOf<Pair<String, String>>()
    val options = mutableMapOf<String, String>()

    init {
        var i = 0
        while (i < argv.size) {
            when (val a = argv[i]) {
                "--window", "--enrol", "--script", "--after-revocation", "--help" -> modes += a
                "--phone" -> {
                    val spec = argv.getOrNull(++i) ?: usage("--phone needs NAME=DIR")
                    val (name, dir) = spec.split("=", limit = 2).takeIf { it.size == 2 } ?: usage("--phone needs NAME=DIR, got $spec")
                    phones += name to dir
                }
                "--server", "--code", "--screenshot" -> options[a] = argv.getOrNull(++i) ?: usage("$a needs a value")
                else -> usage("unknown argument $a")
            }
            i++
        }
    }

    fun option(name: String) = options[name] ?: usage("$name is required")
}

private fun usage(problem: String? = null): Nothing {
    problem?.let { System.err.println("error: $it\n") }
    System.err.println(USAGE)
    exitProcess(if (problem == null) 0 else 2)
}

fun main(argv: Array<String>) {
    // Smooth text in the window and the screenshot.
    System.setProperty("awt.useSystemAAFontSettings", "on")
    System.setProperty("swing.aatext", "true")
    val args = Args(argv)
    if (args.modes.size != 1 || "--help" in args.modes) usage(if ("--help" in args.modes) null else "give exactly one mode")
    if (args.phones.isEmpty()) usage("--phone NAME=DIR is required")
    val code = try {
        when (args.modes.single()) {
            "--enrol" -> enrol(args)
            "--script" -> script(args)
            "--after-revocation" -> afterRevocation(args)
            else -> window(args)
        }
    } catch (e: ScriptFailure) {
        System.err.println("\nFAILED: ${e.message}")
        1
    }
    exitProcess(code)
}

private fun openPhones(args: Args): List<PhoneApp> = args.phones.map { (name, dir) ->
    File(dir).mkdirs()
    PhoneApp.open(name, dir)
}

private fun enrol(args: Args): Int = openPhones(args).single().use { phone ->
    runBlocking {
        phone.device.enrol(args.option("--server"), args.option("--code"), "Telefoon van ${phone.name}").join()
    }
    val s = phone.device.state.value
    println("${phone.name}: device ${s.deviceId} enrolment ${s.enrolment}")
    println("device-id ${s.deviceId}")
    if (s.enrolment == Enrolment.PENDING_APPROVAL) 0 else 1.also { System.err.println("enrolment failed: ${s.message}") }
}

private fun script(args: Args): Int {
    val phones = openPhones(args)
    if (phones.size != 4) usage("--script needs four --phone: the regisseur, a worker, the Zorg- en Veiligheidshuis' procesregisseur, a PGA-expert")
    val screenshot = args.options["--screenshot"]
    val windows = if (screenshot == null) emptyMap() else {
        val map = phones.withIndex().associate { (i, p) -> p to PhoneWindow(p, x = 20 + i * 400) }
        SwingUtilities.invokeAndWait { map.values.forEach { it.frame.isVisible = true } }
        map
    }
    val shots = mutableListOf<Pair<String, java.awt.image.BufferedImage>>()
    try {
        val capture: (suspend (PhoneApp, String, HomeVisitScript.Moment) -> Unit)? = if (screenshot == null) null else { phone, plan, moment ->
            val window = windows.getValue(phone)
            val route = when (moment) {
                HomeVisitScript.Moment.PLAN_OFFLINE, HomeVisitScript.Moment.REGIE_OFFERED -> Route.Plan(plan)
                HomeVisitScript.Moment.CONFLICTS -> Route.Conflicts(plan)
                HomeVisitScript.Moment.REGIE_ACCEPTED -> Route.Regie(plan)
                HomeVisitScript.Moment.AGENDA -> Route.Agenda
                HomeVisitScript.Moment.ADOPTED -> Route.Adopt(plan)
            }
            window.open(route)
            // The screen asked its view model to load; wait for that before painting.
            when (route) {
                is Route.Plan, is Route.Regie, is Route.Family -> phone.plan(plan).load().join()
                is Route.Note -> phone.noteEditor(plan).open(route.noteId!!).join()
                is Route.Conflicts -> phone.conflicts(plan).load().join()
                is Route.Adopt -> phone.adoption(plan).load().join()
                Route.Agenda -> phone.agenda.load().join()
                Route.Plans -> {}
            }
            phone.device.refresh().join()
            val caption = when (moment) {
                HomeVisitScript.Moment.PLAN_OFFLINE -> "${phone.name}: offline, plan bewerkt"
                HomeVisitScript.Moment.CONFLICTS -> "${phone.name} (regisseur): conflicten na de sync"
                HomeVisitScript.Moment.REGIE_OFFERED -> "${phone.name}: opgeschaald, regie aangeboden"
                HomeVisitScript.Moment.REGIE_ACCEPTED -> "${phone.name}: regie aanvaard"
                HomeVisitScript.Moment.AGENDA -> "${phone.name}: agenda (startscherm)"
                HomeVisitScript.Moment.ADOPTED -> "${phone.name} (regisseur): vastgesteld"
            }
            shots += caption to window.capture()
            println("   [screenshot] $caption")
        }
        runBlocking { HomeVisitScript(phones, capture).run() }
        if (screenshot != null) {
            val file = File(screenshot)
            file.absoluteFile.parentFile.mkdirs()
            ImageIO.write(composeScreenshot(shots), "png", file)
            println("screenshot written to $file")
        }
        return 0
    } finally {
        windows.values.forEach { it.close() }
        phones.forEach { it.close() }
    }
}

private fun afterRevocation(args: Args): Int = openPhones(args).single().use { phone ->
    runBlocking { phone.device.sync().join() }
    val s = phone.device.state.value
    println("[${phone.name}] after the administrator's revocation, sync says: ${s.message}")
    when (val lock = s.lock) {
        is LockState.Wiped -> { println("[${phone.name}] state: WIPED: ${lock.message}"); 0 }
        is LockState.Revoked -> { println("[${phone.name}] state: REVOKED: ${lock.message}"); 0 }
        else -> { System.err.println("FAILED: the phone is not locked after its revocation: $lock"); 1 }
    }
}

private fun window(args: Args): Int {
    val phones = openPhones(args)
    val closed = CountDownLatch(phones.size)
    val windows = phones.mapIndexed { i, p -> PhoneWindow(p, x = 40 + i * 420) }
    SwingUtilities.invokeAndWait {
        windows.forEach { w ->
            w.frame.addWindowListener(object : java.awt.event.WindowAdapter() {
                override fun windowClosed(e: java.awt.event.WindowEvent) = closed.countDown()
            })
            w.frame.isVisible = true
        }
    }
    closed.await()
    windows.forEach { it.close() }
    phones.forEach { it.close() }
    return 0
}
