package nl.eenplan.demo.ui

import java.awt.BorderLayout
import javax.swing.BorderFactory
import javax.swing.JCheckBox
import javax.swing.JComponent
import javax.swing.JPanel
import nl.eenplan.demo.viewmodel.PlanUiState
import nl.eenplan.demo.viewmodel.PlanViewModel

/**
 * The family behind a plan: its members (gezinsleden) with their ZRM scores, today's score per
 * member and life domain with one tap (1–5), and the safety plan (veiligheidsplan): each danger
 * with the safety goal that answers it.
 */
class FamilyScreen(private val vm: PlanViewModel) : Screen<PlanUiState>(vm.state) {
    override val title = "Gezin en veiligheid"
    private val content = Column().apply { border = BorderFactory.createEmptyBorder(10, 12, 12, 12) }
    override val component: JComponent = JPanel(BorderLayout()).apply {
        background = Theme.background
        add(scroll(content), BorderLayout.CENTER)
    }

    private val memberName = field()
    private val relation = field()
    private val birthDate = field()
    private val gezag = JCheckBox("Heeft gezag").apply { font = Theme.font(12.5f); isOpaque = false }
    /** (member id, name): the rows change with every score, the choice must not. */
    private val scoreMember = picker(emptyList<Pair<String, String>>()) { it.second }
    private val scoreDomain = picker(emptyList<String>()) { it }
    private val danger = field()
    private val safetyGoal = field()

    override fun render(state: PlanUiState) {
        content.clear()
        content.add(sectionTitle("Gezinsleden"))
        for (m in state.members) {
            val about = listOfNotNull(m.relation, m.birthDate?.let { "geboren $it" }, if (m.parentalAuthority) "gezag" else null).joinToString(" · ")
            val rows = mutableListOf<JComponent>(text(m.name, 14f, bold = true), text(about, 11.5f, color = Theme.muted))
            if (m.scores.isNotEmpty()) {
                rows += text("ZRM-scores", 11.5f, bold = true, color = Theme.primary)
                m.scores.groupBy { it.date }.forEach { (date, scores) ->
                    rows += text("$date: " + scores.joinToString(", ") { "${it.domain} ${it.score}" }, 12f)
                }
            }
            content.add(card(*rows.toTypedArray()))
        }
        if (state.loaded && state.members.isEmpty()) content.add(card(text("Nog geen gezinsleden.", color = Theme.muted)))
        content.add(card(
            text("Gezinslid toevoegen", 13.5f, bold = true),
            labelled("Naam", memberName),
            labelled("Relatie (moeder, zoon, …)", relation),
            labelled("Geboortedatum (JJJJ-MM-DD, mag leeg)", birthDate),
            gezag,
            row(button("Toevoegen", primary = true) {
                val name = memberName.text.trim()
                val rel = relation.text.trim()
                if (name.isNotEmpty() && rel.isNotEmpty()) {
                    vm.addMember(name, rel, birthDate.text.trim(), gezag.isSelected)
                    memberName.text = ""; relation.text = ""; birthDate.text = ""; gezag.isSelected = false
                }
            }),
        ))

        scoreMember.setChoices(state.members.map { it.id to it.name })
        scoreDomain.setChoices(state.allDomains)
        if (state.members.isNotEmpty()) {
            content.add(sectionTitle("ZRM-score van vandaag"))
            content.add(card(
                labelled("Gezinslid", scoreMember),
                labelled("Leefgebied", scoreDomain),
                text("1 acute problematiek · 2 niet zelfredzaam · 3 beperkt · 4 voldoende · 5 volledig zelfredzaam", 11f, color = Theme.muted),
                row(*(1..5).map { n ->
                    button("$n") {
                        @Suppress("UNCHECKED_CAST")
                        val member = scoreMember.selectedItem as Pair<String, String>?
                        val domain = scoreDomain.selectedItem as String?
                        if (member != null && domain != null) vm.setScore(member.first, domain, n)
                    }
                }.toTypedArray(), gap = 4),
            ))
        }

        content.add(sectionTitle("Veiligheidsplan"))
        for (item in state.safetyItems) {
            content.add(card(
                text("Gevaar", 11f, bold = true, color = Theme.error),
                text(item.danger, 13f),
                text("Veiligheidsdoel", 11f, bold = true, color = Theme.ok),
                text(item.goal, 13f),
            ))
        }
        if (state.loaded && state.safetyItems.isEmpty()) content.add(card(text("Nog geen veiligheidsplan.", color = Theme.muted)))
        content.add(card(
            labelled("Gevaar (wat kan er misgaan?)", danger),
            labelled("Veiligheidsdoel (wat maakt het veilig?)", safetyGoal),
            row(button("Toevoegen aan veiligheidsplan", primary = true) {
                val d = danger.text.trim()
                val g = safetyGoal.text.trim()
                if (d.isNotEmpty() && g.isNotEmpty()) { danger.text = ""; safetyGoal.text = ""; vm.addSafetyItem(d, g) }
            }),
        ))
        state.message?.let { content.add(text(it, 12f, color = Theme.error)) }
        content.revalidate()
        content.repaint()
    }
}
