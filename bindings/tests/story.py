"""A home visit told through the Python bindings, against a real eenplan-server.

Two phones are enrolled, the regisseur's phone creates a plan and shares it, both phones
edit offline (one field on both), they sync and merge, and the regisseur settles the
conflict. Every step is a function of its own, so later steps append easily.

Run by `cargo test --workspace` (bindings/tests/stories.rs), which generates the bindings
and passes, in the environment:
  EENPLAN_FFI_PYTHON  directory with the generated eenplan_ffi.py and libeenplan_ffi.so
  EENPLAN_SERVER      the eenplan-server binary
  EENPLAN_ADMIN       the eenplan-admin binary
  EENPLAN_WORK        an empty directory for the server, the admin keyring and the phones
"""

import asyncio
import os
import subprocess
import sys
import threading

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
            env={**os.environ, "EENPLAN_ADMIN_PASSPHRASE": "admin-test",
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


class Phone:
    def __init__(self, name, user):
        self.name = name
        self.user = user
        self.listener = Listener()
        keystore = eenplan.passphrase_keystore(f"{name}-passphrase")
        self.device = eenplan.Device.open_or_init(os.path.join(WORK, name), keystore)
        self.device.set_listener(self.listener)


def check(condition, what):
    if not condition:
        raise AssertionError(what)


# --- the story, one step per function -------------------------------------------------------

async def enrol_two_phones(server, admin):
    admin.run("org", "add", ORG)
    admin.run("user", "add", "--org", ORG, "--name", "Rita", "--role", "wijkteam")
    admin.run("user", "add", "--org", ORG, "--name", "Wim", "--role", "wijkteam")
    rita, wim = Phone("rita-phone", "Rita"), Phone("wim-phone", "Wim")
    for phone in (rita, wim):
        code = admin.run("device", "enrol", "--user", phone.user)
        check(await phone.device.enrol(server.url, code) == eenplan.Enrolment.PENDING_APPROVAL,
              "an enrolled phone waits for approval")
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
    return rita, wim


async def create_and_share_plan(rita, wim):
    device = rita.device
    plan = device.create_plan("Jansen")
    goal = device.add_goal(plan, "financiën", "Schulden in beeld")
    action = device.add_action(plan, eenplan.NewAction(
        goal=goal, title="Budgetcoach aanvragen", owner_org=ORG, owner_person=None,
        due="2026-12-15"))
    device.add_agreement(plan, "Sanne belt de budgetcoach voor vrijdag.")
    # The first sync registers the plan with the server; then it can be shared.
    await device.sync()
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
    for call in (lambda: rita.device.add_goal(plan, "geen domein", "x"),
                 lambda: rita.device.read_plan("not-a-plan-id"),
                 lambda: rita.device.edit_note(plan, eenplan.Compartment.BASIS,
                                               "00000000000000aa", 0, 0, "x")):
        try:
            call()
            raise AssertionError("bad input was accepted")
        except eenplan.ApiError.Invalid as error:
            check(str(error), "the error says what was wrong")


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
    check("wiped" in line, f"the administrator sees the wipe: {line}")


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
        await revoke_a_stolen_phone(admin, rita, wim, plan)
    finally:
        server.stop()


asyncio.run(main())
