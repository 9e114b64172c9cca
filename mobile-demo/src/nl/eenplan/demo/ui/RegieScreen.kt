package nl.eenplan.demo.ui

import java.awt.BorderLayout
import javax.swing.BorderFactory
import javax.swing.JComponent
import javax.swing.JPanel
import nl.eenplan.EscalationLevel
import nl.eenplan.Grondslag
import nl.eenplan.Role
import nl.eenplan.demo.viewmodel.PlanUiState
import nl.eenplan.demo.viewmodel.PlanViewModel
import nl.eenplan.demo.viewmodel.label
import nl.eenplan.demo.viewmodel.levelLabel

/**
 * The plan's participants as its signed membership names them, with the regisseur marked and a
 * warm handover shown as such. [manage] adds the regisseur's buttons per participant
 * ("Regie overdragen", "Verwijderen"); the one offered regie gets "Regie aanvaarden" either way.
 */
fun participantsCard(state: PlanUiState, vm: PlanViewModel, manage: Boolean): JComponent {
    val membership = state.membership
        ?: return card(
            text("Deelnemers", 14.5f, bold = true),
            text("De deelnemerslijst van dit plan is nog niet van de server ontvangen; synchroniseer eerst.", 12.5f, color = Theme.muted),
        )
    val rows = mutableListOf<JComponent>(
        text("Deelnemers", 14.5f, bold = true),
        row(chip("niveau: ${levelLabel(membership.level)}", Theme.primary, Theme.background)),
    )
    for (p in membership.participants) {
        val isRegisseur = p.userId == membership.regisseur.userId
        val offered = p.userId == membership.offeredTo?.userId
        val you = if (p.name == state.me) " (u)" else ""
        val width = if (isRegisseur || offered) 125 else 230
        rows += JPanel(BorderLayout(6, 0)).apply {
            isOpaque = false
            border = BorderFactory.createEmptyBorder(4, 0, 0, 0)
            add(column(
                text("${p.name}$you", 13.5f, bold = true, width = width),
                text("${p.organisation} · ${p.roleLabel}", 11.5f, color = Theme.muted, width = width),
                gap = 0,
            ), BorderLayout.CENTER)
            when {
                isRegisseur -> add(row(chip("regisseur", Theme.onPrimary, Theme.primary)), BorderLayout.EAST)
                offered -> add(row(chip("regie aangeboden", Theme.warn, Theme.warnBg)), BorderLayout.EAST)
            }
        }
        if (manage && state.isRegisseur && !isRegisseur) {
            rows += row(
                smallButton("Regie overdragen", enabled = !state.busy && !offered) { vm.handOverRegie(p.name) },
                smallButton("Verwijderen", enabled = !state.busy) { vm.removeParticipant(p.name) },
            )
        }
    }
    membership.offeredTo?.let { offered ->
        rows += text(
            "Regie aangeboden aan ${offered.name} (nog niet aanvaard); tot dan blijft ${membership.regisseur.name} regisseur.",
            12f, color = Theme.warn,
        )
    }
    if (state.offeredToMe) {
        rows += row(button("Regie aanvaarden", primary = true) { vm.acceptRegie() }.apply { isEnabled = !state.busy })
    }
    return card(*rows.toTypedArray())
}

/** What the last act did or why it was refused, and a "bezig" while one is on its way. */
fun outcomeLines(state: PlanUiState): List<JComponent> = listOfNotNull(
    if (state.busy) text("Bezig: wordt ondertekend en naar de server gestuurd…", 12f, color = Theme.muted) else null,
    state.notice?.let { text(it, 12f, color = Theme.ok) },
    state.message?.let { text(it, 12f, color = Theme.error) },
)

private fun smallButton(label: String, enabled: Boolean = true, onClick: () -> Unit) = button(label) { onClick() }.apply {
    font = Theme.font(11.5f, bold = true)
    isEnabled = enabled
}

/**
 * Participants and regie of one plan: the participants (the regisseur's buttons on each),
 * "Deelnemer toevoegen", opschalen and afschalen, and the history of the signed membership.
 * Everything a regisseur does here is one call of [PlanViewModel]; what the core refuses
 * ("alleen de regisseur van dit plan kan dit doen") is shown as it says it.
 */
