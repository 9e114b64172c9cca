package nl.eenplan.demo.script

import java.awt.image.BufferedImage
import nl.eenplan.ActionStatus
import nl.eenplan.Compartment
import nl.eenplan.Enrolment
import nl.eenplan.EscalationLevel
import nl.eenplan.GoalStatus
import nl.eenplan.Grondslag
import nl.eenplan.Role
import nl.eenplan.ShareOutcome
import nl.eenplan.demo.PhoneApp
import nl.eenplan.demo.viewmodel.Connectivity
import nl.eenplan.demo.viewmodel.PlanUiState

/** A failed expectation of the script: the demo exits non-zero with this message. */
class ScriptFailure(message: String) : Exception(message)

private fun expect(condition: Boolean, message: () -> String) {
    if (!condition) throw ScriptFailure(message())
}

private fun <T> T?.orFail(message: () -> String): T = this ?: throw ScriptFailure(message())

/**
 * The headless home visit, played through the same view models the screens use: a
 * regisseur's phone draws up a plan and shares it; a wijkteam worker's phone goes offline,
 * writes a home-visit note and edits the plan; meanwhile the regisseur edits too (one field
 * on both); the worker comes back online and syncs, each sees the other's edits, and the
 * regisseur settles the conflict. Every step is printed; every expectation is checked.
 *
 * [capture] is called at the moments worth a picture (the worker offline with pending
 * changes, the regisseur's conflicts) when a screenshot was asked for.
 */
