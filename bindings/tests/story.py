"""A home visit told through the Python bindings, against a real eenplan-server.

Two phones are enrolled, the regisseur's phone creates a plan and shares it, both phones
edit offline (one field on both), they sync and merge, and the regisseur settles the
conflict. Then what an app developer meets in the first week: who takes part and the safety
plan, a listener that throws, error fields, a phone on a poor link (a sync that waits never
holds up reads and edits; shares and edits made offline go at the next sync), closing and
reopening, a stolen phone revoked and
the same phone set up again. Every step is a function of its own, so later steps append easily.

Run by `cargo test --workspace` (bindings/tests/stories.rs), which generates the bindings
and passes, in the environment:
  EENPLAN_FFI_PYTHON  directory with the generated eenplan_ffi.py and libeenplan_ffi.so
  EENPLAN_SERVER      the eenplan-server binary
  EENPLAN_ADMIN       the eenplan-admin binary
  EENPLAN_LINK        the link_proxy binary: a phone's network the story controls
  EENPLAN_WORK        an empty directory for the server, the admin keyring and the phones
"""

import asyncio
import datetime
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.environ["EENPLAN_FFI_PYTHON"])

import eenplan_ffi as eenplan  # noqa: E402  (the path above must come first)

WORK = os.environ["EENPLAN_WORK"]
ORG = "Wijkteam Noord"


