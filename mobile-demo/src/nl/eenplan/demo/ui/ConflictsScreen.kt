package nl.eenplan.demo.ui

import java.awt.BorderLayout
import javax.swing.BorderFactory
import javax.swing.JComponent
import javax.swing.JPanel
import javax.swing.JTextField
import nl.eenplan.demo.viewmodel.ConflictsUiState
import nl.eenplan.demo.viewmodel.ConflictsViewModel

/** The regisseur's list of fields that were set concurrently, each settled with one tap. */
class ConflictsScreen(private val vm: ConflictsViewModel) : Screen<ConflictsUiState>(vm.state) {
    override val title = "Conflicten"
    private val content = Column().apply { border = BorderFactory.createEmptyBorder(10, 12, 12, 12) }
    override val component: JComponent = JPanel(BorderLayout()).apply {
        background = Theme.background
        add(scroll(content), BorderLayout.CENTER)
    }

    override fun render(state: ConflictsUiState) {
        content.clear()
        content.add(text("Twee mensen zetten hetzelfde veld tegelijk, offline. Kies welke waarde blijft, of geef een nieuwe; iedereen krijgt uw keuze bij de volgende sync.", 12.5f, color = Theme.muted))
        if (state.loaded && state.conflicts.isEmpty()) {
            content.add(card(text("Geen conflicten: alle toestellen zijn het eens.", color = Theme.ok)))
        }
        for (conflict in state.conflicts) {
            val rows = mutableListOf<JComponent>(text(conflict.label, 14.5f, bold = true))
            for (option in conflict.options) {
                rows += JPanel(BorderLayout(6, 0)).apply {
                    isOpaque = false
                    border = BorderFactory.createEmptyBorder(6, 0, 0, 0)
                    add(column(
                        text(option.value, 15f, bold = true, color = Theme.primary, width = 140),
                        text("${option.author} · ${formatTime(option.atMs)}", 11.5f, color = Theme.muted, width = 140),
                        gap = 0,
                    ), BorderLayout.CENTER)
                    add(button("Deze houden", primary = true) { vm.keep(conflict.id, option.index) }, BorderLayout.EAST)
                }
            }
            val other = JTextField().apply { font = Theme.font(13f) }
            rows += JPanel(BorderLayout(6, 0)).apply {
                isOpaque = false
                border = BorderFactory.createEmptyBorder(8, 0, 0, 0)
                add(other, BorderLayout.CENTER)
                add(button("Andere waarde") { other.text.trim().takeIf { it.isNotEmpty() }?.let { vm.settleWith(conflict.id, it) } }, BorderLayout.EAST)
            }
            content.add(card(*rows.toTypedArray()))
        }
        state.message?.let { content.add(text(it, 12f, color = Theme.error)) }
        content.revalidate()
        content.repaint()
    }
}