class RegieScreen(private val vm: PlanViewModel) : Screen<PlanUiState>(vm.state) {
    override val title = "Deelnemers en regie"
    private val content = Column().apply { border = BorderFactory.createEmptyBorder(10, 12, 12, 12) }
    override val component: JComponent = JPanel(BorderLayout()).apply {
        background = Theme.background
        add(scroll(content), BorderLayout.CENTER)
    }

    private val newName = field()
    private val newRole = picker(Role.entries) { it.label() }
    private val upLevel = picker(emptyList<EscalationLevel>()) { it.label() }
    private val grondslag = picker(Grondslag.entries) { it.label() }
    private val upReason = field()
    private val upAdd = field()
    private val upRegie = field()
    private val downLevel = picker(emptyList<EscalationLevel>()) { it.label() }
    private val downRegie = picker(emptyList<String>()) { it }
    private val downReason = field()

    override fun render(state: PlanUiState) {
        content.clear()
        content.add(participantsCard(state, vm, manage = true))
        outcomeLines(state).forEach { content.add(it) }
        val membership = state.membership
        if (membership != null) {
            content.add(sectionTitle("Verloop"))
            val steps = membership.steps.asReversed()
            content.add(card(*steps.flatMap { step ->
                listOf(
                    text(step.text, 13f),
                    text("${step.by} · ${formatTime(step.atMs)}", 11f, color = Theme.muted),
                )
            }.ifEmpty { listOf(text("Nog geen stappen.", color = Theme.muted)) }.toTypedArray()))
        }
        if (membership != null && state.isRegisseur) {
            content.add(sectionTitle("Deelnemer toevoegen"))
            content.add(card(
                labelled("Naam (zoals de beheerder hem of haar aanmaakte)", newName),
                labelled("Rol in dit plan", newRole),
                row(button("Deelnemer toevoegen", primary = true) {
                    val name = newName.text.trim()
                    val role = newRole.selectedItem as Role?
                    if (name.isNotEmpty() && role != null) { newName.text = ""; vm.share(name, role) }
                }.apply { isEnabled = !state.busy }),
            ))

            val current = levelIndex(membership.level)
            upLevel.setChoices(EscalationLevel.entries.filter { it.ordinal > current })
            downLevel.setChoices(EscalationLevel.entries.filter { it.ordinal < current })
            downRegie.setChoices(membership.participants.map { it.name })
            if (upLevel.itemCount > 0) {
                content.add(sectionTitle("Opschalen"))
                content.add(card(
                    labelled("Naar niveau", upLevel),
                    labelled("Grondslag", grondslag),
                    labelled("Reden (komt in het plan)", upReason),
                    labelled("Toevoegen: Naam:rol, gescheiden door komma's", upAdd),
                    labelled("Regie aanbieden aan (leeg: u houdt de regie)", upRegie),
                    row(button("Opschalen", primary = true) {
                        val level = upLevel.selectedItem as EscalationLevel?
                        val ground = grondslag.selectedItem as Grondslag?
                        val reason = upReason.text.trim()
                        if (level != null && ground != null && reason.isNotEmpty()) {
                            vm.escalate(level, ground, reason, upAdd.text.split(','), upRegie.text.trim().ifEmpty { null })
                        }
                    }.apply { isEnabled = !state.busy }),
                ))
            }
            if (downLevel.itemCount > 0) {
                content.add(sectionTitle("Afschalen"))
                content.add(card(
                    labelled("Naar niveau", downLevel),
                    labelled("Regie terug naar", downRegie),
                    labelled("Reden (mag leeg)", downReason),
                    text("Wie bij het opschalen is toegevoegd, verlaat het plan; wat zij konden lezen gaat onder een nieuwe sleutel.", 11.5f, color = Theme.muted),
                    row(button("Afschalen", primary = true) {
                        val level = downLevel.selectedItem as EscalationLevel?
                        val regie = downRegie.selectedItem as String?
                        if (level != null && regie != null) vm.deescalate(level, regie, downReason.text.trim())
                    }.apply { isEnabled = !state.busy }),
                ))
            }
        } else if (membership != null) {
            content.add(text(
                "Alleen de regisseur (${membership.regisseur.name}) voegt deelnemers toe of verwijdert ze, schaalt op of af en draagt de regie over.",
                12f, color = Theme.muted,
            ))
        }
        content.revalidate()
        content.repaint()
    }

    private fun levelIndex(level: String): Int =
        EscalationLevel.entries.firstOrNull { it.name.lowercase() == level }?.ordinal ?: 0
}