class Server:
    """`eenplan-server serve` on a free loopback port; its `listening on` line gives the URL."""

    def __init__(self):
        self.process = subprocess.Popen(
            [os.environ["EENPLAN_SERVER"], "serve", "--data", os.path.join(WORK, "server"),
             "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "RUST_LOG": "warn"})
        for line in self.process.stdout:
            if line.startswith("listening on "):
                self.url = "http://" + line[len("listening on "):].strip()
                break
        else:
            raise RuntimeError("the server stopped before listening")
        # Keep reading its output so the server never blocks on a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def stop(self):
        self.process.kill()
        self.process.wait()


class LinkProxy:
    """The shaping proxy in front of the server (link_proxy): the phone's network, which the
    story cuts, resets and makes silent. Each command is in effect when it answers `ok`."""

    def __init__(self, server_url):
        self.process = subprocess.Popen(
            [os.environ["EENPLAN_LINK"], "--upstream", server_url[len("http://"):]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        check(line.startswith("listening on "), f"the link started: {line!r}")
        self.url = "http://" + line[len("listening on "):].strip()

    def command(self, text):
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        check(answer.startswith("ok"), f"link {text}: {answer}")
        return answer

    def stats(self):
        return {k: int(v) for k, v in (field.split("=") for field in self.command("stats").split()[1:])}

    def wait_until(self, what, condition, timeout=30.0):
        """Polls the link's counters until `condition` holds (not a sleep standing in for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self.stats()):
                return
            time.sleep(0.01)
        raise AssertionError(f"the link never showed {what}")

    def stop(self):
        self.process.stdin.close()
        self.process.wait()


class Admin:
    """The administrator, through the real eenplan-admin binary."""

    def __init__(self, server_url):
        self.server_url = server_url
        # A fresh server is claimed with the one-time secret it wrote to its data directory.
        with open(os.path.join(WORK, "server", "init-secret")) as secret:
            self.run("init", "--server", server_url, "--name", "Beheer", "--init-secret", secret.read().strip())

    def run(self, *args):
        done = subprocess.run(
            [os.environ["EENPLAN_ADMIN"], "--data", os.path.join(WORK, "admin"), *args],
            capture_output=True, text=True,
            env={**os.environ, "EENPLAN_ADMIN_PASSPHRASE": "admin-test keyring 2026",
                 "EENPLAN_INSECURE_FAST_KDF": "1", "EENPLAN_SERVER": self.server_url})
        if done.returncode != 0:
            raise RuntimeError(f"eenplan-admin {args} failed: {done.stderr}")
        return done.stdout.strip()


class Listener(eenplan.DeviceListener):
    """Records what the device announces. Called on the sync's thread, before the sync's
    result reaches the awaiting coroutine, so the test reads it without waiting."""

    def __init__(self):
        self.changed = []
        self.revoked = []

    def plans_changed(self, plan_ids):
        self.changed.append(list(plan_ids))

    def device_revoked(self, wiped):
        self.revoked.append(wiped)


class ThrowingListener(eenplan.DeviceListener):
    """An app's listener with a bug in it."""

    def __init__(self):
        self.calls = 0

    def plans_changed(self, plan_ids):
        self.calls += 1
        raise RuntimeError("a bug in the app's listener")

    def device_revoked(self, wiped):
        self.calls += 1
        raise RuntimeError("a bug in the app's listener")


class Warnings(eenplan.LogSink):
    """What eenplan logs, where the app would send it to its own log."""

    def __init__(self):
        self.lines = []

    def warning(self, message):
        self.lines.append(message)


WARNINGS = Warnings()


class Phone:
    def __init__(self, name, user):
        self.name = name
        self.user = user
        self.dir = os.path.join(WORK, name)
        self.passphrase = f"{name}-passphrase"
        self.listener = Listener()
        self.device = eenplan.Device.open_or_init(self.dir, self.keystore())
        self.device.set_listener(self.listener)

    def keystore(self, passphrase=None):
        return eenplan.passphrase_keystore(passphrase or self.passphrase)


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def fails(error_type, call):
    """Runs `call`, which must raise `error_type`; returns the error."""
    try:
        call()
    except error_type as error:
        check(error.reason, f"{error_type.__name__} says what happened: {error!r}")
        return error
    raise AssertionError(f"expected {error_type.__name__}")


async def fails_async(error_type, call):
    try:
        await call()
    except error_type as error:
        check(error.reason, f"{error_type.__name__} says what happened: {error!r}")
        return error
    raise AssertionError(f"expected {error_type.__name__}")


# --- the story, one step per function -------------------------------------------------------

async def enrol_two_phones(server, admin):
    admin.run("org", "add", ORG)
    admin.run("user", "add", "--org", ORG, "--name", "Rita", "--role", "wijkteam")
    admin.run("user", "add", "--org", ORG, "--name", "Wim", "--role", "wijkteam")
    rita, wim = Phone("rita-phone", "Rita"), Phone("wim-phone", "Wim")
    for phone in (rita, wim):
        code = admin.run("device", "enrol", "--user", phone.user)
        if phone is rita:
            await a_mistyped_server_address_is_invalid_not_offline(rita, code)
            await a_device_name_that_does_not_show_is_invalid(rita, server, code)
        if phone is wim:
            # Wim scans the QR code the console shows: the link holds the server and the code.
            enrolled = await wim_scans_the_enrolment_link(wim, server, code)
        else:
            enrolled = await phone.device.enrol(server.url, code, f"{phone.user}'s Android", eenplan.Platform.ANDROID)
        check(enrolled == eenplan.Enrolment.PENDING_APPROVAL, "an enrolled phone waits for approval")
        try:
            await phone.device.sync()
            raise AssertionError("a phone that is not approved yet must not sync")
        except eenplan.ApiError.NotApproved:
            pass
        admin.run("device", "approve", "--code", code)
        await phone.device.sync()
        status = phone.device.status()
        check(status.enrolment == eenplan.Enrolment.ACTIVE, f"{phone.name} is active: {status}")
        check(status.user == phone.user and status.organisation == ORG, f"{phone.name}: {status}")
    await the_administrator_sees_a_phone_by_its_name(rita, admin)
    return rita, wim


async def wim_scans_the_enrolment_link(wim, server, code):
    link = f"eenplan:enrol?server={urllib.parse.quote(server.url, safe='')}&code={code}"
    for scanned in ("https://example.org/", link.replace("code=", "kode="), link + "&code=" + code):
        await fails_async(eenplan.ApiError.Invalid,
                          lambda: wim.device.enrol_scanned(scanned, "Wim's Android", eenplan.Platform.ANDROID))
    return await wim.device.enrol_scanned(link, "Wim's Android", eenplan.Platform.ANDROID)


async def a_device_name_that_does_not_show_is_invalid(phone, server, code):
    for name in ("", "x" * 65, "Rita\n"):
        await fails_async(eenplan.ApiError.Invalid,
                          lambda: phone.device.enrol(server.url, code, name, eenplan.Platform.ANDROID))
    check(phone.device.device_name() is None, "a refused name is not kept")


async def the_administrator_sees_a_phone_by_its_name(phone, admin):
    def listed():
        devices = json.loads(admin.run("--json", "device", "list"))
        return [(d["label"], d["platform"]) for d in devices if d["user_name"] == phone.user]
    check(listed() == [("Rita's Android", "android")], f"the listing names the phone: {listed()}")
    phone.device.rename("Werktelefoon Rita")
    await phone.device.sync()
    check(listed() == [("Werktelefoon Rita", "android")], f"a new name reaches the listing: {listed()}")


async def a_mistyped_server_address_is_invalid_not_offline(phone, code):
    for address, says in (("127.0.0.1:8443", "https://"), ("not a url", "https://"),
                           ("ftp://eenplan.example.nl", "ftp"), ("https://", "names no server")):
        error = await fails_async(eenplan.ApiError.Invalid, lambda: phone.device.enrol(address, code, "Rita's Android", eenplan.Platform.ANDROID))
        check(says in error.reason, f"{address!r}: {error.reason}")


async def create_and_share_plan(rita, wim):
    device = rita.device
    plan = device.create_plan("Jansen")
    goal = device.add_goal(plan, "financiën", "Schulden in beeld")
    action = device.add_action(plan, eenplan.NewAction(
        goal=goal, title="Budgetcoach aanvragen", owner_org=ORG, owner_user=None,
        due="2026-12-15"))
    device.add_agreement(plan, "Sanne belt de budgetcoach voor vrijdag.")
    # The first sync registers the plan with the server; then it can be shared.
    await device.sync()
    error = await fails_async(eenplan.ApiError.NotFound,
                              lambda: device.share_plan(plan, "Niemand", eenplan.Role.WIJKTEAM))
    check("Niemand" in error.reason, f"the error names the user: {error.reason}")
    await device.share_plan(plan, "Wim", eenplan.Role.WIJKTEAM)
    await device.sync()
    summary = await wim.device.sync()
    check(plan in summary.new_plans, f"Wim's phone received the plan: {summary}")
    check([plan] in wim.listener.changed, f"Wim's listener heard of the plan: {wim.listener.changed}")
    entries = wim.device.list_plans()
    check(entries == [eenplan.PlanListEntry.PLAN(id=plan, family="Jansen")], f"Wim's plans: {entries}")
    return plan, goal, action


async def both_phones_edit_offline(rita, wim, plan, goal, action):
    # No sync in this step: the server hears of none of it until the next one.
    note = rita.device.add_note(plan, eenplan.Compartment.BASIS, eenplan.NoteKind.HOME_VISIT,
                                "Huisbezoek 😀 gezin thuis.")
    # A Kotlin or Swift cursor after the emoji is UTF-16 offset 13; insert there.
    rita.device.edit_note(plan, eenplan.Compartment.BASIS, note, 13, 0, " Sanne lacht.")
    rita.device.set_action_due(plan, action, "2026-12-22")
    wim.device.set_action_due(plan, action, "2027-01-05")
    wim.device.set_goal_status(plan, goal, eenplan.GoalStatus.IN_PROGRESS)
    wim.device.add_agreement(plan, "Wim komt dinsdag terug.")
    for phone in (rita, wim):
        check(phone.device.pending_changes() > 0, f"{phone.name} has changes to push")
    return note


async def sync_and_merge(rita, wim, plan):
    await rita.device.sync()
    await wim.device.sync()
    await rita.device.sync()
    views = [phone.device.read_plan(plan) for phone in (rita, wim)]
    check(views[0] == views[1], "both phones show the same plan")
    view = views[0]
    check(view.notes[0].text == "Huisbezoek 😀 Sanne lacht. gezin thuis.", f"note: {view.notes}")
    check({a.text for a in view.agreements} ==
          {"Sanne belt de budgetcoach voor vrijdag.", "Wim komt dinsdag terug."}, "both agreements")
    check(view.goals[0].status == "in_progress", "Wim's goal status arrived")
    for phone in (rita, wim):
        check(phone.device.pending_changes() == 0, f"{phone.name} pushed everything")
    return view


async def settle_the_conflict(rita, wim, plan, action):
    conflicts = rita.device.conflicts(plan)
    check(len(conflicts) == 1, f"one conflict: {conflicts}")
    conflict = conflicts[0]
    check(conflict.id == f"basis/actions/{action}/due", f"the due date conflicts: {conflict.id}")
    values = [v.value for v in conflict.values]
    check(len(values) == 2 and eenplan.FieldValue.TEXT("2026-12-22") in values
          and eenplan.FieldValue.TEXT("2027-01-05") in values, f"both dates are offered: {values}")
    rita.device.settle_conflict(plan, conflict.id, eenplan.Resolution.VALUE(value="2026-12-29"))
    await rita.device.sync()
    await wim.device.sync()
    for phone in (rita, wim):
        check(phone.device.conflicts(plan) == [], f"{phone.name} has no conflict left")
        due = phone.device.read_plan(plan).actions[0].due
        check(due == "2026-12-29", f"{phone.name} shows the settled date: {due}")


def bad_input_is_a_typed_error(rita, plan):
    note = rita.device.read_plan(plan).notes[0].id
    basis = eenplan.Compartment.BASIS
    for call in (lambda: rita.device.add_goal(plan, "geen domein", "x"),
                 lambda: rita.device.read_plan("not-a-plan-id"),
                 lambda: rita.device.edit_note(plan, basis, "00000000000000aa", 0, 0, "x"),
                 # A negative offset from an app is an ApiError like any other, not a ValueError.
                 lambda: rita.device.edit_note(plan, basis, note, -1, 0, "x"),
                 lambda: rita.device.edit_note(plan, basis, note, 0, -3, "x"),
                 lambda: rita.device.settle_conflict(plan, "basis/family",
                                                     eenplan.Resolution.PICK(index=-1)),
                 lambda: eenplan.Device.open("", rita.keystore())):
        fails(eenplan.ApiError.Invalid, call)


async def record_who_takes_part_and_the_safety_plan(rita, wim, plan, action):
    """Everything the plan view shows can be written through the API; the other phone sees it."""
    device = rita.device
    device.add_participant(plan, eenplan.NewParticipant(
        name="Rita", organisation=ORG, role=eenplan.Role.WIJKTEAM))
    device.add_participant(plan, eenplan.NewParticipant(
        name="Wim", organisation=ORG, role=eenplan.Role.WIJKTEAM))
    # Regie by the plan's signed membership: Rita escalates to lokaal and hands regie to Wim,
    # who accepts on his phone.
    done = eenplan.ShareOutcome.DONE
    check(await device.escalate(plan, eenplan.EscalationLevel.LOKAAL, "Zorgen over veiligheid thuis.",
                                eenplan.Grondslag.CONVENANT, None, []) == done, "escalated")
    check(await device.hand_over_regie(plan, "Wim") == done, "offered")
    try:
        await device.hand_over_regie(plan, "Niemand")
        check(False, "regie offered to someone who does not take part")
    except eenplan.ApiError.Invalid:
        pass
    await wim.device.sync()
    check(wim.device.read_plan(plan).membership.offered_to.name == "Wim", "both shown until Wim accepts")
    check(await wim.device.accept_regie(plan) == done, "accepted")
    mother = device.add_member(plan, eenplan.NewMember(
        name="Sanne", relation="moeder", birth_date=None, parental_authority=True))
    device.update_member(plan, mother, eenplan.MemberUpdate(
        relation="moeder (gezag)", birth_date=eenplan.FieldChange.SET(value="1990-04-01")))
    # An action's owner is a participant: the app takes the user id from the signed membership.
    wim_user = next(p.user_id for p in device.read_plan(plan).membership.participants if p.name == "Wim")
    device.update_action(plan, action, eenplan.ActionUpdate(owner_org="Schuldhulp", owner_user=wim_user))
    item = device.add_safety_item(plan, "Ruzie escaleert als vader drinkt.",
                                  "Sanne belt bij ruzie haar zus en gaat daarheen.")
    await device.sync()
    await wim.device.sync()
    view = wim.device.read_plan(plan)
    check({(p.name, p.role) for p in view.participants} == {("Rita", "wijkteam"), ("Wim", "wijkteam")},
          f"participants: {view.participants}")
    check(view.membership.regisseur.name == "Wim" and view.membership.offered_to is None,
          f"regisseur: {view.membership}")
    check(view.escalation_level == "lokaal" and view.escalations[0].reason == "Zorgen over veiligheid thuis.",
          f"escalation: {view.escalations}")
    check(any(s.act == "escalate" and s.grondslag == "convenant" for s in view.membership.steps),
          f"steps: {view.membership.steps}")
    member = next(m for m in view.members if m.id == mother)
    check(member.relation == "moeder (gezag)" and member.birth_date == "1990-04-01", f"member: {member}")
    moved = next(a for a in view.actions if a.id == action)
    check(moved.owner_org == "Schuldhulp" and moved.owner_user == wim_user, f"action: {moved}")
    check([s.id for s in view.safety_items] == [item], f"safety plan: {view.safety_items}")
    domains = device.create_plan_with_domains("Bakker", ["wonen", "school"])
    check(device.read_plan(domains).domains == ["wonen", "school"], "the region's own domains")


async def the_working_cycle(rita, wim, plan, goal, action):
    """Issue 11 on the phone: labels from the core, a case meeting whose decision becomes an
    action on its owner's agenda, an evaluation, the ZRM trend, and the regisseur (Wim, since
    the handover) adopting the plan, verified on Rita's phone; what changed since is shown; the
    family's copy as HTML."""
    label = eenplan.display_label
    vocab = eenplan.Vocabulary
    check(label(vocab.ACTION_STATUS, "done") == "Gedaan", "an action status in Dutch")
    check(label(vocab.ROLE, "zvh_procesregisseur") == "Procesregisseur Zorg- en Veiligheidshuis", "a role")
    check(label(vocab.LEVEL, "lokaal") == "Lokaal (wijkteam)", "a level")
    check(label(vocab.PHASE, "afschaling") == "Afschaling of overdracht", "a phase")
    check(label(vocab.COMPARTMENT, "veiligheid") == "Veiligheid", "a compartment")
    check(label(vocab.DOMAIN, "financiën") == "Financiën", "a life domain")
    check(label(vocab.GOAL_STATUS, "iets_nieuws") == "iets_nieuws", "a newer app's code shows as it is")
    check(eenplan.dutch_date("2026-12-03") == "3 december 2026", "a date as people say it")

    # The agenda's "today" is the Netherlands' date by the device's (server-anchored) clock.
    today = rita.device.agenda().today
    year, month, day = (int(x) for x in today.split("-"))
    in_three_days = (datetime.date(year, month, day) + datetime.timedelta(days=3)).isoformat()

    wim_view = wim.device.read_plan(plan)
    check(wim_view.membership.regisseur.name == "Wim", "Wim holds regie")
    meeting = wim.device.record_meeting(plan, today, ["Rita", "Wim"], [
        eenplan.DecisionInput(text="Rita vraagt de schuldhulp aan", action=eenplan.DecisionActionInput(
            owner="Rita", due=today, goal=goal)),
        eenplan.DecisionInput(text="Over een maand opnieuw bespreken", action=None),
    ])
    evaluation = wim.device.add_evaluation(plan, in_three_days)
    fails(eenplan.ApiError.Invalid, lambda: wim.device.record_meeting(plan, today, ["Niemand"], []))
    wim.device.set_score(plan, next(m.id for m in wim_view.members if m.name == "Sanne"), "financiën",
                         "2026-09-01", 2)
    wim.device.set_score(plan, next(m.id for m in wim_view.members if m.name == "Sanne"), "financiën", today, 4)
    await wim.device.sync()
    await rita.device.sync()

    view = rita.device.read_plan(plan)
    recorded = next(m for m in view.meetings if m.id == meeting)
    made = recorded.decisions[0].action
    check(made is not None and recorded.decisions[1].action is None, f"decisions: {recorded.decisions}")
    rita_user = next(p.user_id for p in view.membership.participants if p.name == "Rita")
    new_action = next(a for a in view.actions if a.id == made)
    check(new_action.owner_user == rita_user and new_action.due == today, f"the decision's action: {new_action}")
    check(sorted(recorded.attendees) == sorted(p.user_id for p in view.membership.participants
                                               if p.name in ("Rita", "Wim")), f"attendees: {recorded.attendees}")

    agenda = rita.device.agenda()
    mine = [i for i in agenda.items if i.entity == made]
    check(len(mine) == 1 and mine[0].kind == eenplan.AgendaKind.ACTION_DUE and mine[0].plan == plan,
          f"the action is on Rita's agenda: {agenda}")
    check("Rita vraagt de schuldhulp aan" in eenplan.agenda_line(mine[0]), eenplan.agenda_line(mine[0]))
    check(eenplan.agenda_kind_label(mine[0].kind) == "Actie deze week", "the kind in Dutch")
    check(any(i.entity == evaluation and i.kind == eenplan.AgendaKind.EVALUATION_DUE for i in agenda.items),
          f"the evaluation is due: {agenda.items}")
    check(not any(i.entity == made for i in wim.device.agenda().items), "not on Wim's agenda: not his action")
    rita.device.evaluation_held(plan, evaluation)
    check(not any(i.entity == evaluation for i in rita.device.agenda().items), "a held evaluation leaves")

    trend = next(t for t in rita.device.scores(plan, "Sanne") if t.domain == "financiën")
    check(trend.direction == eenplan.Direction.BETTER and [p.score for p in trend.points] == [2, 4], f"{trend}")
    check(eenplan.trend_label(trend.direction) == "beter" and trend.label == "Financiën", f"{trend}")

    # Owners are participants: by name, or an unknown name is refused.
    rita.device.set_action_owner(plan, action, "Rita")
    check(next(a for a in rita.device.read_plan(plan).actions if a.id == action).owner_user == rita_user, "owner")
    fails(eenplan.ApiError.Invalid, lambda: rita.device.set_action_owner(plan, action, "Niemand"))

    # Only the regisseur adopts; Rita is not (any more).
    fails(eenplan.ApiError.Invalid, lambda: rita.device.adopt(plan, "akkoord", []))
    await rita.device.sync()
    await wim.device.sync()
    version = wim.device.adopt(plan, "Besproken met Sanne; zij is akkoord.", ["Rita", "Wim"])
    check(version == 1, f"the first version: {version}")
    await wim.device.sync()
    await rita.device.sync()
    adoptions = rita.device.adoptions(plan)
    check(len(adoptions) == 1, f"one adoption at Rita: {adoptions}")
    adopted = adoptions[0]
    check(adopted.check == eenplan.AdoptionCheck.VERIFIED(), f"verified on Rita's phone: {adopted.check}")
    check(adopted.signed_by.name == "Wim" and {p.name for p in adopted.present} == {"Rita", "Wim"}, f"{adopted}")
    check(adopted.with_family == "Besproken met Sanne; zij is akkoord.", adopted.with_family)
    check(rita.device.latest_adoption(plan) == adopted, "the latest")
    as_adopted = rita.device.adopted_plan(plan, None)
    check(as_adopted.adoption.version == 1 and as_adopted.not_adopted == [], f"{as_adopted.not_adopted}")
    rita.device.add_agreement(plan, "Na de vaststelling afgesproken.")
    changed = rita.device.adopted_plan(plan, 1).not_adopted
    check([(c.kind, c.change) for c in changed] == [("agreement", "added")], f"not adopted yet: {changed}")
    fails(eenplan.ApiError.Invalid, lambda: rita.device.adopted_plan(plan, 7))
    await rita.device.sync()
    await wim.device.sync()

    # The family's copy: one HTML page to share or print, with the adopted version, the
    # agreements and no notes.
    html = wim.device.family_copy_html(plan)
    check(html.lstrip().lower().startswith("<!doctype html"), html[:80])
    for expected in ("Jansen", "Sanne belt de budgetcoach voor vrijdag.", "versie 1"):
        check(expected in html, f"the family's copy names {expected!r}")
    check("Huisbezoek" not in html and "Voor Wim." not in html, "no notes in the family's copy")

    # Review: what others changed since Wim last looked, in words; marking empties it.
    review = wim.device.review(plan)
    check(review.since_ms is None and review.lines, f"a first review shows others' work: {review}")
    check(any("Rita" in line.who_label for line in review.lines), [line.who_label for line in review.lines])
    wim_device = wim.device.device_id()
    check(all(line.device != wim_device for line in review.lines), "none of Wim's own changes")
    wim.device.mark_reviewed_through(plan, review.through)
    check(wim.device.review(plan).lines == [], "nothing new after marking")
    rita.device.add_agreement(plan, "Rita belt de school.")
    await rita.device.sync()
    await wim.device.sync()
    fresh = wim.device.review(plan)
    check(fresh.since_ms is not None and len(fresh.lines) >= 1 and "Rita" in fresh.lines[-1].who_label, f"{fresh}")
    wim.device.mark_reviewed(plan)
    check(wim.device.review(plan).lines == [], "marked")


async def a_listener_that_throws_does_not_undo_the_sync(rita, wim, plan):
    """The app's listener has a bug: eenplan logs it, and the sync's result stands."""
    eenplan.set_log_sink(WARNINGS)
    broken = ThrowingListener()
    wim.device.set_listener(broken)
    rita.device.add_note(plan, eenplan.Compartment.BASIS, eenplan.NoteKind.NOTE, "Voor Wim.")
    await rita.device.sync()
    summary = await wim.device.sync()
    check(plan in summary.plans_updated, f"the sync's result reached the app: {summary}")
    check(broken.calls == 1, "the listener was called")
    check(any("plans_changed" in line and "a bug in the app's listener" in line for line in WARNINGS.lines),
          f"the failure was logged: {WARNINGS.lines}")
    check("Voor Wim." in [n.text for n in wim.device.read_plan(plan).notes], "the note arrived")
    await wim.device.sync()
    wim.device.set_listener(wim.listener)


async def errors_carry_the_fields_an_app_acts_on(server, admin):
    """A code someone already used: the server's refusal, with its status and typed code."""
    stranger = Phone("stranger-phone", "Wim")
    code = admin.run("device", "enrol", "--user", "Wim")
    await stranger.device.enrol(server.url, code, "Onbekend toestel", eenplan.Platform.ANDROID)
    other = Phone("other-phone", "Wim")
    error = await fails_async(eenplan.ApiError.Server, lambda: other.device.enrol(server.url, code, "Ander toestel", eenplan.Platform.ANDROID))
    check(error.status == 404 and error.code == eenplan.ErrorCode.UNKNOWN_CODE(), f"{error!r}")
    for phone in (stranger, other):
        phone.device.close()


async def close_and_open_again(rita, plan):
    """close() frees the directory at once; a second open while open is Busy at once; a wrong
    passphrase says how many attempts are left."""
    device = rita.device
    started = time.monotonic()
    fails(eenplan.ApiError.Busy, lambda: eenplan.Device.open(rita.dir, rita.keystore()))
    check(time.monotonic() - started < 2, "Busy is answered at once")
    # A sync that races close(): it finishes first or finds the device closed; nothing else.
    racing = asyncio.ensure_future(device.sync())
    device.close()
    device.close()
    try:
        await racing
    except eenplan.ApiError.Closed:
        pass
    fails(eenplan.ApiError.Closed, lambda: device.read_plan(plan))
    fails(eenplan.ApiError.Closed, lambda: device.add_agreement(plan, "na het sluiten"))
    await fails_async(eenplan.ApiError.Closed, device.sync)
    wrong = fails(eenplan.ApiError.WrongKey, lambda: eenplan.Device.open(rita.dir, rita.keystore("fout")))
    check(wrong.attempts_left == 9, f"attempts left: {wrong!r}")
    started = time.monotonic()
    rita.device = eenplan.Device.open(rita.dir, rita.keystore())
    check(time.monotonic() - started < 2, "the directory was free at once")
    rita.device.set_listener(rita.listener)
    check(rita.device.read_plan(plan).family == "Jansen", "the plan is all there")


async def revoke_a_stolen_phone(admin, rita, wim, plan):
    """Wim's phone is stolen: the administrator revokes it; the phone wipes itself the moment
    it is online and says so through its listener; Rita goes on writing."""
    wim_id = wim.device.status().device_id
    admin.run("device", "revoke", wim_id, "--reason", "stolen")
    try:
        await wim.device.sync()
        raise AssertionError("a revoked phone must not sync")
    except eenplan.ApiError.Wiped:
        pass
    check(wim.listener.revoked == [True], f"Wim's listener heard of the wipe: {wim.listener.revoked}")
    try:
        wim.device.read_plan(plan)
        raise AssertionError("a wiped phone must not show the plan")
    except eenplan.ApiError.Wiped:
        pass
    rita.device.add_note(plan, eenplan.Compartment.BASIS, eenplan.NoteKind.NOTE, "Na de intrekking.")
    await rita.device.sync()
    check(rita.device.pending_changes() == 0, "Rita's note went out under the new key")
    line = next(l for l in admin.run("device", "list").splitlines() if wim_id[:8] in l)
    check("gewist" in line, f"the administrator sees the wipe: {line}")


async def the_wiped_phone_is_set_up_again(server, admin, wim):
    """The wiped screen says why; init makes a new device, enrolled with a new code."""
    state = eenplan.device_state(wim.dir)
    check(state == eenplan.DeviceState.WIPED(reason=eenplan.WipeReason.ORDERED, wiped_at_ms=state.wiped_at_ms),
          f"state: {state}")
    check(not eenplan.device_exists(wim.dir), "no device to open")
    fails(eenplan.ApiError.Wiped, lambda: eenplan.Device.open_or_init(wim.dir, wim.keystore()))
    wim.device.close()
    fresh = eenplan.Device.init(wim.dir, wim.keystore("a new passphrase"))
    check(eenplan.device_state(wim.dir) == eenplan.DeviceState.PRESENT(), "a device again")
    code = admin.run("device", "enrol", "--user", "Wim")
    await fresh.enrol(server.url, code, "Nieuwe telefoon", eenplan.Platform.ANDROID)
    admin.run("device", "approve", "--code", code)
    await fresh.sync()
    new_id = fresh.device_id()
    line = next(l for l in admin.run("device", "list").splitlines() if new_id[:8] in l)
    check("actief" in line, f"the new device is active: {line}")


async def on_a_poor_link(server, admin, rita):
    """A phone behind a link the story controls: a plan shared before its first sync, reads and
    edits while a sync waits for a server that does not answer, a link that drops, a share and
    edits made offline that the next sync carries."""
    admin.run("user", "add", "--org", ORG, "--name", "Lotte", "--role", "wijkteam")
    link = LinkProxy(server.url)
    try:
        lotte = Phone("lotte-phone", "Lotte")
        code = admin.run("device", "enrol", "--user", "Lotte")
        await lotte.device.enrol(link.url, code, "Lotte's iPhone", eenplan.Platform.IOS)
        admin.run("device", "approve", "--code", code)
        await lotte.device.sync()

        # Shared straight after it was made: the sharing sync registers the plan first.
        plan = rita.device.create_plan("Bakker")
        rita.device.add_note(plan, eenplan.Compartment.BASIS, eenplan.NoteKind.HOME_VISIT, "eerste huisbezoek")
        outcome = await rita.device.share_plan(plan, "Lotte", eenplan.Role.WIJKTEAM)
        check(outcome == eenplan.ShareOutcome.DONE, f"shared before its first sync: {outcome}")
        await lotte.device.sync()
        check(lotte.device.read_plan(plan).family == "Bakker", "the shared plan reached Lotte")

        # The server stops answering. A sync waits for it; reading and writing do not.
        link.command("unanswered")
        link.command("reset")
        syncing = asyncio.ensure_future(lotte.device.sync())
        await asyncio.sleep(0)
        link.wait_until("the sync's request", lambda s: s["unanswered"] > 0)
        check(lotte.device.read_plan(plan).family == "Bakker", "read while the sync waits")
        lotte.device.add_note(plan, eenplan.Compartment.BASIS, eenplan.NoteKind.NOTE, "tijdens de storing")
        check(not syncing.done(), "the sync still waits for its answer")
        # The link drops: the sync is offline, in plain words; the note waits.
        link.command("reset")
        error = await fails_async(eenplan.ApiError.Offline, lambda: syncing)
        check("os error" not in error.reason and "timeout: global" not in error.reason, error.reason)
        check(lotte.device.pending_changes() > 0, "the note written during the sync waits")

        # No connection at all: a share waits for the next sync, and says so.
        link.command("refuse")
        own = lotte.device.create_plan("De Vries")
        outcome = await lotte.device.share_plan(own, "Rita", eenplan.Role.WIJKTEAM)
        check(outcome == eenplan.ShareOutcome.QUEUED, f"offline, the share waits: {outcome}")
        check(lotte.device.status().queued_shares == 1, "one share waits")
        await fails_async(eenplan.ApiError.Offline, lambda: lotte.device.sync())

        link.command("accept")
        await lotte.device.sync()
        status = lotte.device.status()
        check(status.queued_shares == 0 and status.pending_changes == 0, f"all sent: {status}")
        await rita.device.sync()
        notes = [n.text for n in rita.device.read_plan(plan).notes]
        check("tijdens de storing" in notes, f"the note reached Rita: {notes}")
        check(rita.device.read_plan(own).family == "De Vries", "the queued share was carried out")
        lotte.device.close()
    finally:
        link.stop()


async def main():
    server = Server()
    try:
        admin = Admin(server.url)
        rita, wim = await enrol_two_phones(server, admin)
        plan, goal, action = await create_and_share_plan(rita, wim)
        await both_phones_edit_offline(rita, wim, plan, goal, action)
        await sync_and_merge(rita, wim, plan)
        await settle_the_conflict(rita, wim, plan, action)
        bad_input_is_a_typed_error(rita, plan)
        await record_who_takes_part_and_the_safety_plan(rita, wim, plan, action)
        await the_working_cycle(rita, wim, plan, goal, action)
        await a_listener_that_throws_does_not_undo_the_sync(rita, wim, plan)
        await errors_carry_the_fields_an_app_acts_on(server, admin)
        await on_a_poor_link(server, admin, rita)
        await close_and_open_again(rita, plan)
        await revoke_a_stolen_phone(admin, rita, wim, plan)
        await the_wiped_phone_is_set_up_again(server, admin, wim)
    finally:
        server.stop()


asyncio.run(main())
