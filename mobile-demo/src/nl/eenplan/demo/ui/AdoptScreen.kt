package nl.eenplan.demo.ui

import java.awt.BorderLayout
import javax.swing.BorderFactory
import javax.swing.JCheckBox
import javax.swing.JComponent
import javax.swing.JPanel
import javax.swing.JTextArea
import nl.eenplan.demo.viewmodel.AdoptionUiState
import nl.eenplan.demo.viewmodel.AdoptionViewModel

/**
 * "Beoordelen en vaststellen": the adopted versions as this phone checked them, what is not
 * adopted yet, and for the regisseur the adoption itself — the family's agreement in their
 * words and who was present — with its result; and "Kopie voor het gezin": the family's copy
 * as HTML, written to a file to share and shown, with "Afdrukken".
 */
class AdoptScreen(private val vm: AdoptionViewModel) : Screen<AdoptionUiState>(vm.state) {
    override var title = "Beoordelen en vaststellen"
        private set
    private val content = Column().apply { border = BorderFactory.createEmptyBorder(10, 12, 12, 12) }
    private val withFamily = JTextArea(3, 20).apply {
        font = Theme.font(13f)
        lineWrap = true
        wrapStyleWord = true
        border = BorderFactory.createLineBorder(Theme.line)
    }
    private val present = LinkedHashMap<String, JCheckBox>()
    /** The family's copy as Swing renders HTML (a phone shows it in a WebView). */
    private val copyPane = javax.swing.JEditorPane().apply {
        contentType = "text/html"
        isEditable = false
    }
    private val copyScroll = javax.swing.JScrollPane(copyPane).apply {
        // Narrow preferred and minimum widths: the card stretches it to the phone's width (a
        // wider preference would make the column fall back to every child's minimum size).
        preferredSize = java.awt.Dimension(120, 300)
        minimumSize = java.awt.Dimension(120, 300)
        border = BorderFactory.createLineBorder(Theme.line)
    }
    override val component: JComponent = JPanel(BorderLayout()).apply {
        background = Theme.background
        add(scroll(content), BorderLayout.CENTER)
    }

    override fun render(state: AdoptionUiState) {
        title = "Vaststellen · ${state.family}"
        content.clear()
        val latest = state.latest
        content.add(card(
            text("Gezin ${state.family}", 17f, bold = true),
            if (latest == null) text("Nog niet vastgesteld.", 13f, color = Theme.muted)
            else text("Vastgesteld: versie ${latest.version} op ${latest.date}, ondertekend door ${latest.signedBy ?: "onbekend"}", 13f, bold = true, color = Theme.ok),
            *(latest?.let { arrayOf(text("Met het gezin: ${it.withFamily}", 12.5f), text("Aanwezig: ${it.present.joinToString()}", 12f, color = Theme.muted)) } ?: emptyArray()),
        ))
        content.add(sectionTitle("Gewijzigd sinds u keek (${state.reviewLines.size})"))
        content.add(card(
            *(if (state.reviewLines.isEmpty()) listOf(text("Niets nieuws van anderen.", 12.5f, color = Theme.muted))
            else state.reviewLines.map { text(it, 12f) }).toTypedArray(),
            row(button("Gezien") { vm.markReviewed() }.apply { isEnabled = state.reviewLines.isNotEmpty() }),
        ))
        content.add(sectionTitle("Kopie voor het gezin"))
        val copyRows = mutableListOf<JComponent>(
            text("Het plan zoals het gezin het leest: zonder notities, met de vastgestelde versie.", 12f, color = Theme.muted),
            row(
                button("Kopie maken", primary = state.familyCopyHtml == null) { vm.familyCopy() },
                button("Afdrukken") { if (state.familyCopyHtml != null) copyPane.print() }.apply { isEnabled = state.familyCopyHtml != null },
            ),
        )
        state.familyCopyHtml?.let { html ->
            if (copyPane.getClientProperty("html") != html) {
                copyPane.text = html
                copyPane.caretPosition = 0
                copyPane.putClientProperty("html", html)
            }
            copyRows += copyScroll
            state.familyCopyFile?.let { val file = java.io.File(it)
                copyRows += text("Gedeeld bestand (om te delen of af te drukken):\n${file.parent}/\n${file.name}", 11f, color = Theme.muted) }
        }
        content.add(card(*copyRows.toTypedArray()))
        if (latest != null) {
            content.add(sectionTitle("Nog niet vastgesteld (${state.notAdopted.size})"))
            content.add(card(*(if (state.notAdopted.isEmpty()) listOf(text("Niets gewijzigd sinds versie ${latest.version}.", 12.5f, color = Theme.muted))
            else state.notAdopted.map { text(it, 12.5f) }).toTypedArray()))
        }
        val others = state.adoptions.filter { !it.verified }
        for (a in others) content.add(card(text("Versie ${a.version} (${a.date}): ${a.checkText}", 12f, color = Theme.error)))

        if (state.isRegisseur) {
            content.add(sectionTitle("Vaststellen met het gezin"))
            for (name in state.participants) present.getOrPut(name) { JCheckBox(name).apply { font = Theme.font(13f); isOpaque = false } }
            present.keys.retainAll(state.participants.toSet())
            content.add(card(
                labelled("Afspraak met het gezin (in uw woorden)", withFamily),
                labelled("Aanwezig", column(*present.values.toTypedArray(), gap = 0)),
                row(button(if (state.busy) "Bezig…" else "Vaststellen als versie ${(state.adoptions.maxOfOrNull { it.version } ?: 0) + 1}", primary = true) {
                    val text = withFamily.text.trim()
                    if (text.isNotEmpty() && !state.busy) vm.adopt(text, present.filterValues { it.isSelected }.keys.toList())
                }),
            ))
        } else if (state.loaded) {
            content.add(card(text("Alleen de regisseur (${state.regisseur ?: "onbekend"}) stelt het plan vast.", 12.5f, color = Theme.muted)))
        }
        state.notice?.let { content.add(text(it, 12.5f, bold = true, color = Theme.ok)) }
        state.message?.let { content.add(text(it, 12f, color = Theme.error)) }
        content.revalidate()
        content.repaint()
    }
}
