"""Publish one event to phigate from Python, as the plugin "ehr".

    pip install requests
    PHIGATE_TOKEN=phg_... python3 examples/publish.py

The gateway answers 202 with the message id once the event is stored. Any
other answer carries {"error": {"code", "message"}}; the message never
repeats payload values, so it is safe to log.
"""

import os
import sys

import requests

URL = os.environ.get("PHIGATE_URL", "https://127.0.0.1:8443")
# Trust the gateway's CA, not every CA: the development profile creates it.
CA = os.environ.get("PHIGATE_CA", "data/tls/ca.pem")
TOKEN = os.environ["PHIGATE_TOKEN"]

event = {
    "topic": "labs.results.blood",
    "payload": {
        "mrn": "MRN-7654321",
        "test_code": "K",
        "value": 3.9,
        "unit": "mmol/L",
        "flag": "normal",
    },
}

response = requests.post(
    f"{URL}/messaging/publish",
    json=event,  # sets Content-Type: application/json
    headers={
        "Authorization": f"Bearer {TOKEN}",
        # A retry with the same key is answered with the same id.
        "Idempotency-Key": "lab-result-7654321-K",
    },
    verify=CA,
    timeout=10,
)
if response.status_code != 202:
    error = response.json().get("error", {})
    print(f"refused ({response.status_code}): {error.get('code')}: {error.get('message')}", file=sys.stderr)
    sys.exit(1)
print(response.json()["id"])
