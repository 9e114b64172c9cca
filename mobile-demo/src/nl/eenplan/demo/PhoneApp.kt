package nl.eenplan.demo

import nl.eenplan.demo.viewmodel.AdoptionViewModel
import nl.eenplan.demo.viewmodel.AgendaViewModel
import nl.eenplan.demo.viewmodel.ConflictsViewModel
import nl.eenplan.demo.viewmodel.DeviceViewModel
import nl.eenplan.demo.viewmodel.NoteEditorViewModel
import nl.eenplan.demo.viewmodel.PhoneSession
import nl.eenplan.demo.viewmodel.PlanListViewModel
import nl.eenplan.demo.viewmodel.PlanViewModel

/**
 * One phone: its device session and its view models (the app's dependency graph, what Hilt or
 * a ViewModelStore gives an Android app). View models are kept per plan, so the window and
 * the headless script drive the very same instances.
 */
class PhoneApp(val session: PhoneSession) : AutoCloseable {
    val device = DeviceViewModel(session)
    val planList = PlanListViewModel(session)
    val agenda = AgendaViewModel(session)
    private val plans = HashMap<String, PlanViewModel>()
    private val notes = HashMap<String, NoteEditorViewModel>()
    private val conflicts = HashMap<String, ConflictsViewModel>()
    private val adoptions = HashMap<String, AdoptionViewModel>()

    val name: String get() = session.name

    @Synchronized
    fun plan(planId: String): PlanViewModel = plans.getOrPut(planId) { PlanViewModel(session, planId) }

    @Synchronized
    fun noteEditor(planId: String): NoteEditorViewModel = notes.getOrPut(planId) { NoteEditorViewModel(session, planId) }

    @Synchronized
    fun conflicts(planId: String): ConflictsViewModel = conflicts.getOrPut(planId) { ConflictsViewModel(session, planId) }

    @Synchronized
    fun adoption(planId: String): AdoptionViewModel = adoptions.getOrPut(planId) { AdoptionViewModel(session, planId) }

    @Synchronized
    override fun close() {
        (plans.values + notes.values + conflicts.values + adoptions.values + listOf(device, planList, agenda)).forEach { it.close() }
        session.close()
    }

    companion object {
        fun open(name: String, dataDir: String): PhoneApp = PhoneApp(PhoneSession.open(name, dataDir))
    }
}