class HomeVisitScript(
    phones: List<PhoneApp>,
    private val capture: (suspend (PhoneApp, String, Moment) -> Unit)? = null,
) {
    enum class Moment { PLAN_OFFLINE, CONFLICTS, REGIE_OFFERED, REGIE_ACCEPTED, AGENDA, ADOPTED }

    private val all = phones
    private var stepNo = 0

    private fun step(what: String) = println("\n== ${++stepNo}. $what")

    private fun say(phone: PhoneApp, what: String) = println("   [${phone.name}] $what")

    suspend fun run() {
        step("Both phones open their encrypted stores and sync (the administrator approved them)")
        for (phone in all) {
            phone.device.sync().join()
            val s = phone.device.state.value
            expect(s.enrolment == Enrolment.ACTIVE) { "${phone.name} is not active after its first sync: ${s.enrolment} ${s.message ?: ""}" }
            say(phone, "${s.user} · ${s.role} · ${s.organisation} · device ${s.deviceId.take(12)}… · lease ${s.leaseExpiresAtMs?.let { "until " + java.time.Instant.ofEpochMilli(it) } ?: "-"}")
        }
        // Regie is a function per plan, not a role: the first phone given takes it for this plan.
        val rita = all.firstOrNull().orFail { "no phone given" }
        val wim = all.firstOrNull { it !== rita }.orFail { "a second phone is needed" }
        val wimUser = wim.device.state.value.user.orFail { "the worker's phone has no user" }

        step("${rita.name} (regisseur) draws up the Jansen family's plan and shares it with $wimUser")
        val planId = rita.planList.createPlan("Jansen").await().orFail { "createPlan: ${rita.planList.state.value.message}" }
        val plan = rita.plan(planId)
        fun failed(what: String) = "$what: ${plan.state.value.message}"
        val money = plan.addGoal("financiën", "Schulden in beeld en onder controle").await().orFail { failed("goal") }
        val house = plan.addGoal("huisvesting", "Huurachterstand ingelopen").await().orFail { failed("goal") }
        val home = plan.addGoal("huiselijke relaties", "Rust in huis voor Daan en Lotte").await().orFail { failed("goal") }
        val coach = plan.addAction(money, "Budgetcoach inschakelen", "Wijkteam Noord", "2026-12-15").await().orFail { failed("action") }
        val arrangement = plan.addAction(house, "Betalingsregeling met de verhuurder", "Wijkteam Noord", "2026-12-20").await().orFail { failed("action") }
        plan.addAction(home, "Opvoedondersteuning aanbieden", "Wijkteam Noord", null).await().orFail { failed("action") }
        plan.addAgreement("Sanne opent de post voortaan samen met de budgetcoach.").await().orFail { failed("agreement") }
        // The plan's own list of participants: what a worker's "zichtbaar voor" names.
        val ritaState = rita.device.state.value
        val ritaUser = ritaState.user.orFail { "the regisseur's phone has no user" }
        plan.addParticipant(ritaUser, ritaState.organisation ?: "", Role.WIJKTEAM).await().orFail { failed("participant") }
        plan.addParticipant(wimUser, wim.device.state.value.organisation ?: "", Role.WIJKTEAM).await().orFail { failed("participant") }
        rita.device.sync().join() // the plan's first sync registers it with the server
        expect(plan.share(wimUser, Role.WIJKTEAM).await()) { failed("share") }
        rita.device.sync().join()
        say(rita, "plan ${planId.take(8)}… with ${plan.state.value.domains.size} life domains in use, shared with $wimUser; pending ${rita.device.state.value.pendingChanges}")

        step("$wimUser's phone syncs: the plan arrives")
        wim.device.sync().join()
        wim.planList.load().join()
        expect(wim.planList.state.value.plans.any { it.id == planId }) { "the plan did not reach ${wim.name}: ${wim.planList.state.value}" }
        val wimPlan = wim.plan(planId)
        wimPlan.load().join()
        printPlan(wim, wimPlan.state.value)

        step("$wimUser goes offline for the home visit, writes the note and edits the plan")
        wim.device.setWorkOffline(true).join()
        expect(wim.device.state.value.connectivity == Connectivity.WORKING_OFFLINE) { "not offline" }
        val editor = wim.noteEditor(planId)
        editor.startHomeVisit("Huisbezoek bij gezin Jansen. Sanne is thuis met de kinderen.").await()
            .orFail { "startHomeVisit: ${editor.state.value.message}" }
        // Typing, as a text field reports it: (UTF-16 offset, removed, inserted).
        val typed = " Op tafel ligt ongeopende post, twee aanmaningen van de verhuurder."
        editor.onEdited(editor.state.value.text.length, 0, typed).join()
        val kids = "de kinderen"
        val at = editor.state.value.text.indexOf(kids)
        editor.onEdited(at, kids.length, "Daan (8) en Lotte (5)").join()
        editor.onEdited(editor.state.value.text.length, 0, " Sanne wil hulp; ze schaamt zich voor de schulden.").join()
        val note = "Huisbezoek bij gezin Jansen. Sanne is thuis met Daan (8) en Lotte (5).$typed Sanne wil hulp; ze schaamt zich voor de schulden."
        expect(editor.state.value.text == note) { "the note reads: ${editor.state.value.text}" }
        say(wim, "home-visit note (${note.length} characters, typed in 4 edits): \"${note.take(60)}…\"")
        // Never basis (which school and housing corporation read): the picker started on zorg,
        // and showed who reads it there before the first word was saved.
        expect(editor.state.value.compartment == Compartment.ZORG) { "a wijkteam note went to ${editor.state.value.compartment}" }
        expect(ritaUser in editor.state.value.audience && "school" !in editor.state.value.audience) { "zichtbaar voor: ${editor.state.value.audience}" }
        say(wim, "compartment zorg, zichtbaar voor: ${editor.state.value.audience}")
        wimPlan.setGoalStatus(house, GoalStatus.IN_PROGRESS).await().orFail { "goal status: ${wimPlan.state.value.message}" }
        wimPlan.setActionDue(arrangement, "2027-01-05").await().orFail { "due: ${wimPlan.state.value.message}" }
        wimPlan.addAgreement("Wim komt dinsdag om 10:00 terug, samen met de budgetcoach.").await().orFail { "agreement" }
        wim.device.sync().join() // working offline: nothing is sent
        val pending = wim.device.state.value.pendingChanges
        expect(pending > 0) { "the offline edits are not pending" }
        say(wim, "offline indicator: ${pending} pending change(s); sync while offline says: ${wim.device.state.value.message}")
        capture?.invoke(wim, planId, Moment.PLAN_OFFLINE)

        step("Meanwhile ${rita.name}, online at the office, edits the same plan (and the same due date)")
        plan.setActionStatus(coach, ActionStatus.IN_PROGRESS).await().orFail { failed("action status") }
        plan.setActionDue(arrangement, "2026-12-22").await().orFail { failed("due") }
        plan.addAgreement("Schuldhulpverlening van de gemeente is aangemeld.").await().orFail { failed("agreement") }
        rita.device.sync().join()
        plan.load().join()
        expect(plan.state.value.notes.isEmpty()) { "the server had the offline note before $wimUser synced" }
        say(rita, "synced; nothing of $wimUser's visit has reached the server yet")

        step("$wimUser is back online: the phone syncs")
        wim.device.setWorkOffline(false).join()
        val back = wim.device.state.value
        expect(back.connectivity == Connectivity.ONLINE && back.pendingChanges == 0L) { "after coming back: $back" }
        say(wim, "sync: ${back.lastSync}; pending changes: ${back.pendingChanges}")
        wimPlan.load().join()
        val merged = wimPlan.state.value
        val fromRita = "Schuldhulpverlening van de gemeente is aangemeld."
        expect(merged.agreements.any { it.text == fromRita }) { "${rita.name}'s agreement did not arrive: ${merged.agreements}" }
        val coachRow = merged.domains.flatMap { it.goals }.flatMap { it.actions }.first { it.id == coach }
        expect(coachRow.status == "in_progress") { "${rita.name}'s action status did not arrive: $coachRow" }
        say(wim, "arrived from ${rita.name}: agreement \"$fromRita\"; \"${coachRow.title}\" is now ${coachRow.status}")

        step("${rita.name} syncs: the home visit is there, and the due date conflicts")
        rita.device.sync().join()
        plan.load().join()
        val visit = plan.state.value.notes.singleOrNull().orFail { "no home-visit note at ${rita.name}: ${plan.state.value.notes}" }
        expect(visit.text == note && visit.kind == "home_visit") { "the note at ${rita.name}: $visit" }
        say(rita, "home visit by ${visit.author}: \"${visit.text.take(60)}…\"")
        val conflicts = rita.conflicts(planId)
        conflicts.load().join()
        val conflict = conflicts.state.value.conflicts.singleOrNull().orFail { "expected one conflict: ${conflicts.state.value}" }
        say(rita, "conflict \"${conflict.label}\": " + conflict.options.joinToString(" vs ") { "${it.value} (${it.author})" })
        expect(conflict.options.map { it.value }.toSet() == setOf("2027-01-05", "2026-12-22")) { "offered: ${conflict.options}" }
        capture?.invoke(rita, planId, Moment.CONFLICTS)
        val wimsDate = conflict.options.first { it.value == "2027-01-05" }
        expect(conflicts.keep(conflict.id, wimsDate.index).await()) { "settle: ${conflicts.state.value.message}" }
        say(rita, "kept ${wimsDate.value}")

        step("Both phones sync once more and agree")
        rita.device.sync().join()
        wim.device.sync().join()
        for ((phone, vm) in listOf(rita to plan, wim to wimPlan)) {
            vm.load().join()
            val s = vm.state.value
            val due = s.domains.flatMap { it.goals }.flatMap { it.actions }.first { it.id == arrangement }.due
            expect(s.conflicts == 0 && due == "2027-01-05") { "${phone.name}: conflicts ${s.conflicts}, due $due" }
            expect(s.notes.singleOrNull()?.text == note) { "${phone.name} lacks the note" }
            say(phone, "no conflicts; \"Betalingsregeling\" due $due; ${s.agreements.size} agreements; pending ${phone.device.state.value.pendingChanges}")
        }
        printPlan(wim, wimPlan.state.value)
        println("\nhome visit complete: offline edits merged both ways, conflict settled by the regisseur")

        regie(rita, wim, planId, money, home)
        workingCycle(rita, wim, planId, money)
    }

    /**
     * The working cycle (issue 11): the regisseur gives the worker an action due this week,
     * which the worker's start screen (the agenda) shows after a sync; the regisseur adopts the
     * plan with the family ("Beoordelen en vaststellen"), and the worker's phone verifies the
     * signed adoption.
     */
    private suspend fun workingCycle(rita: PhoneApp, wim: PhoneApp, planId: String, money: String) {
        val plan = rita.plan(planId)
        fun failed(what: String) = "$what: ${plan.state.value.message}"
        val ritaName = rita.device.state.value.user.orFail { "the regisseur's phone has no user" }
        val wimName = wim.device.state.value.user.orFail { "the worker's phone has no user" }

        step("$ritaName gives $wimName an action due this week; $wimName's agenda (the start screen) shows it after a sync")
        plan.load().join()
        val participants = plan.state.value.membership.orFail { "no membership at ${rita.name}" }.participants
        val owner = participants.firstOrNull { it.name == wimName }.orFail { "$wimName is no participant: $participants" }
        val due = java.time.LocalDate.now(java.time.ZoneId.of("Europe/Amsterdam")).plusDays(2).toString()
        val action = plan.addAction(money, "Formulier bijzondere bijstand invullen met Sanne", owner.organisation, due, owner.userId).await()
            .orFail { failed("action for $wimName") }
        val row = plan.state.value.goals.flatMap { it.actions }.first { it.id == action }
        expect(row.ownerUser == owner.userId && wimName in row.owner) { "the action's owner: $row" }
        say(rita, "actie \"${row.title}\" voor ${row.owner}, vóór $due")
        rita.device.sync().join()
        wim.device.sync().join()
        wim.agenda.load().join()
        val agenda = wim.agenda.state.value
        val mine = agenda.thisWeek.firstOrNull { it.entity == action }.orFail { "the action is not on $wimName's agenda: $agenda" }
        expect(mine.planId == planId && mine.kindLabel == "Actie deze week") { "the agenda row: $mine" }
        say(wim, "agenda, ${agenda.today}: " + agenda.all.joinToString(" | ") { it.line })
        capture?.invoke(wim, planId, Moment.AGENDA)
        rita.agenda.load().join()
        expect(rita.agenda.state.value.all.none { it.entity == action }) { "$wimName's action is on ${rita.name}'s agenda" }

        step("$ritaName (regisseur) adopts the plan with the family: Beoordelen en vaststellen")
        val adoption = rita.adoption(planId)
        adoption.load().join()
        expect(adoption.state.value.isRegisseur && adoption.state.value.latest == null) { "before adopting: ${adoption.state.value}" }
        val reviewed = adoption.state.value.reviewLines
        expect(reviewed.any { wimName in it }) { "the review lacks $wimName's changes: $reviewed" }
        say(rita, "gewijzigd sinds zij keek (${reviewed.size}): " + reviewed.takeLast(3).joinToString(" | "))
        adoption.markReviewed().join()
        expect(adoption.state.value.reviewLines.isEmpty()) { "after marking: ${adoption.state.value.reviewLines}" }
        val refused = wim.adoption(planId).adopt("Zelf vastgesteld", listOf(wimName)).await()
        expect(refused == null && "regisseur" in wim.adoption(planId).state.value.message.orEmpty()) { "a worker adopted: $refused" }
        say(wim, "vaststellen geweigerd: \"${wim.adoption(planId).state.value.message}\"")
        val version = adoption.adopt("Besproken met Sanne Jansen aan de keukentafel; zij is akkoord met het plan.", listOf(ritaName, wimName)).await()
            .orFail { "adopt: ${adoption.state.value.message}" }
        val adopted = adoption.state.value
        expect(version == 1 && adopted.latest?.version == 1 && adopted.latest?.verified == true) { "after adopting: $adopted" }
        expect(adopted.notAdopted.isEmpty()) { "changed since the adoption: ${adopted.notAdopted}" }
        say(rita, adopted.notice ?: "")
        val copy = adoption.familyCopy().await().orFail { "family copy: ${adoption.state.value.message}" }
        val html = copy.readText()
        expect(html == adoption.state.value.familyCopyHtml && "Jansen" in html && "versie 1" in html) { "the family's copy: ${html.take(200)}" }
        expect("Huisbezoek bij gezin Jansen" !in html) { "a note reached the family's copy" }
        say(rita, "kopie voor het gezin (${html.length} tekens HTML, met \"versie 1\"): ${copy.path}")
        capture?.invoke(rita, planId, Moment.ADOPTED)
        rita.device.sync().join()
        wim.device.sync().join()
        val atWim = wim.adoption(planId)
        atWim.load().join()
        val checked = atWim.state.value.latest.orFail { "no verified adoption at $wimName: ${atWim.state.value}" }
        expect(checked.version == 1 && checked.signedBy == ritaName && checked.present.toSet() == setOf(ritaName, wimName)) { "at $wimName: $checked" }
        say(wim, "versie ${checked.version} ${checked.checkText}, ondertekend door ${checked.signedBy} op ${checked.date}; aanwezig: ${checked.present.joinToString()}")
        wim.plan(planId).load().join()
        expect(wim.plan(planId).state.value.adoptedVersion == 1) { "the plan screen at $wimName: ${wim.plan(planId).state.value.adoptedVersion}" }
        println("\nworking cycle complete: an action on the worker's agenda, the plan reviewed and adopted by the regisseur and verified on the worker's phone, the family's copy made")
    }

    /**
     * The family, the safety plan and regie: the regisseur adds a family member, today's ZRM
     * score, a safety item and an action with a due date; escalates to the Zorg- en
     * Veiligheidshuis with its procesregisseur and a PGA-expert added and regie offered to
     * the procesregisseur, who accepts on her own phone; the former regisseur is then refused
     * what only the regisseur may do; the procesregisseur de-escalates and regie goes back.
     */
    private suspend fun regie(rita: PhoneApp, wim: PhoneApp, planId: String, money: String, home: String) {
        val zoe = all.getOrNull(2).orFail { "a third phone (the Zorg- en Veiligheidshuis' procesregisseur) is needed" }
        val piet = all.getOrNull(3).orFail { "a fourth phone (the PGA-expert) is needed" }
        val plan = rita.plan(planId)
        fun failed(what: String) = "$what: ${plan.state.value.message}"

        step("${rita.name} adds the mother, today's ZRM score, a safety item and an action with a due date")
        val sanne = plan.addMember("Sanne Jansen", "moeder", "1991-03-08", true).await().orFail { failed("member") }
        plan.addMember("Daan Jansen", "zoon", "2018-05-20", false).await().orFail { failed("member") }
        val today = java.time.LocalDate.now().toString()
        plan.setScore(sanne, "financiën", 2).await().orFail { failed("score") }
        plan.setScore(sanne, "huiselijke relaties", 3).await().orFail { failed("score") }
        val danger = "Spanning in huis loopt op als er aanmaningen komen; Daan is dan bang."
        plan.addSafetyItem(danger, "Sanne belt bij oplopende spanning de wijkcoach; de kinderen kunnen naar oma.").await()
            .orFail { failed("safety item") }
        val signalling = plan.addAction(home, "Signaleringsplan opstellen met Sanne", "Wijkteam Noord", "2026-12-01").await()
            .orFail { failed("action") }
        plan.setActionDue(signalling, "2026-11-24").await().orFail { failed("due") }
        plan.load().join()
        var s = plan.state.value
        val mother = s.members.firstOrNull { it.id == sanne }.orFail { "no member: ${s.members}" }
        expect(mother.scores.any { it.date == today && it.domain == "financiën" && it.score == 2L }) { "scores: ${mother.scores}" }
        expect(s.safetyItems.singleOrNull()?.danger == danger) { "safety plan: ${s.safetyItems}" }
        val due = s.goals.flatMap { it.actions }.firstOrNull { it.id == signalling }?.due
        expect(due == "2026-11-24") { "the action's due date: $due" }
        say(rita, "gezinsleden: " + s.members.joinToString { "${it.name} (${it.relation})" })
        say(rita, "ZRM $today: " + mother.scores.filter { it.date == today }.joinToString { "${it.domain} ${it.score}" })
        say(rita, "veiligheidsplan: \"${s.safetyItems.single().danger}\" → \"${s.safetyItems.single().goal}\"")
        say(rita, "actie \"Signaleringsplan opstellen met Sanne\" vóór $due; ${s.goals.first { it.id == money }.actions.size} actie(s) bij financiën")

        val zoeUser = zoe.device.state.value
        val pietUser = piet.device.state.value
        val zoeName = zoeUser.user.orFail { "the procesregisseur's phone has no user" }
        val pietName = pietUser.user.orFail { "the PGA-expert's phone has no user" }
        val add = listOf("$zoeName:${zoeUser.role}", "$pietName:${pietUser.role}")
        step("${rita.name} escalates to the Zorg- en Veiligheidshuis (convenant), adds ${add.joinToString(" and ")}, offers regie to $zoeName")
        expect(s.isRegisseur) { "${rita.name} is not the regisseur: ${s.membership}" }
        val escalated = plan.escalate(
            EscalationLevel.ZORG_EN_VEILIGHEIDSHUIS,
            Grondslag.CONVENANT,
            "Zorgen over de veiligheid van Daan en Lotte; meerdere partijen betrokken",
            add,
            zoeName,
        ).await()
        expect(escalated == ShareOutcome.DONE) { failed("escalate ($escalated)") }
        s = plan.state.value
        val offered = s.membership.orFail { "no membership after escalating" }
        expect(offered.regisseur.name == rita.device.state.value.user && offered.offeredTo?.name == zoeName) { "after escalating: $offered" }
        expect(offered.level == "zorg_en_veiligheidshuis") { "level ${offered.level}" }
        expect(offered.participants.map { it.name }.containsAll(listOf(zoeName, pietName))) { "participants: ${offered.participants}" }
        say(rita, "${s.notice}; regisseur ${offered.regisseur.name}, regie aangeboden aan ${offered.offeredTo?.name} (nog niet aanvaard)")
        say(rita, "deelnemers: " + offered.participants.joinToString { "${it.name} (${it.organisation}, ${it.roleLabel})" })
        capture?.invoke(rita, planId, Moment.REGIE_OFFERED)

        step("$zoeName's phone syncs: the plan arrives with regie offered to her; she accepts")
        zoe.device.sync().join()
        zoe.planList.load().join()
        expect(zoe.planList.state.value.plans.any { it.id == planId }) { "the plan did not reach $zoeName: ${zoe.planList.state.value}" }
        val zoePlan = zoe.plan(planId)
        zoePlan.load().join()
        expect(zoePlan.state.value.offeredToMe && !zoePlan.state.value.isRegisseur) { "at $zoeName: ${zoePlan.state.value.membership}" }
        val accepted = zoePlan.acceptRegie().await()
        expect(accepted == ShareOutcome.DONE) { "accept: $accepted ${zoePlan.state.value.message}" }
        val after = zoePlan.state.value
        expect(after.isRegisseur && after.membership?.offeredTo == null) { "after accepting: ${after.membership}" }
        say(zoe, "${after.notice}; regisseur ${after.membership?.regisseur?.name}")

        step("${rita.name} and $pietName sync: $zoeName holds regie; ${rita.name} may no longer hand it over")
        rita.device.sync().join()
        plan.load().join()
        s = plan.state.value
        expect(s.membership?.regisseur?.name == zoeName && s.membership?.offeredTo == null && !s.isRegisseur) { "at ${rita.name}: ${s.membership}" }
        val refused = plan.handOverRegie(wim.device.state.value.user ?: "Wim").await()
        val why = plan.state.value.message.orEmpty()
        expect(refused == null && "regisseur" in why) { "a former regisseur's handover: $refused, $why" }
        say(rita, "regisseur now ${s.membership?.regisseur?.name}; handing over again is refused: \"$why\"")
        piet.device.sync().join()
        val pietPlan = piet.plan(planId)
        pietPlan.load().join()
        expect(pietPlan.state.value.membership?.regisseur?.name == zoeName) { "at $pietName: ${pietPlan.state.value.membership}" }
        say(piet, "the plan arrived; participant as ${pietUser.role}; regisseur ${pietPlan.state.value.membership?.regisseur?.name}")
        for (step in after.membership?.steps.orEmpty()) say(zoe, "  verloop: ${step.text} (${step.by})")
        capture?.invoke(zoe, planId, Moment.REGIE_ACCEPTED)

        val ritaName = rita.device.state.value.user.orFail { "the regisseur's phone has no user" }
        step("$zoeName de-escalates to lokaal: regie goes back to $ritaName at once, $zoeName and $pietName leave")
        val back = zoePlan.deescalate(EscalationLevel.LOKAAL, ritaName, "Veiligheid is op orde; het wijkteam houdt de regie").await()
        expect(back == ShareOutcome.DONE) { "de-escalate: $back ${zoePlan.state.value.message}" }
        say(zoe, zoePlan.state.value.notice ?: "")
        rita.device.sync().join()
        plan.load().join()
        s = plan.state.value
        val local = s.membership.orFail { "no membership at ${rita.name}" }
        expect(local.regisseur.name == ritaName && local.level == "lokaal" && s.isRegisseur) { "after de-escalating: $local" }
        expect(local.participants.none { it.name == zoeName || it.name == pietName }) { "still in the plan: ${local.participants}" }
        say(rita, "regisseur ${local.regisseur.name}, niveau ${local.level}; deelnemers: " + local.participants.joinToString { it.name })
        wim.device.sync().join()
        println("\nregie complete: escalated to the Zorg- en Veiligheidshuis, regie accepted by $zoeName on her own phone and handed back")
    }

    private fun printPlan(phone: PhoneApp, s: PlanUiState) {
        say(phone, "Gezin ${s.family} (fase ${s.phase}), ${s.conflicts} conflict(s)")
        for (d in s.domains) {
            say(phone, "  ${d.domain}")
            for (g in d.goals) {
                say(phone, "    doel: ${g.title} [${g.status}]")
                for (a in g.actions) say(phone, "      actie: ${a.title} — ${a.owner}${a.due?.let { ", vóór $it" } ?: ""} [${a.status}]")
            }
        }
        for (a in s.agreements) say(phone, "  afspraak: ${a.text}")
        for (n in s.notes) say(phone, "  ${n.kind}: ${n.text.take(50)}…")
    }
}

