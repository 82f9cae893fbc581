#!/usr/bin/env bash
# How tests/golden/rules2/ was made: a log under rules 2, written once by the released code of
# 2026-12-06 (commit 9b1d7b3, the last main before rules 3), with a shipment and its receipt
# naming the shipment's owner. Every later version must still verify it, with the same report
# and the same evidence answers. Do not regenerate it to make a test pass.
#   usage: bash tests/golden/make-rules2.sh OUTDIR   (with that commit's `lotledger` on PATH)
set -euo pipefail
out=$(realpath "$1"); work=$(mktemp -d); cd "$work"
lotledger demo D >/dev/null 2>&1
port=$((20000 + RANDOM % 20000)); export LOTLEDGER_SERVER=127.0.0.1:$port
lotledger serve D --listen "$LOTLEDGER_SERVER" 2>serve.log & pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do lotledger checkpoint >/dev/null 2>&1 && break; sleep 0.2; done
cp D/log.vkey "$out/log.vkey"
lot='{"lot": {"gtin": "09520000000042", "lot": "B-1001"}, "quantity": {"amount": "10", "unit": "H87"}}'
echo '{"record_id": "golden2-ship-1", "shipment": {"shipment_id": "SH-G2", "lots": ['"$lot"'], "from_participant": "plant", "from_location": "plant/dock", "to_participant": "dist-north", "to_location": "north/wh-1", "shipped_at": "2026-12-01T08:00:00Z"}}' >ship.json
echo '{"record_id": "golden2-recv-1", "receipt": {"shipment_id": "SH-G2", "shipment_owner": "plant", "lots": ['"$lot"'], "participant": "dist-north", "location": "north/wh-1", "received_at": "2026-12-01T18:00:00Z"}}' >recv.json
lotledger append ship.json --key D/keys/demo/plant.key --participant plant >/dev/null
lotledger append recv.json --key D/keys/demo/dist-north.key --participant dist-north >/dev/null
lotledger checkpoint >/dev/null; sleep 1.5  # the server checkpoints the new entries within its 1 s cadence
lotledger export --out "$out/whole.bundle" --quiet
lotledger verify --bundle "$out/whole.bundle" --log-key D/log.vkey --json --quiet >"$out/verify-whole.json"
lotledger trace down 01/09520000000042/10/B-1001 --evidence "$out/evidence-down.json" >/dev/null
lotledger recall --supplier-lot D-88 --reason Listeria --evidence "$out/evidence-recall.json" >/dev/null
