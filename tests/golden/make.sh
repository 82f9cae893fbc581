#!/usr/bin/env bash
# How the golden files here were made (once, by the code of 2026-12-06, before the "One house"
# renovation). They are promises: a later change must keep reading, checking and writing
# them byte for byte. Do not regenerate them to make a test pass.
#   usage: bash tests/golden/make.sh OUTDIR   (with `lotledger` on PATH)
set -euo pipefail
out=$(realpath "$1"); work=$(mktemp -d); cd "$work"
lotledger demo D >/dev/null 2>&1          # entries 0..42, checkpoint at 43
port=$((20000 + RANDOM % 20000)); export LOTLEDGER_SERVER=127.0.0.1:$port
lotledger serve D --listen "$LOTLEDGER_SERVER" 2>serve.log & pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do lotledger checkpoint >/dev/null 2>&1 && break; sleep 0.2; done
cp D/log.vkey "$out/log.vkey"
# After checkpoint 43: a key registered and one revoked (key history in the increment), a
# shipment, its receipt and a correction of the shipment.
extra=$(lotledger keys generate extra.key --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])')
lotledger keys register --id plant --role manufacturer --public-key extra.key.pub --key D/keys/admin.key --participant admin >/dev/null
lot='{"lot": {"gtin": "09520000000042", "lot": "B-1001"}, "quantity": {"amount": "10", "unit": "H87"}}'
echo '{"record_id": "golden-ship-1", "shipment": {"shipment_id": "SH-G1", "lots": ['"$lot"'], "from_participant": "plant", "from_location": "plant/dock", "to_participant": "dist-north", "to_location": "north/wh-1", "shipped_at": "2026-12-01T08:00:00Z"}}' >ship.json
echo '{"record_id": "golden-recv-1", "receipt": {"shipment_id": "SH-G1", "lots": ['"$lot"'], "participant": "dist-north", "location": "north/wh-1", "received_at": "2026-12-01T18:00:00Z"}}' >recv.json
echo '{"record_id": "golden-fix-1", "correction": {"corrects_record_id": "golden-ship-1", "reason": "dock", "corrected": {"record_id": "golden-ship-1", "shipment": {"shipment_id": "SH-G1", "lots": ['"$lot"'], "from_participant": "plant", "from_location": "plant/dock-2", "to_participant": "dist-north", "to_location": "north/wh-1", "shipped_at": "2026-12-01T08:00:00Z"}}}}' >fix.json
lotledger append ship.json --key extra.key --participant plant >/dev/null
lotledger keys revoke "$extra" --reason "golden: used once" --key D/keys/admin.key --participant admin >/dev/null
lotledger append recv.json --key D/keys/demo/dist-north.key --participant dist-north >/dev/null
lotledger append fix.json --key D/keys/demo/plant.key --participant plant >/dev/null
lotledger checkpoint >/dev/null; sleep 1.5  # the server checkpoints the new entries within its 1 s cadence
lotledger export --to 43 --out "$out/first.bundle" --quiet
lotledger export --from 43 --out "$out/increment.bundle" --quiet
lotledger export --out "$out/whole.bundle" --quiet
mkdir -p "$out/state"
lotledger verify --bundle "$out/first.bundle" --log-key D/log.vkey --state "$out/state" --quiet >/dev/null
lotledger trace down 01/09520000000028/10/MK-201 --evidence "$out/evidence-down.json" >/dev/null
lotledger recall --supplier-lot D-88 --reason Listeria --evidence "$out/evidence-recall.json" >/dev/null
lotledger export-tiles "$out/tiles" --log-key D/log.vkey --quiet >/dev/null
cp -r "$out/state" "$out/state-48"
lotledger verify --bundle "$out/increment.bundle" --log-key D/log.vkey --state "$out/state-48" --quiet >/dev/null
lotledger verify --bundle "$out/whole.bundle" --log-key D/log.vkey --json --quiet >"$out/verify-whole.json"
lotledger verify-evidence "$out/evidence-recall.json" --log-key D/log.vkey --json >"$out/verify-evidence-recall.json"
rm -f "$out"/state*/lock
