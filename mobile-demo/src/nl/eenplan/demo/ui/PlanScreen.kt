package nl.eenplan.demo.ui

import java.awt.BorderLayout
import javax.swing.BorderFactory
import javax.swing.JComboBox
import javax.swing.JComponent
import javax.swing.JPanel
import javax.swing.JTextField
import nl.eenplan.ActionStatus
import nl.eenplan.GoalStatus
import nl.eenplan.Vocabulary
import nl.eenplan.accessLogNotice
import nl.eenplan.displayLabel
import nl.eenplan.dutchDate
import nl.eenplan.demo.viewmodel.PlanUiState
import nl.eenplan.demo.viewmodel.PlanViewModel

/**
 * One family plan: its participants (the regisseur marked, a warm handover shown, "Regie
 * aanvaarden" for the one offered it), goals per life domain with their actions (tap an action
 * for its due date; "Actie toevoegen"), the agreements, the home-visit notes. "Deelnemers en
 * regie" and "Gezin en veiligheid" open the screens for the rest. A conflicts entry appears
 * when fields were set concurrently. Regie is a function per plan, not a certified role, so
 * the entry is not gated on the phone's role; the regisseur (whom the plan names) is the one
 * expected to settle them.
 */
class PlanScreen(
    private val vm: PlanViewModel,
    private val navigator: Navigator,
) : Screen<PlanUiState>(vm.state) {
    override var title = "Plan"
        private set
    private val content = Column().apply { border = BorderFactory.createEmptyBorder(10, 12, 12, 12) }
    private val domainPicker = JComboBox<String>().apply { font = Theme.font(13f) }
    private val goalTitle = JTextField().apply { font = Theme.font(13f) }
    private val agreement = JTextField().apply { font = Theme.font(13f) }
    /** (goal id, title) for "Actie toevoegen". */
    private val goalPicker = picker(emptyList<Pair<String, String>>()) { it.second }
    private val actionTitle = field()
    /** The participants of the signed membership (user id, name, organisation): who does it. */
    private val actionOwner = picker(emptyList<nl.eenplan.demo.viewmodel.ParticipantRow>()) { "${it.name} (${it.organisation})" }
    private val actionDue = field()
    override val component: JComponent = JPanel(BorderLayout()).apply {
        background = Theme.background
        add(scroll(content), BorderLayout.CENTER)
    }

    override fun render(state: PlanUiState) {
        title = "Gezin ${state.family}"
        content.clear()
        content.add(card(
            text("Gezin ${state.family}", 18f, bold = true),
            row(chip("fase: ${displayLabel(Vocabulary.PHASE, state.phase)}", Theme.primary, Theme.background),
                state.adoptedVersion?.let { chip("vastgesteld: versie $it", Theme.ok, Theme.okBg) } ?: chip("niet vastgesteld", Theme.muted, Theme.background),
                if (state.conflicts > 0) chip("${state.conflicts} conflict(en)", Theme.error, Theme.errorBg) else chip("geen conflicten", Theme.ok, Theme.okBg)),
            text(accessLogNotice(), 11f, color = Theme.muted),
        ))
        if (state.conflicts > 0) {
            content.add(button("Conflicten beslechten (${state.conflicts})", primary = true) { navigator.open(Route.Conflicts(state.planId)) })
        }
        content.add(participantsCard(state, vm, manage = false))
        outcomeLines(state).forEach { content.add(it) }
        content.add(JPanel(java.awt.GridLayout(1, 2, 6, 0)).apply {
            isOpaque = false
            add(compact(button("Deelnemers en regie") { navigator.open(Route.Regie(state.planId)) }))
            add(compact(button("Gezin en veiligheid") { navigator.open(Route.Family(state.planId)) }))
        })
        content.add(compact(button(if (state.isRegisseur) "Beoordelen en vaststellen" else "Vastgestelde versie") {
            navigator.open(Route.Adopt(state.planId))
        }))

        content.add(sectionTitle("Doelen per leefgebied"))
        for (section in state.domains) {
            val rows = mutableListOf<JComponent>(text(displayLabel(Vocabulary.DOMAIN, section.domain), 12.5f, bold = true, color = Theme.primary))
            for (goal in section.goals) {
                rows += JPanel(BorderLayout(6, 0)).apply {
                    isOpaque = false
                    add(text(goal.title, 14.5f, bold = true, width = 185), BorderLayout.CENTER)
                    add(row(menuOn(statusChip(goal.status), GoalStatus.entries, { displayLabel(Vocabulary.GOAL_STATUS, it.name.lowercase()) }) { vm.setGoalStatus(goal.id, it) }), BorderLayout.EAST)
                }
                for (action in goal.actions) {
                    val due = action.due?.let { " · vóór ${dutchDate(it)}" } ?: ""
                    rows += JPanel(BorderLayout(6, 0)).apply {
                        isOpaque = false
                        border = BorderFactory.createEmptyBorder(2, 12, 0, 0)
                        add(dueOn(text("▸ ${action.title}\n${action.owner}$due", 12.5f, color = Theme.text, width = 185), action.due) {
                            vm.setActionDue(action.id, it)
                        }, BorderLayout.CENTER)
                        add(row(menuOn(statusChip(action.status), ActionStatus.entries, { displayLabel(Vocabulary.ACTION_STATUS, it.name.lowercase()) }) { vm.setActionStatus(action.id, it) }), BorderLayout.EAST)
                    }
                }
            }
            content.add(card(*rows.toTypedArray()))
        }
        if (state.loaded && state.domains.isEmpty()) content.add(card(text("Nog geen doelen.", color = Theme.muted)))

        if (state.goals.isNotEmpty()) {
            content.add(sectionTitle("Actie toevoegen"))
            goalPicker.setChoices(state.goals.map { it.id to it.title })
            actionOwner.setChoices(state.membership?.participants.orEmpty())
            content.add(card(
                labelled("Bij doel", goalPicker),
                labelled("Wat", actionTitle),
                labelled("Wie (deelnemer)", actionOwner),
                labelled("Vóór (JJJJ-MM-DD, mag leeg)", actionDue),
                row(button("Actie toevoegen", primary = true) {
                    @Suppress("UNCHECKED_CAST")
                    val goal = goalPicker.selectedItem as Pair<String, String>?
                    val title = actionTitle.text.trim()
                    val owner = actionOwner.selectedItem as nl.eenplan.demo.viewmodel.ParticipantRow?
                    if (goal != null && title.isNotEmpty()) {
                        vm.addAction(goal.first, title, owner?.organisation ?: state.myOrganisation.orEmpty(), actionDue.text.trim().ifEmpty { null }, owner?.userId)
                        actionTitle.text = ""; actionDue.text = ""
                    }
                }),
            ))
        }

        content.add(sectionTitle("Huisbezoeken en notities"))
        for (note in state.notes) {
            val kind = displayLabel(Vocabulary.NOTE_KIND, note.kind)
            val preview = if (note.text.length > 160) note.text.take(160) + "…" else note.text
            content.add(card(
                text("$kind · ${note.author} · ${formatTime(note.createdAtMs)}", 11.5f, bold = true, color = Theme.muted),
                text(preview, 13f),
                row(button("Bewerken") { navigator.open(Route.Note(state.planId, note.id)) }),
            ))
        }
        content.add(button("Nieuw huisbezoek") { navigator.open(Route.Note(state.planId, null)) })

        content.add(sectionTitle("Afspraken met het gezin"))
        for (a in state.agreements) {
            content.add(card(text(a.text, 13f), text("${a.author} · ${formatTime(a.createdAtMs)}", 11f, color = Theme.muted)))
        }
        content.add(JPanel(BorderLayout(6, 0)).apply {
            isOpaque = false
            add(agreement, BorderLayout.CENTER)
            add(button("Afspraak") { agreement.text.trim().takeIf { it.isNotEmpty() }?.let { agreement.text = ""; vm.addAgreement(it) } }, BorderLayout.EAST)
        })

        content.add(sectionTitle("Nieuw doel"))
        if (domainPicker.itemCount != state.allDomains.size) {
            domainPicker.removeAllItems()
            state.allDomains.forEach { domainPicker.addItem(it) }
        }
        content.add(domainPicker)
        content.add(JPanel(BorderLayout(6, 0)).apply {
            isOpaque = false
            add(goalTitle, BorderLayout.CENTER)
            add(button("Doel") {
                val domain = domainPicker.selectedItem as String?
                val t = goalTitle.text.trim()
                if (domain != null && t.isNotEmpty()) { goalTitle.text = ""; vm.addGoal(domain, t) }
            }, BorderLayout.EAST)
        })
        state.message?.let { content.add(text(it, 12f, color = Theme.error)) }
        content.revalidate()
        content.repaint()
    }
}

