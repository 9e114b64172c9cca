package nl.eenplan.demo.ui

import java.awt.BorderLayout
import java.awt.Dimension
import java.awt.RenderingHints
import java.awt.image.BufferedImage
import javax.swing.BorderFactory
import javax.swing.JComponent
import javax.swing.JFrame
import javax.swing.JLabel
import javax.swing.JPanel
import javax.swing.SwingUtilities
import javax.swing.WindowConstants
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.flow.distinctUntilChangedBy
import kotlinx.coroutines.launch
import nl.eenplan.Enrolment
import nl.eenplan.Vocabulary
import nl.eenplan.displayLabel
import nl.eenplan.demo.PhoneApp
import nl.eenplan.demo.viewmodel.LockState

/**
 * A phone-shaped window (390 × 844 points, an iPhone 14 / mid-size Android) with an app bar,
 * the offline indicator and the current screen. It picks the screen from the navigator, the
 * enrolment and the lock state; everything else is the screens' business.
 */
class PhoneWindow(private val app: PhoneApp, x: Int = 40) {
    val frame = JFrame("eenplan · ${app.name}")
    private val scope = CoroutineScope(SupervisorJob() + Main)
    private var screenScope = CoroutineScope(SupervisorJob() + Main)
    private val navigator = Navigator { show() }
    private val status = StatusStrip(app.device)
    private val title = JLabel().apply { font = Theme.font(18f, bold = true); foreground = Theme.onPrimary }
    private val subtitle = JLabel().apply { font = Theme.font(11.5f); foreground = Theme.onPrimary }
    private val back = button("‹") { navigator.back() }.apply {
        font = Theme.font(22f, bold = true)
        background = Theme.primary
        foreground = Theme.onPrimary
        border = BorderFactory.createEmptyBorder(0, 4, 2, 10)
    }
    private val body = JPanel(BorderLayout())
    private var current: Screen<*>? = null

    init {
        val appBar = JPanel(BorderLayout()).apply {
            background = Theme.primary
            border = BorderFactory.createEmptyBorder(14, 12, 10, 12)
            add(back, BorderLayout.WEST)
            add(JPanel(BorderLayout()).apply {
                isOpaque = false
                add(title, BorderLayout.CENTER)
                add(subtitle, BorderLayout.SOUTH)
            }, BorderLayout.CENTER)
        }
        frame.contentPane = JPanel(BorderLayout()).apply {
            background = Theme.background
            add(JPanel(BorderLayout()).apply { add(appBar, BorderLayout.NORTH); add(status.component, BorderLayout.SOUTH) }, BorderLayout.NORTH)
            add(body, BorderLayout.CENTER)
            preferredSize = Dimension(WIDTH, HEIGHT)
        }
        frame.defaultCloseOperation = WindowConstants.DISPOSE_ON_CLOSE
        frame.isResizable = false
        frame.pack()
        frame.setLocation(x, 20)
        status.bind(scope)
        // A new screen when the phone is locked, unlocked, enrolled or its user is known.
        scope.launch {
            app.device.state.distinctUntilChangedBy { Triple(it.lock::class, it.enrolment, it.user) }.collect { show() }
        }
        app.device.refresh()
        app.agenda.load()
    }

    /** Navigation for the headless script and the screenshot, as a tap would do it. */
    fun open(route: Route) = SwingUtilities.invokeAndWait { navigator.open(route) }

    private fun show() {
        screenScope.cancel()
        screenScope = CoroutineScope(SupervisorJob() + Main)
        val state = app.device.state.value
        val screen: Screen<*> = when {
            state.lock !is LockState.Unlocked -> LockedScreen(app.device)
            state.enrolment != Enrolment.ACTIVE -> EnrolScreen(app.device)
            else -> when (val route = navigator.current) {
                Route.Agenda -> AgendaScreen(app.agenda, navigator).also { app.agenda.load() }
                Route.Plans -> PlanListScreen(app.planList, navigator).also { app.planList.load() }
                is Route.Plan -> PlanScreen(app.plan(route.planId), navigator)
                    .also { app.plan(route.planId).load() }
                is Route.Note -> NoteEditorScreen(app.noteEditor(route.planId)).also { s ->
                    route.noteId?.let { app.noteEditor(route.planId).open(it) }
                }
                is Route.Conflicts -> ConflictsScreen(app.conflicts(route.planId)).also { app.conflicts(route.planId).load() }
                is Route.Regie -> RegieScreen(app.plan(route.planId)).also { app.plan(route.planId).load() }
                is Route.Family -> FamilyScreen(app.plan(route.planId)).also { app.plan(route.planId).load() }
                is Route.Adopt -> AdoptScreen(app.adoption(route.planId)).also { app.adoption(route.planId).load() }
            }
        }
        current = screen
        screen.onRendered = { renderTitle(screen) }
        screen.bind(screenScope)
        body.removeAll()
        body.add(screen.component, BorderLayout.CENTER)
        back.isVisible = navigator.canGoBack && state.lock is LockState.Unlocked && state.enrolment == Enrolment.ACTIVE
        renderTitle(screen)
        body.revalidate()
        body.repaint()
    }

    private fun renderTitle(screen: Screen<*>) {
        val s = app.device.state.value
        title.text = screen.title.ifEmpty { "eenplan" }
        val role = s.role?.let { displayLabel(Vocabulary.ROLE, it) }
        subtitle.text = listOfNotNull(s.user, role, s.organisation).joinToString(" · ").ifEmpty { app.name }
    }

    /**
     * The window as it is now, painted into an image on the UI thread. The current screen and
     * the indicator are rendered from their view models' present state first, so the picture
     * shows exactly that state.
     */
    fun capture(): BufferedImage {
        var image: BufferedImage? = null
        SwingUtilities.invokeAndWait {
            status.renderNow()
            current?.let { it.renderNow(); renderTitle(it) }
            val pane = frame.contentPane as JComponent
            frame.validate()
            image = BufferedImage(pane.width, pane.height, BufferedImage.TYPE_INT_RGB).also { img ->
                val g = img.createGraphics()
                g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON)
                g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON)
                pane.printAll(g)
                g.dispose()
            }
        }
        return image!!
    }

    fun close() {
        scope.cancel()
        screenScope.cancel()
        SwingUtilities.invokeLater { frame.dispose() }
    }

    companion object {
        const val WIDTH = 390
        const val HEIGHT = 844
    }
}
