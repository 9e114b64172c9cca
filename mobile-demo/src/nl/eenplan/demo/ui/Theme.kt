package nl.eenplan.demo.ui

import java.awt.BasicStroke
import java.awt.Color
import java.awt.Component
import java.awt.Cursor
import java.awt.Dimension
import java.awt.Font
import java.awt.Graphics
import java.awt.Graphics2D
import java.awt.GridBagConstraints
import java.awt.GridBagLayout
import java.awt.Insets
import java.awt.Rectangle
import java.awt.RenderingHints
import java.util.concurrent.Executor
import javax.swing.BorderFactory
import javax.swing.JButton
import javax.swing.JComponent
import javax.swing.JLabel
import javax.swing.JPanel
import javax.swing.JScrollPane
import javax.swing.Scrollable
import javax.swing.SwingConstants
import javax.swing.SwingUtilities
import javax.swing.border.AbstractBorder
import kotlinx.coroutines.asCoroutineDispatcher

/** The Swing event thread as a coroutine dispatcher: the JVM stand-in for `Dispatchers.Main`. */
val Main = Executor { SwingUtilities.invokeLater(it) }.asCoroutineDispatcher()

/** Colours and type of a small Material-like theme; a phone app has these in its theme files. */
object Theme {
    val primary = Color(0x1E5A84)
    val primaryDark = Color(0x16425F)
    val onPrimary: Color = Color.WHITE
    val background = Color(0xF1F4F7)
    val surface: Color = Color.WHITE
    val text = Color(0x1B1F24)
    val muted = Color(0x5F6B78)
    val line = Color(0xDCE2E8)
    val ok = Color(0x2E7D32)
    val warn = Color(0xB45F06)
    val error = Color(0xC62828)
    val okBg = Color(0xE6F4EA)
    val warnBg = Color(0xFFF1DC)
    val errorBg = Color(0xFDE7E7)

    /** Width of text inside a card (a 390 px wide phone), in the HTML renderer's units. */
    const val TEXT_WIDTH = 255

    fun font(size: Float, bold: Boolean = false): Font = Font(Font.SANS_SERIF, if (bold) Font.BOLD else Font.PLAIN, 1).deriveFont(size)
}

private fun escape(text: String) = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")

/** A label that wraps its text to [width] pixels. */
fun text(content: String, size: Float = 14f, bold: Boolean = false, color: Color = Theme.text, width: Int = Theme.TEXT_WIDTH): JLabel =
    JLabel("<html><div style='width:${width}px'>${escape(content)}</div></html>").apply {
        font = Theme.font(size, bold)
        foreground = color
    }

/** A small upper-case section title. */
fun sectionTitle(content: String): JLabel = JLabel(content.uppercase()).apply {
    font = Theme.font(12f, bold = true)
    foreground = Theme.muted
    border = BorderFactory.createEmptyBorder(12, 4, 4, 4)
}

/** A rounded outline, for cards and chips. */
class RoundBorder(private val color: Color, private val radius: Int, private val pad: Insets) : AbstractBorder() {
    override fun paintBorder(c: Component, g: Graphics, x: Int, y: Int, width: Int, height: Int) {
        val g2 = g.create() as Graphics2D
        g2.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON)
        g2.color = color
        g2.stroke = BasicStroke(1f)
        g2.drawRoundRect(x, y, width - 1, height - 1, radius, radius)
        g2.dispose()
    }

    override fun getBorderInsets(c: Component): Insets = Insets(pad.top, pad.left, pad.bottom, pad.right)
}

/** A panel that paints a rounded background (the border draws the outline). */
open class RoundPanel(private val fill: Color, private val radius: Int = 14) : JPanel() {
    init {
        isOpaque = false
    }

    override fun paintComponent(g: Graphics) {
        val g2 = g.create() as Graphics2D
        g2.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON)
        g2.color = fill
        g2.fillRoundRect(0, 0, width - 1, height - 1, radius, radius)
        g2.dispose()
        super.paintComponent(g)
    }
}

/** Components stacked top to bottom, each as wide as the column. */
fun column(vararg rows: JComponent, gap: Int = 6): JPanel = Column().apply { rows.forEach { add(it, gap) } }

open class Column : JPanel(GridBagLayout()), Scrollable {
    private var next = 0
    private val filler = JPanel().apply { isOpaque = false }

    init {
        isOpaque = false
    }

    fun add(row: JComponent, gap: Int = 6) {
        remove(filler)
        add(row, GridBagConstraints().apply {
            gridx = 0; gridy = next++; weightx = 1.0; fill = GridBagConstraints.HORIZONTAL
            anchor = GridBagConstraints.NORTHWEST; insets = Insets(0, 0, gap, 0)
        })
        add(filler, GridBagConstraints().apply { gridx = 0; gridy = 10_000; weighty = 1.0; fill = GridBagConstraints.BOTH })
    }

    fun clear() {
        removeAll()
        next = 0
    }

