#!/usr/bin/env bash
# A home visit between two devices, with no server: the regisseur's laptop and a wijkteam
# worker's phone each hold the Jansen family's plan, edit it offline, exchange sealed transfer
# files, and the regisseur settles the one conflict. Every step is a real `eenplan` command.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --bin eenplan
eenplan=target/release/eenplan
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export EENPLAN_PASSPHRASE="demo-passphrase"
export EENPLAN_TRANSFER_PASSPHRASE="demo-transfer"
regisseur=("$eenplan" --data "$work/regisseur")
worker=("$eenplan" --data "$work/wijkteam")
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Two devices are set up (each with its own keys and encrypted store)"
"${regisseur[@]}" init
"${worker[@]}" init

step "The regisseur creates the Jansen family's plan"
plan=$("${regisseur[@]}" plan create --family "Jansen")
echo "plan $plan"
"${regisseur[@]}" member add "$plan" --name "Sanne Jansen" --relation moeder --birth-date 1988-03-14 --gezag >/dev/null
"${regisseur[@]}" member add "$plan" --name "Daan Jansen" --relation zoon --birth-date 2014-09-02 >/dev/null
"${regisseur[@]}" participant add "$plan" --name "Fatima el Amrani" --org "Wijkteam Noord" --role wijkteam >/dev/null
goal=$("${regisseur[@]}" goal add "$plan" --domain "financiën" --title "Schulden in beeld")
action=$("${regisseur[@]}" action add "$plan" --goal "$goal" --title "Budgetcoach inschakelen" --owner "Wijkteam Noord" --due 2026-12-15)
"${regisseur[@]}" export "$plan" --changes "$work/plan.eenplan"
"${worker[@]}" import --changes "$work/plan.eenplan"

step "Offline: the worker writes during the home visit; the regisseur edits the same action"
"${worker[@]}" note add "$plan" --kind home_visit --text "Huisbezoek: moeder heeft de post geopend, drie aanmaningen." >/dev/null
"${worker[@]}" action set "$plan" "$action" --status in_progress --due 2026-12-08
"${regisseur[@]}" action set "$plan" "$action" --due 2027-01-05
"${regisseur[@]}" agreement add "$plan" --text "Sanne belt zelf de woningcorporatie voor een betalingsregeling." >/dev/null

step "Back in range: the devices exchange their changes"
"${worker[@]}" export "$plan" --changes "$work/from-worker.eenplan"
"${regisseur[@]}" import --changes "$work/from-worker.eenplan"
"${regisseur[@]}" export "$plan" --changes "$work/from-regisseur.eenplan"
"${worker[@]}" import --changes "$work/from-regisseur.eenplan"

step "Both set the due date at once: the regisseur sees the conflict"
"${regisseur[@]}" conflicts "$plan"
conflict=$("${regisseur[@]}" conflicts "$plan" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')

step "The regisseur settles it with a new date, and the settlement travels back"
"${regisseur[@]}" resolve "$plan" "$conflict" --value 2026-12-22
"${regisseur[@]}" export "$plan" --changes "$work/settled.eenplan"
"${worker[@]}" import --changes "$work/settled.eenplan"
"${worker[@]}" conflicts "$plan"

step "The worker's phone now shows the merged plan"
"${worker[@]}" plan show "$plan"
