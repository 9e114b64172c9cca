#!/usr/bin/env bash
# The main job: the sync server on its embedded SQLite store, a demo network (an
# administrator, three wijkteam workers, Rita the plan's regisseur, and the Zorg- en
# Veiligheidshuis), and a home visit played through the real binaries: two devices edit
# offline, one edit conflicts, both sync, the plans merge, and the regisseur lists the
# conflict; the case is escalated to the Veiligheidshuis and handed back; then a role change
# and a stolen phone.
# The server keeps serving afterwards so you can connect your own `eenplan` device; Ctrl-C
# stops it.
#
# EENPLAN_DEMO_LISTEN (default 127.0.0.1:8443) sets the address; EENPLAN_DEMO_EXIT=1 stops
# the server after the demo instead of serving on.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "building (release) ..."
cargo build --release --quiet --workspace --bins
bin=$PWD/target/release
work=$(mktemp -d)
listen=${EENPLAN_DEMO_LISTEN:-127.0.0.1:8443}

export EENPLAN_ADMIN_PASSPHRASE="demo: oranje fiets onder de brug"
export EENPLAN_PASSPHRASE="demo-device"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Starting eenplan-server on $listen (data in $work/server, log in $work/server.log)"
mkfifo "$work/server.out"
"$bin/eenplan-server" serve --data "$work/server" --listen "$listen" >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true; wait $server_pid 2>/dev/null || true; rm -rf "$work"' EXIT
# Wait for the server's own "listening on" line, then keep draining its output.
read -r line <"$work/server.out"
echo "$line"
cat "$work/server.out" >/dev/null &
url="http://${line#listening on }"

admin=("$bin/eenplan-admin" --data "$work/admin")
step "The administrator creates the network (root, escrow and admin keys stay on this machine)"
# A fresh server can be claimed only with the one-time secret it wrote to its data directory.
EENPLAN_INIT_SECRET=$(cat "$work/server/init-secret") \
  "${admin[@]}" init --server "$url" --name "Beheerder Regio Midden"
"${admin[@]}" org add "Wijkteam Noord"
"${admin[@]}" user add --org "Wijkteam Noord" --name "Rita" --role wijkteam >/dev/null
"${admin[@]}" user add --org "Wijkteam Noord" --name "Wim" --role wijkteam >/dev/null
"${admin[@]}" user add --org "Wijkteam Noord" --name "Wendy" --role wijkteam >/dev/null
"${admin[@]}" org add "Zorg- en Veiligheidshuis Zaanstreek-Waterland"
"${admin[@]}" user add --org "Zorg- en Veiligheidshuis Zaanstreek-Waterland" --name "Zoë" --role zvh_procesregisseur >/dev/null
"${admin[@]}" user add --org "Zorg- en Veiligheidshuis Zaanstreek-Waterland" --name "Piet" --role pga_expert >/dev/null
"${admin[@]}" user list
# Each organisation's audit key: its phones seal their access log to it; the secret stays in
# this keyring (its privacy officer's), never on the server.
"${admin[@]}" audit key create --org "Wijkteam Noord"
"${admin[@]}" audit key create --org "Zorg- en Veiligheidshuis Zaanstreek-Waterland"

enrol() { # name user
  local dev=("$bin/eenplan" --data "$work/$1")
  "${dev[@]}" init >/dev/null
  local code
  code=$("${admin[@]}" device enrol --user "$2")
  echo "$2's one-time code: $code"
  "${dev[@]}" enrol --server "$url" --code "$code" --name "Telefoon van $2" --platform android
  "${admin[@]}" device approve --code "$code" >/dev/null
  "${dev[@]}" sync >/dev/null
}
step "Three phones are enrolled and approved"
enrol rita Rita
enrol wim Wim
enrol wendy Wendy
enrol zoe "Zoë"
enrol piet Piet
rita=("$bin/eenplan" --data "$work/rita")
wim=("$bin/eenplan" --data "$work/wim")
wendy=("$bin/eenplan" --data "$work/wendy")
zoe=("$bin/eenplan" --data "$work/zoe")
piet=("$bin/eenplan" --data "$work/piet")
"${rita[@]}" status

step "Rita (regisseur) creates the Jansen family's plan and shares it with Wim and Wendy"
plan=$("${rita[@]}" plan create --family "Jansen")
"${rita[@]}" member add "$plan" --name "Sanne Jansen" --relation moeder --gezag >/dev/null
goal=$("${rita[@]}" goal add "$plan" --domain "financiën" --title "Schulden in beeld")
action=$("${rita[@]}" action add "$plan" --goal "$goal" --title "Budgetcoach inschakelen" --owner "Wijkteam Noord" --due 2026-12-15)
"${rita[@]}" sync
"${rita[@]}" plan add-participant "$plan" --user Wim --role wijkteam
"${rita[@]}" plan add-participant "$plan" --user Wendy --role wijkteam
"${rita[@]}" sync
"${wim[@]}" sync
"${wendy[@]}" sync

step "Home visit, offline: Wim and Wendy both change the action's due date"
"${wim[@]}" note add "$plan" --kind home_visit --text "Huisbezoek: drie aanmaningen, moeder wil hulp." >/dev/null
"${wim[@]}" action set "$plan" "$action" --due 2026-12-08 --status in_progress
"${wendy[@]}" action set "$plan" "$action" --due 2027-01-05
"${wendy[@]}" agreement add "$plan" --text "Sanne belt zelf de woningcorporatie." >/dev/null

step "Back online: both sync, then the regisseur"
"${wim[@]}" sync
"${wendy[@]}" sync
"${rita[@]}" sync

