package nl.eenplan.demo.ui

import java.awt.BorderLayout
import javax.swing.BorderFactory
import javax.swing.JComponent
import javax.swing.JPanel
import javax.swing.JTextField
import nl.eenplan.Enrolment
import nl.eenplan.demo.viewmodel.DeviceUiState
import nl.eenplan.demo.viewmodel.DeviceViewModel
import nl.eenplan.demo.viewmodel.LockState

/** First start: the server address and the one-time code from the administrator. */
class EnrolScreen(private val vm: DeviceViewModel) : Screen<DeviceUiState>(vm.state) {
    override val title = "Toestel aanmelden"
    private val server = JTextField("https://").apply { font = Theme.font(13f) }
    private val code = JTextField().apply { font = Theme.font(13f) }
    private val name = JTextField().apply { font = Theme.font(13f) }
    private val content = Column().apply { border = BorderFactory.createEmptyBorder(16, 16, 16, 16) }
    override val component: JComponent = JPanel(BorderLayout()).apply {
        background = Theme.background
        add(scroll(content), BorderLayout.CENTER)
    }

    override fun render(state: DeviceUiState) {
        content.clear()
        if (state.enrolment == Enrolment.PENDING_APPROVAL) {
            content.add(card(
                text("Wacht op goedkeuring", 17f, bold = true),
                text("Dit toestel (${state.deviceId.take(12)}…) heeft de aanmeldcode gebruikt. Zodra de beheerder het goedkeurt, haalt de volgende sync het certificaat op.", 13f, color = Theme.muted),
                row(button("Opnieuw proberen", primary = true) { vm.sync() }),
            ))
        } else {
            content.add(card(
                text("Welkom bij eenplan", 17f, bold = true),
                text("Vul het adres van de server en de eenmalige code van uw beheerder in.", 13f, color = Theme.muted),
                text("Server", 12f, bold = true), server,
                text("Aanmeldcode", 12f, bold = true), code,
                text("Naam van dit toestel (bijv. Wim's Android)", 12f, bold = true), name,
                row(button("Aanmelden", primary = true) { vm.enrol(server.text, code.text, name.text) }),
            ))
        }
        state.message?.let { content.add(text(it, 12.5f, color = Theme.error)) }
        content.revalidate()
        content.repaint()
    }
}

/** Revoked, wiped, or the offline lease ran out: no plan content is shown. */
class LockedScreen(private val vm: DeviceViewModel) : Screen<DeviceUiState>(vm.state) {
    override val title = "Vergrendeld"
    private val content = Column().apply { border = BorderFactory.createEmptyBorder(40, 20, 20, 20) }
    override val component: JComponent = JPanel(BorderLayout()).apply {
        background = Theme.background
        add(content, BorderLayout.CENTER)
    }

    override fun render(state: DeviceUiState) {
        content.clear()
        val (heading, color) = when (state.lock) {
            is LockState.Wiped -> "Toestel gewist" to Theme.error
            is LockState.Revoked -> "Toestel ingetrokken" to Theme.error
            is LockState.LeaseExpired -> "Plannen vergrendeld" to Theme.warn
            LockState.Unlocked -> "" to Theme.text
        }
        val message = when (val lock = state.lock) {
            is LockState.Wiped -> lock.message
            is LockState.Revoked -> lock.message
            is LockState.LeaseExpired -> lock.message
            LockState.Unlocked -> ""
        }
        content.add(text(heading, 20f, bold = true, color = color))
        content.add(text(message, 14f))
        when (state.lock) {
            is LockState.LeaseExpired -> {
                content.add(text("Uw wijzigingen blijven bewaard en worden bij de sync verzonden.", 12.5f, color = Theme.muted))
                content.add(row(button("Synchroniseren", primary = true) { vm.sync() }))
            }
            is LockState.Wiped -> content.add(text("Er staat niets leesbaars meer op dit toestel. Meld het opnieuw aan met een nieuwe code.", 12.5f, color = Theme.muted))
            else -> {}
        }
        content.revalidate()
        content.repaint()
    }
}

/** The offline indicator under the app bar: connection, pending changes, sync. */
class StatusStrip(private val vm: DeviceViewModel) : Screen<DeviceUiState>(vm.state) {
    override val title = ""
    private val label = JLabelHtml()
    private val last = javax.swing.JLabel().apply { font = Theme.font(11f); foreground = Theme.muted }
    private val offline = javax.swing.JCheckBox("Offline werken").apply {
        font = Theme.font(11.5f, bold = true)
        isOpaque = false
        addActionListener { vm.setWorkOffline(isSelected) }
    }
    private val sync = button("Sync") { vm.sync() }
    override val component: JComponent = JPanel(BorderLayout(0, 2)).apply {
        border = BorderFactory.createCompoundBorder(
            BorderFactory.createMatteBorder(0, 0, 1, 0, Theme.line), BorderFactory.createEmptyBorder(6, 12, 6, 8))
        add(label, BorderLayout.NORTH)
        add(JPanel(BorderLayout(6, 0)).apply {
            isOpaque = false
            add(last, BorderLayout.CENTER)
            add(row(offline, sync, gap = 4), BorderLayout.EAST)
        }, BorderLayout.SOUTH)
    }

    override fun render(state: DeviceUiState) {
        val pending = when (state.pendingChanges) {
            0L -> "alles verzonden"
            1L -> "1 wijziging wacht"
            else -> "${state.pendingChanges} wijzigingen wachten"
        }
        val (dot, words, bg) = when {
            state.syncing -> Triple(Theme.primary, "Synchroniseren…", Theme.surface)
            state.connectivity == nl.eenplan.demo.viewmodel.Connectivity.WORKING_OFFLINE -> Triple(Theme.warn, "Offline · $pending", Theme.warnBg)
            state.connectivity == nl.eenplan.demo.viewmodel.Connectivity.UNREACHABLE -> Triple(Theme.error, "Geen verbinding · $pending", Theme.errorBg)
            else -> Triple(Theme.ok, "Online · $pending", Theme.okBg)
        }
        component.background = bg
        label.set(dot, words)
        last.text = state.lastSync?.let { "laatste sync: $it" } ?: "nog niet gesynchroniseerd"
        offline.isSelected = state.connectivity == nl.eenplan.demo.viewmodel.Connectivity.WORKING_OFFLINE
        sync.isEnabled = !state.syncing
    }
}

/** A coloured dot and a bold line. */
class JLabelHtml : javax.swing.JLabel() {
    init {
        font = Theme.font(12.5f)
    }

    fun set(dot: java.awt.Color, line: String) {
        val hex = String.format("#%06X", dot.rgb and 0xFFFFFF)
        text = "<html><span style='color:$hex'>●</span> <b>$line</b></html>"
    }
}
