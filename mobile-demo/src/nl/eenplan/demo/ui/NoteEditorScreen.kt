package nl.eenplan.demo.ui

import java.awt.BorderLayout
import javax.swing.BorderFactory
import javax.swing.DefaultListCellRenderer
import javax.swing.JComboBox
import javax.swing.JLabel
import javax.swing.JComponent
import javax.swing.JPanel
import javax.swing.JTextArea
import javax.swing.event.DocumentEvent
import javax.swing.event.DocumentListener
import nl.eenplan.Compartment
import nl.eenplan.demo.viewmodel.NoteEditorUiState
import nl.eenplan.demo.viewmodel.NoteEditorViewModel

/**
 * The home-visit note editor. Every change of the text field goes to the view model as
 * (UTF-16 offset, removed length, inserted text), which is what the core's `editNote` takes.
 */
class NoteEditorScreen(private val vm: NoteEditorViewModel) : Screen<NoteEditorUiState>(vm.state) {
    override val title = "Huisbezoek"
    private var applyingState = false
    private val area = JTextArea().apply {
        font = Theme.font(14.5f)
        lineWrap = true
        wrapStyleWord = true
        foreground = Theme.text
        border = BorderFactory.createEmptyBorder(12, 12, 12, 12)
    }
    private val header = text("", 12f, bold = true, color = Theme.muted)
    /** Where the note goes; only before it starts (an opened note stays where it is). */
    private val picker = JComboBox(Compartment.values()).apply {
        font = Theme.font(13f)
        preferredSize = java.awt.Dimension(150, 28)
        renderer = DefaultListCellRenderer().let { base ->
            javax.swing.ListCellRenderer<Compartment> { list, value, index, selected, focus ->
                base.getListCellRendererComponent(list, value?.name?.lowercase(), index, selected, focus)
            }
        }
        addActionListener { if (!applyingState) (selectedItem as? Compartment)?.let { vm.choose(it) } }
    }
    private val audience = text("", 12f, color = Theme.muted)
    private val footer = text("", 12f, color = Theme.muted)
    private val start = button("Huisbezoek starten", primary = true) {
        area.text.trim().takeIf { it.isNotEmpty() }?.let { vm.startHomeVisit(it) }
    }
    override val component: JComponent = JPanel(BorderLayout()).apply {
        background = Theme.background
        border = BorderFactory.createEmptyBorder(10, 12, 12, 12)
        val label = JLabel("Compartiment").apply { font = Theme.font(12f); foreground = Theme.muted }
        add(column(header, row(label, picker), audience), BorderLayout.NORTH)
        add(JPanel(BorderLayout()).apply {
            isOpaque = false
            border = BorderFactory.createEmptyBorder(8, 0, 8, 0)
            add(card(area), BorderLayout.CENTER)
        }, BorderLayout.CENTER)
        add(column(footer, row(start)), BorderLayout.SOUTH)
    }

    init {
        area.document.addDocumentListener(object : DocumentListener {
            override fun insertUpdate(e: DocumentEvent) {
                if (!applyingState) vm.onEdited(e.offset, 0, e.document.getText(e.offset, e.length))
            }

            override fun removeUpdate(e: DocumentEvent) {
                if (!applyingState) vm.onEdited(e.offset, e.length, "")
            }

            override fun changedUpdate(e: DocumentEvent) {}
        })
    }

    override fun render(state: NoteEditorUiState) {
        val started = state.noteId != null
        header.text = if (started) "<html>HUISBEZOEK · ${state.author.uppercase()}</html>" else "<html>NIEUW HUISBEZOEK</html>"
        applyingState = true
        picker.selectedItem = state.compartment
        applyingState = false
        picker.isEnabled = !started
        audience.text = "<html><b>Zichtbaar voor:</b> ${state.audience}</html>"
        start.isVisible = !started
        // The core's text wins only when no keystroke is on its way to it (e.g. a colleague's
        // typing merged in by a sync); while typing, the field is ahead of the state.
        if (started && state.saved && area.text != state.text) {
            applyingState = true
            val caret = area.caretPosition
            area.text = state.text
            area.caretPosition = caret.coerceAtMost(state.text.length)
            applyingState = false
        }
        footer.text = "<html>" + when {
            state.message != null -> "<span style='color:#C62828'>${state.message}</span>"
            !started -> "Schrijf de eerste regel en start het huisbezoek; daarna wordt elke toets direct versleuteld op dit toestel bewaard."
            state.saved -> "✓ Versleuteld bewaard op dit toestel · ${state.text.length} tekens"
            else -> "Bewaren…"
        } + "</html>"
    }
}