/** Phone pictures side by side, with a caption above each. */
fun composeScreenshot(shots: List<Pair<String, BufferedImage>>): BufferedImage {
    val gap = 28
    val caption = 44
    val w = shots.sumOf { it.second.width } + gap * (shots.size + 1)
    val h = shots.maxOf { it.second.height } + caption + gap
    val out = BufferedImage(w, h, BufferedImage.TYPE_INT_RGB)
    val g = out.createGraphics()
    g.setRenderingHint(java.awt.RenderingHints.KEY_ANTIALIASING, java.awt.RenderingHints.VALUE_ANTIALIAS_ON)
    g.setRenderingHint(java.awt.RenderingHints.KEY_TEXT_ANTIALIASING, java.awt.RenderingHints.VALUE_TEXT_ANTIALIAS_ON)
    g.color = java.awt.Color(0xD9DEE4)
    g.fillRect(0, 0, w, h)
    var x = gap
    for ((title, image) in shots) {
        g.color = java.awt.Color(0x1B1F24)
        g.font = nl.eenplan.demo.ui.Theme.font(15f, bold = true)
        g.drawString(title, x + 4, caption - 14)
        g.color = java.awt.Color(0x9AA4AE)
        g.fillRoundRect(x - 2, caption - 2, image.width + 4, image.height + 4, 8, 8)
        g.drawImage(image, x, caption, null)
        x += image.width + gap
    }
    g.dispose()
    return out
}