    override fun getPreferredScrollableViewportSize(): Dimension = preferredSize
    override fun getScrollableUnitIncrement(r: Rectangle, o: Int, d: Int) = 16
    override fun getScrollableBlockIncrement(r: Rectangle, o: Int, d: Int) = r.height - 32
    override fun getScrollableTracksViewportWidth() = true
    override fun getScrollableTracksViewportHeight() = parent != null && parent.height > preferredSize.height
}

/** A white card with rounded corners around [rows]. */
fun card(vararg rows: JComponent, fill: Color = Theme.surface, outline: Color = Theme.line): JComponent =
    RoundPanel(fill).apply {
        layout = java.awt.BorderLayout()
        border = RoundBorder(outline, 14, Insets(10, 14, 10, 14))
        add(column(*rows, gap = 4), java.awt.BorderLayout.CENTER)
    }

/** A small coloured label, e.g. a status. */
fun chip(content: String, color: Color, background: Color): JComponent = RoundPanel(background, 12).apply {
    layout = java.awt.FlowLayout(java.awt.FlowLayout.LEFT, 0, 0)
    border = BorderFactory.createEmptyBorder(2, 8, 2, 8)
    add(JLabel(content).apply { font = Theme.font(11.5f, bold = true); foreground = color })
}

/** A row of [items] from the left, for chips and small buttons. */
fun row(vararg items: JComponent, gap: Int = 6): JPanel = JPanel(java.awt.FlowLayout(java.awt.FlowLayout.LEFT, gap, 0)).apply {
    isOpaque = false
    items.forEach { add(it) }
}

/** A flat button; [primary] ones are filled with the theme colour. */
fun button(label: String, primary: Boolean = false, onClick: () -> Unit): JButton = JButton(label).apply {
    font = Theme.font(13f, bold = true)
    isFocusPainted = false
    isContentAreaFilled = false
    isOpaque = true
    cursor = Cursor.getPredefinedCursor(Cursor.HAND_CURSOR)
    background = if (primary) Theme.primary else Theme.surface
    foreground = if (primary) Theme.onPrimary else Theme.primary
    border = RoundBorder(if (primary) Theme.primary else Theme.line, 10, Insets(6, 12, 6, 12))
    horizontalAlignment = SwingConstants.CENTER
    addActionListener { onClick() }
}

/** A vertical scroll area with the theme's background. */
fun scroll(content: JComponent): JScrollPane = JScrollPane(content).apply {
    border = BorderFactory.createEmptyBorder()
    viewport.background = Theme.background
    verticalScrollBar.unitIncrement = 16
    horizontalScrollBarPolicy = JScrollPane.HORIZONTAL_SCROLLBAR_NEVER
}

/** A goal or action status code ("in_progress") as the core's Dutch label, in its colours. */
fun statusChip(status: String): JComponent {
    val action = nl.eenplan.displayLabel(nl.eenplan.Vocabulary.ACTION_STATUS, status)
    val label = (if (action != status) action else nl.eenplan.displayLabel(nl.eenplan.Vocabulary.GOAL_STATUS, status)).lowercase()
    return when (status) {
        "open", "todo" -> chip(label, Theme.muted, Theme.background)
        "in_progress" -> chip(label, Theme.warn, Theme.warnBg)
        "achieved", "done" -> chip(label, Theme.ok, Theme.okBg)
        "not_achieved", "cancelled" -> chip(label, Theme.error, Theme.errorBg)
        else -> chip(label, Theme.muted, Theme.background)
    }
}

/** A date stamp in local time. */
fun formatTime(ms: Long?): String = ms?.let {
    java.time.format.DateTimeFormatter.ofPattern("d MMM HH:mm", java.util.Locale.forLanguageTag("nl"))
        .format(java.time.Instant.ofEpochMilli(it).atZone(java.time.ZoneId.systemDefault()))
} ?: ""

/** A text field in the theme's type. */
fun field(initial: String = ""): javax.swing.JTextField = javax.swing.JTextField(initial).apply { font = Theme.font(13f) }

/** A small label above [input]: a phone form's field. */
fun labelled(label: String, input: JComponent): JComponent = column(text(label, 11.5f, bold = true, color = Theme.muted), input, gap = 2)

/** A picker of [choices] shown with [label] (a Dutch word, not the enum's name). */
fun <T> picker(choices: List<T>, label: (T) -> String): javax.swing.JComboBox<T> {
    val model = javax.swing.DefaultComboBoxModel<T>()
    choices.forEach { model.addElement(it) }
    return javax.swing.JComboBox(model).apply {
        font = Theme.font(13f)
        renderer = javax.swing.DefaultListCellRenderer().let { base ->
            javax.swing.ListCellRenderer<T> { list, value, index, selected, focus ->
                base.getListCellRendererComponent(list, value?.let(label) ?: "", index, selected, focus)
            }
        }
    }
}

/** The items of [box] become [choices], only when they differ (so a pick survives a re-render). */
fun <T> javax.swing.JComboBox<T>.setChoices(choices: List<T>) {
    val current = (0 until itemCount).map { getItemAt(it) }
    if (current == choices) return
    val selected = selectedItem
    removeAllItems()
    choices.forEach { addItem(it) }
    if (selected != null && choices.any { it == selected }) selectedItem = selected
}
