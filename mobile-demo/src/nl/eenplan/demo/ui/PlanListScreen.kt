package nl.eenplan.demo.ui

import java.awt.BorderLayout
import java.awt.event.MouseAdapter
import java.awt.event.MouseEvent
import javax.swing.BorderFactory
import javax.swing.JComponent
import javax.swing.JPanel
import javax.swing.JTextField
import nl.eenplan.demo.viewmodel.PlanListUiState
import nl.eenplan.demo.viewmodel.PlanListViewModel

/** The plans on this phone, one card per family; tapping one opens it. */
class PlanListScreen(private val vm: PlanListViewModel, private val navigator: Navigator) : Screen<PlanListUiState>(vm.state) {
    override val title = "Gezinsplannen"
    private val list = Column().apply { border = BorderFactory.createEmptyBorder(12, 12, 12, 12) }
    private val family = JTextField().apply { font = Theme.font(14f) }
    override val component: JComponent = JPanel(BorderLayout()).apply {
        background = Theme.background
        add(scroll(list), BorderLayout.CENTER)
        add(JPanel(BorderLayout(8, 0)).apply {
            background = Theme.surface
            border = BorderFactory.createCompoundBorder(
                BorderFactory.createMatteBorder(1, 0, 0, 0, Theme.line), BorderFactory.createEmptyBorder(10, 12, 10, 12))
            add(family, BorderLayout.CENTER)
            add(button("Nieuw plan", primary = true) {
                val name = family.text.trim()
                if (name.isNotEmpty()) { family.text = ""; vm.createPlan(name) }
            }, BorderLayout.EAST)
        }, BorderLayout.SOUTH)
    }

    override fun render(state: PlanListUiState) {
        list.clear()
        list.add(sectionTitle("Mijn gezinnen (${state.plans.size})"))
        if (state.loaded && state.plans.isEmpty()) {
            list.add(card(text("Nog geen plannen. Een plan dat een collega met u deelt verschijnt hier na de volgende sync.", color = Theme.muted)))
        }
        for (plan in state.plans) {
            val item = card(text("Gezin ${plan.family}", 16f, bold = true), text("plan ${plan.id.take(8)}…", 12f, color = Theme.muted))
            item.cursor = java.awt.Cursor.getPredefinedCursor(java.awt.Cursor.HAND_CURSOR)
            item.addMouseListener(object : MouseAdapter() {
                override fun mouseClicked(e: MouseEvent) = navigator.open(Route.Plan(plan.id))
            })
            list.add(item)
        }
        for (detail in state.damaged) list.add(card(text("Beschadigd plan: $detail", color = Theme.error)))
        state.message?.let { list.add(text(it, 12f, color = Theme.error)) }
        list.revalidate()
        list.repaint()
    }
}
