package nl.eenplan.demo.ui

import javax.swing.JComponent
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.launch

/** Where the phone is: the navigation graph of the app. */
sealed interface Route {
    /** The start screen after unlocking: what needs this user across every plan. */
    data object Agenda : Route
    data object Plans : Route
    data class Plan(val planId: String) : Route
    data class Note(val planId: String, val noteId: String?) : Route
    data class Conflicts(val planId: String) : Route
    /** Participants and regie: add, remove, hand over, accept, escalate, de-escalate, the history. */
    data class Regie(val planId: String) : Route
    /** The family: members, ZRM scores, the safety plan. */
    data class Family(val planId: String) : Route
    /** "Beoordelen en vaststellen": adoptions, what is not adopted yet, and (the regisseur) adopting. */
    data class Adopt(val planId: String) : Route
}

/** The back stack; the window shows its top. */
class Navigator(private val onChange: (Route) -> Unit) {
    private val stack = ArrayDeque<Route>(listOf(Route.Agenda))
    val current: Route get() = stack.last()
    val canGoBack: Boolean get() = stack.size > 1

    fun open(route: Route) {
        stack.addLast(route)
        onChange(route)
    }

    fun back() {
        if (canGoBack) {
            stack.removeLast()
            onChange(current)
        }
    }
}

/**
 * A screen renders one view model's state and forwards clicks to it; it holds no state of its
 * own beyond what Swing needs, and calls nothing in the bindings.
 */
abstract class Screen<S>(private val state: StateFlow<S>) {
    abstract val title: String
    abstract val component: JComponent

    /** Called after each render (the window updates its title from it). */
    var onRendered: (() -> Unit)? = null

    /** Renders every new state on the UI thread while [scope] lives. */
    fun bind(scope: CoroutineScope) {
        scope.launch(Main) {
            state.collect {
                render(it)
                onRendered?.invoke()
            }
        }
    }

    /** Renders the current state now (on the UI thread), e.g. before a screenshot. */
    fun renderNow() = render(state.value)

    protected abstract fun render(state: S)
}
