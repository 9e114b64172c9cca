package nl.eenplan.demo.viewmodel

import kotlinx.coroutines.Deferred
import kotlinx.coroutines.Job
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import nl.eenplan.Adoption
import nl.eenplan.AdoptionCheck
import nl.eenplan.ApiException
import nl.eenplan.dutchDate

/** An adoption (vaststelling) as this phone judged it. */
data class AdoptionRow(
    val version: Int,
    /** "3 december 2026". */
    val date: String,
    val withFamily: String,
    val signedBy: String?,
    val present: List<String>,
    val verified: Boolean,
    /** "vastgesteld", or why it does not (yet) count, in the core's words. */
    val checkText: String,
)

data class AdoptionUiState(
    val planId: String,
    val family: String = "",
    /** Oldest first; only verified ones count. */
    val adoptions: List<AdoptionRow> = emptyList(),
    /** What changed since the newest verified version ("nog niet vastgesteld"), in the core's words. */
    val notAdopted: List<String> = emptyList(),
    /** Participants by name, for "aanwezig". */
    val participants: List<String> = emptyList(),
    val me: String? = null,
    val regisseur: String? = null,
    val busy: Boolean = false,
    val loaded: Boolean = false,
    val message: String? = null,
    /** What happened ("Vastgesteld als versie 2"). */
    val notice: String? = null,
    /** The family's copy as last made: the HTML, and the file it was written to (to share or print). */
    val familyCopyHtml: String? = null,
    val familyCopyFile: String? = null,
    /** What others changed since this phone last marked the plan reviewed: "Wim (Wijkteam Noord): zette …". */
    val reviewLines: List<String> = emptyList(),
    /** What the shown review covers, to mark exactly that as seen. */
    val reviewThrough: List<String> = emptyList(),
) {
    val isRegisseur: Boolean get() = me != null && regisseur == me
    val latest: AdoptionRow? get() = adoptions.lastOrNull { it.verified }
}

/**
 * "Beoordelen en vaststellen": the regisseur and the family agree on the plan as it stands and
 * the regisseur's phone signs it as the next version (`Device.adopt`); every participant's
 * phone checks the signature (`Device.adoptions`). Shows what is not adopted yet
 * (`Device.adoptedPlan`). All local: adopting is signed here and travels with the next sync.
 */
class AdoptionViewModel(session: PhoneSession, val planId: String) : ViewModel(session) {
    private val _state = MutableStateFlow(AdoptionUiState(planId))
    val state: StateFlow<AdoptionUiState> = _state.asStateFlow()

    init {
        viewModelScope.launch { session.plansChanged.collect { ids -> if (planId in ids) load() } }
    }

    fun load(): Job = viewModelScope.launch {
        session.call { device ->
            val view = device.readPlan(planId)
            val adoptions = device.adoptions(planId)
            val since = if (adoptions.any { it.check == AdoptionCheck.Verified }) {
                device.adoptedPlan(planId, null).notAdopted.map { changeMark(it.change) + " " + it.label }
            } else {
                emptyList()
            }
            Triple(view, adoptions, since) to (device.status().user to device.review(planId))
        }.onSuccess { (loaded, meAndReview) ->
            val (view, adoptions, since) = loaded
            val (me, review) = meAndReview
            _state.update {
                it.copy(
                    reviewLines = review.lines.map { l -> "${l.whoLabel}: ${l.text}" } +
                        listOfNotNull(if (review.leftOut > 0uL) "(en ${review.leftOut} eerdere)" else null),
                    reviewThrough = review.through,
                    family = view.family,
                    adoptions = adoptions.map { a -> a.row() },
                    notAdopted = since,
                    participants = view.membership?.participants.orEmpty().map { p -> p.name },
                    regisseur = view.membership?.regisseur?.name,
                    me = me,
                    loaded = true,
                )
            }
        }.onFailure { e -> if (e !is ApiException.LeaseExpired) _state.update { it.copy(message = e.forPeople()) } }
    }

    /**
     * Adopts the plan as it stands: [withFamily] is the family's agreement in the regisseur's
     * words, [present] the participants present. The new version, or null (the core's reason
     * is the message).
     */
    fun adopt(withFamily: String, present: List<String>): Deferred<Int?> = viewModelScope.async {
        _state.update { it.copy(busy = true, message = null, notice = null) }
        val result = session.call { it.adopt(planId, withFamily, present) }
        result.onSuccess { v -> _state.update { it.copy(notice = "Vastgesteld als versie $v; de andere deelnemers zien het na hun volgende sync.") } }
        result.onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
        _state.update { it.copy(busy = false) }
        load().join()
        result.getOrNull()?.toInt()
    }

    /** "Gezien": marks what the shown review covered as reviewed (`Device.markReviewedThrough`). */
    fun markReviewed(): Job = viewModelScope.launch {
        val through = _state.value.reviewThrough
        session.call { it.markReviewedThrough(planId, through) }
            .onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
        load().join()
    }

    /**
     * "Kopie voor het gezin": the core makes the family's copy as one HTML page
     * (`Device.familyCopyHtml`); the phone writes it to a file to share or print. (On Android
     * it goes to the print service: a `WebView` with this HTML and `PrintManager.print`.)
     */
    fun familyCopy(): Deferred<java.io.File?> = viewModelScope.async {
        val made = session.call { it.familyCopyHtml(planId) }.mapCatching { html ->
            val family = _state.value.family.ifEmpty { "plan" }.replace(Regex("[^A-Za-z0-9]+"), "-")
            val file = session.exportDir.resolve("kopie-voor-het-gezin-$family-${planId.take(8)}.html")
            file.parentFile.mkdirs()
            file.writeText(html)
            html to file
        }
        made.onSuccess { (html, file) ->
            _state.update { it.copy(familyCopyHtml = html, familyCopyFile = file.path, notice = "Kopie voor het gezin opgeslagen in ${file.path}", message = null) }
        }
        made.onFailure { e -> _state.update { it.copy(message = e.forPeople()) } }
        made.getOrNull()?.second
    }

    /** A mark, not a word: the core's label says what it is, the mark how it differs. */
    private fun changeMark(change: String) = when (change) {
        "added" -> "+"
        "changed" -> "~"
        "removed" -> "−"
        else -> "·"
    }

    private fun Adoption.row() = AdoptionRow(
        version = version.toInt(),
        date = dutchDate(date),
        withFamily = withFamily,
        signedBy = signedBy?.name,
        present = present.map { it.name },
        verified = check == AdoptionCheck.Verified,
        checkText = when (val c = check) {
            AdoptionCheck.Verified -> "vastgesteld"
            is AdoptionCheck.Pending -> "nog niet te controleren: ${c.reason}"
            is AdoptionCheck.Refused -> "geweigerd: ${c.reason}"
        },
    )
}
