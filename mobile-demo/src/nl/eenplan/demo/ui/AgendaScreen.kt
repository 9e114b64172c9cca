package nl.eenplan.demo.ui

import java.awt.BorderLayout
import java.awt.event.MouseAdapter
import java.awt.event.MouseEvent
import javax.swing.BorderFactory
import javax.swing.JComponent
import javax.swing.JPanel
import nl.eenplan.AgendaKind
import nl.eenplan.demo.viewmodel.AgendaRow
import nl.eenplan.demo.viewmodel.AgendaUiState
import nl.eenplan.demo.viewmodel.AgendaViewModel

/**
 * The start screen after unlocking: what needs this user across every plan — overdue, this
 * week, conflicts to settle — each item opening its plan (conflicts open the conflicts
 * screen). "Alle gezinsplannen" leads to the plan list.
 */
class AgendaScreen(private val vm: AgendaViewModel, private val navigator: Navigator) : Screen<AgendaUiState>(vm.state) {
    override val title = "Agenda"
    private val list = Column().apply { border = BorderFactory.createEmptyBorder(12, 12, 12, 12) }
    override val component: JComponent = JPanel(BorderLayout()).apply {
        background = Theme.background
        add(scroll(list), BorderLayout.CENTER)
        add(JPanel(BorderLayout()).apply {
            background = Theme.surface
            border = BorderFactory.createCompoundBorder(
                BorderFactory.createMatteBorder(1, 0, 0, 0, Theme.line), BorderFactory.createEmptyBorder(10, 12, 10, 12))
            add(button("Alle gezinsplannen", primary = true) { navigator.open(Route.Plans) }, BorderLayout.CENTER)
        }, BorderLayout.SOUTH)
    }

    override fun render(state: AgendaUiState) {
        list.clear()
        list.add(text("Vandaag, ${state.today}", 15f, bold = true))
        section("Te laat", state.overdue, Theme.error, Theme.errorBg)
        section("Deze week", state.thisWeek, Theme.warn, Theme.warnBg)
        section("Te beslissen", state.toSettle, Theme.primary, Theme.background)
        if (state.loaded && state.all.isEmpty()) {
            list.add(card(text("Niets te laat en niets deze week. Een actie die u krijgt verschijnt hier na de volgende sync.", color = Theme.muted)))
        }
        for (plan in state.unreadable) list.add(card(text("Niet te lezen: $plan", 12.5f, color = Theme.error)))
        state.message?.let { list.add(text(it, 12f, color = Theme.error)) }
        list.revalidate()
        list.repaint()
    }

    private fun section(title: String, rows: List<AgendaRow>, color: java.awt.Color, background: java.awt.Color) {
        if (rows.isEmpty()) return
        list.add(sectionTitle("$title (${rows.size})"))
        for (item in rows) {
            val card = card(
                row(chip(item.kindLabel, color, background), text("Gezin ${item.family}", 12.5f, bold = true, color = Theme.muted, width = 170)),
                text(item.text, 14f, bold = true),
                text(item.date?.let { "vóór $it" } ?: "tik om te beslissen", 12f, color = Theme.muted),
            )
            card.cursor = java.awt.Cursor.getPredefinedCursor(java.awt.Cursor.HAND_CURSOR)
            card.addMouseListener(object : MouseAdapter() {
                override fun mouseClicked(e: MouseEvent) = navigator.open(
                    if (item.kind == AgendaKind.CONFLICTS) Route.Conflicts(item.planId) else Route.Plan(item.planId),
                )
            })
            list.add(card)
        }
    }
}
