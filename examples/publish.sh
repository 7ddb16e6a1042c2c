#!/usr/bin/env sh
# Publish one event to phigate with curl, as the plugin "ehr".
#
#   PHIGATE_TOKEN=phg_... sh examples/publish.sh
#
# PHIGATE_URL defaults to the development server, PHIGATE_CA to the CA file
# the development profile creates (`data/tls/ca.pem`). The Idempotency-Key
# makes a retry safe: the same key from the same plugin within 24 hours
# gets the same message id and no second delivery.
set -eu
url="${PHIGATE_URL:-https://127.0.0.1:8443}"
ca="${PHIGATE_CA:-data/tls/ca.pem}"
: "${PHIGATE_TOKEN:?set PHIGATE_TOKEN to the ehr plugin's token}"

curl --silent --show-error --fail-with-body \
  --cacert "$ca" \
  -H "Authorization: Bearer $PHIGATE_TOKEN" \
  -H "Content-Type: application/json" \
  -H "Idempotency-Key: admission-${ADMISSION_ID:-0001}" \
  --data '{
    "topic": "patients.admitted",
    "payload": {"mrn": "MRN-0012345", "name": "Ada L.", "ward": "3B",
                "admitted_at": "2026-12-03T09:00:00Z"},
    "attributes": {"source": "examples/publish.sh"}
  }' \
  "$url/messaging/publish"
echo