step "The regisseur sees the conflict"
"${rita[@]}" conflicts "$plan"

step "The merged plan on Rita's device"
"${rita[@]}" plan show "$plan"

step "Rita escalates the case to the Zorg- en Veiligheidshuis; Zoë accepts regie"
# A signed step: the legal ground, who joins, and to whom regie is offered. Under the
# policy's rules for this level, the procesregisseur and the PGA-expert read justitie too.
"${rita[@]}" plan escalate "$plan" --level zorg_en_veiligheidshuis --grondslag convenant \
  --reason "Zorgen over de veiligheid van de kinderen; meerdere partijen betrokken." \
  --regie "Zoë" --add "Zoë:zvh_procesregisseur" --add "Piet:pga_expert"
"${zoe[@]}" sync >/dev/null
"${zoe[@]}" plan accept-regie "$plan"
"${zoe[@]}" note add "$plan" --compartment justitie --text "Justitie: lopend onderzoek naar de vader." >/dev/null
"${zoe[@]}" plan readers "$plan" --compartment justitie
"${zoe[@]}" sync >/dev/null
"${piet[@]}" sync >/dev/null
"${rita[@]}" sync >/dev/null
"${rita[@]}" plan show "$plan" | sed -n '1,6p'

step "Afschaling: Zoë hands regie back to Rita; the Veiligheidshuis leaves the plan"
# Zorg, veiligheid and basis move to new keys made by Rita's phone: no administrator.
"${zoe[@]}" plan deescalate "$plan" --level lokaal --regie Rita
"${rita[@]}" sync >/dev/null
"${rita[@]}" note add "$plan" --compartment zorg --text "Zorg: na de afschaling, alleen het wijkteam." >/dev/null
"${rita[@]}" sync >/dev/null
"${zoe[@]}" sync >/dev/null
if "${zoe[@]}" plan show "$plan" | grep -q "na de afschaling"; then
  echo "error: Zoë's phone shows a note written after she left the plan" >&2
  exit 1
fi
"${rita[@]}" plan show "$plan" | sed -n '1,6p'

step "Back with the wijkteam: a casusoverleg, the plan adopted with the family, Wim's agenda"
# A decision with an owner becomes an action in the same change; the adoption is signed by
# Rita's phone and checked by every other phone against the signed participant list.
"${rita[@]}" meeting add "$plan" --date 2026-12-03 --attendee Rita --attendee Wim \
  --decision "Sanne krijgt een budgetcoach." \
  --decision "Aanmelding schuldhulpverlening | Wim | $(date -d '+3 days' +%F) | Schulden in beeld" >/dev/null
"${rita[@]}" evaluation add "$plan" --date 2027-01-15 >/dev/null
"${rita[@]}" plan adopt "$plan" --with-family "Besproken met Sanne op 3 december 2026; zij is akkoord." --present Wim
"${rita[@]}" sync >/dev/null
"${wim[@]}" sync >/dev/null
"${wim[@]}" plan adopted "$plan" | sed -n '1,9p'
"${wim[@]}" agenda

step "The Jansen family asks who saw their file (NEN 7513)"
# Every look at the plan, offline ones included, went into each phone's signed access log;
# the phones uploaded it with their syncs, sealed to their organisation's audit key.
for phone in rita wim wendy zoe piet; do "$bin/eenplan" --data "$work/$phone" sync >/dev/null; done
"${admin[@]}" audit verify
"${admin[@]}" audit family-report "$plan"

step "Wendy moves to GGZ work: the administrator changes her role"
# GGZ reads basis and zorg, not veiligheid: her phone is re-certified, veiligheid moves to a
# new key, and what Rita writes there from now on never reaches Wendy's phone.
"${admin[@]}" user set-role Wendy --role ggz
"${rita[@]}" note add "$plan" --compartment veiligheid --text "Veiligheid: afspraken met de school." >/dev/null
"${rita[@]}" sync >/dev/null
"${wendy[@]}" sync
if "${wendy[@]}" plan show "$plan" | grep -q "afspraken met de school"; then
  echo "error: Wendy's phone shows a veiligheid note after her role changed" >&2
  exit 1
fi
echo "The new veiligheid note did not reach Wendy's phone: GGZ holds no veiligheid key."

step "Wim's phone is stolen: the administrator revokes it"
wim_id=$("${wim[@]}" status --json | sed -n 's/.*"device": *"\([0-9a-f]*\)".*/\1/p' | head -1)
"${admin[@]}" device revoke "$wim_id" --reason stolen
"${rita[@]}" note add "$plan" --text "Na de diefstal: nieuwe sleutel, Wims telefoon leest dit nooit." >/dev/null
"${rita[@]}" sync

step "The stolen phone comes online and wipes itself"
"${wim[@]}" sync || true
"${admin[@]}" device list

if [ "${EENPLAN_DEMO_EXIT:-0}" = 1 ]; then
  exit 0
fi
step "The server keeps serving at $url"
cat <<TXT
Connect a device of your own:
  code=\$(EENPLAN_ADMIN_PASSPHRASE=$EENPLAN_ADMIN_PASSPHRASE $bin/eenplan-admin --data $work/admin device enrol --user Wim)
  $bin/eenplan --data /tmp/my-phone init
  $bin/eenplan --data /tmp/my-phone enrol --server $url --code \$code --name "Mijn laptop"
  EENPLAN_ADMIN_PASSPHRASE=$EENPLAN_ADMIN_PASSPHRASE $bin/eenplan-admin --data $work/admin device approve --code \$code
  $bin/eenplan --data /tmp/my-phone sync && $bin/eenplan --data /tmp/my-phone plan list
Ctrl-C stops the server.
TXT
wait $server_pid
