package nl.eenplan.demo.ui

import java.awt.BorderLayout
import javax.swing.BorderFactory
import javax.swing.JComboBox
import javax.swing.JComponent
import javax.swing.JPanel
import javax.swing.JTextField
import nl.eenplan.ActionStatus
import nl.eenplan.GoalStatus
import nl.eenplan.demo.viewmodel.PlanUiState
import nl.eenplan.demo.viewmodel.PlanViewModel

/**
 * One family plan: goals per life domain with their actions, the agreements, the home-visit
 * notes. A conflicts entry appears when fields were set concurrently. Regie is a function per
 * plan, not a certified role, so the entry is not gated on the phone's role; the regisseur
 * (whom the plan names) is the one expected to settle them.
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
    override val component: JComponent = JPanel(BorderLayout()).apply {
        background = Theme.background
        add(scroll(content), BorderLayout.CENTER)
    }

    override fun render(state: PlanUiState) {
        title = "Gezin ${state.family}"
        content.clear()
        content.add(card(
            text("Gezin ${state.family}", 18f, bold = true),
            row(chip("fase: ${state.phase}", Theme.primary, Theme.background),
                if (state.conflicts > 0) chip("${state.conflicts} conflict(en)", Theme.error, Theme.errorBg) else chip("geen conflicten", Theme.ok, Theme.okBg)),
        ))
        if (state.conflicts > 0) {
            content.add(button("Conflicten beslechten (${state.conflicts})", primary = true) { navigator.open(Route.Conflicts(state.planId)) })
        }

        content.add(sectionTitle("Doelen per leefgebied"))
        for (section in state.domains) {
            val rows = mutableListOf<JComponent>(text(section.domain, 12.5f, bold = true, color = Theme.primary))
            for (goal in section.goals) {
                rows += JPanel(BorderLayout(6, 0)).apply {
                    isOpaque = false
                    add(text(goal.title, 14.5f, bold = true, width = 185), BorderLayout.CENTER)
                    add(row(menuOn(statusChip(goal.status), GoalStatus.entries) { vm.setGoalStatus(goal.id, it) }), BorderLayout.EAST)
                }
                for (action in goal.actions) {
                    val due = action.due?.let { " · vóór $it" } ?: ""
                    rows += JPanel(BorderLayout(6, 0)).apply {
                        isOpaque = false
                        border = BorderFactory.createEmptyBorder(2, 12, 0, 0)
                        add(text("▸ ${action.title}\n${action.owner}$due", 12.5f, color = Theme.text, width = 185), BorderLayout.CENTER)
                        add(row(menuOn(statusChip(action.status), ActionStatus.entries) { vm.setActionStatus(action.id, it) }), BorderLayout.EAST)
                    }
                }
            }
            content.add(card(*rows.toTypedArray()))
        }
        if (state.loaded && state.domains.isEmpty()) content.add(card(text("Nog geen doelen.", color = Theme.muted)))

        content.add(sectionTitle("Huisbezoeken en notities"))
        for (note in state.notes) {
            val kind = if (note.kind == "home_visit") "Huisbezoek" else "Notitie"
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

/** Tapping [chip] opens a menu of [choices]; the pick goes to [onPick]. */
private fun <E : Enum<E>> menuOn(chip: JComponent, choices: List<E>, onPick: (E) -> Unit): JComponent {
    val menu = javax.swing.JPopupMenu()
    for (choice in choices) {
        menu.add(javax.swing.JMenuItem(choice.name.lowercase()).apply { addActionListener { onPick(choice) } })
    }
    chip.cursor = java.awt.Cursor.getPredefinedCursor(java.awt.Cursor.HAND_CURSOR)
    chip.toolTipText = "Status wijzigen"
    chip.addMouseListener(object : java.awt.event.MouseAdapter() {
        override fun mouseClicked(e: java.awt.event.MouseEvent) = menu.show(chip, 0, chip.height)
    })
    return chip
}