/** A button for half the width of the screen. */
private fun compact(b: javax.swing.JButton) = b.apply {
    font = Theme.font(12f, bold = true)
    border = RoundBorder(Theme.line, 10, java.awt.Insets(6, 4, 6, 4))
}

/**
 * Tapping an action's text asks for its due date (YYYY-MM-DD; empty clears it) and hands it to
 * [onDue]: the screen forwards, the core checks the date.
 */
private fun dueOn(label: JComponent, due: String?, onDue: (String?) -> Unit): JComponent {
    label.cursor = java.awt.Cursor.getPredefinedCursor(java.awt.Cursor.HAND_CURSOR)
    label.toolTipText = "Datum wijzigen"
    label.addMouseListener(object : java.awt.event.MouseAdapter() {
        override fun mouseClicked(e: java.awt.event.MouseEvent) {
            val typed = javax.swing.JOptionPane.showInputDialog(label, "Vóór welke datum? (JJJJ-MM-DD; leeg: geen datum)", due ?: "")
                ?: return
            onDue(typed.trim().ifEmpty { null })
        }
    })
    return label
}

/** Tapping [chip] opens a menu of [choices]; the pick goes to [onPick]. */
private fun <E : Enum<E>> menuOn(chip: JComponent, choices: List<E>, label: (E) -> String, onPick: (E) -> Unit): JComponent {
    val menu = javax.swing.JPopupMenu()
    for (choice in choices) {
        menu.add(javax.swing.JMenuItem(label(choice)).apply { addActionListener { onPick(choice) } })
    }
    chip.cursor = java.awt.Cursor.getPredefinedCursor(java.awt.Cursor.HAND_CURSOR)
    chip.toolTipText = "Status wijzigen"
    chip.addMouseListener(object : java.awt.event.MouseAdapter() {
        override fun mouseClicked(e: java.awt.event.MouseEvent) = menu.show(chip, 0, chip.height)
    })
    return chip
}
