"""A pull subscriber: lease messages, process them, acknowledge them.

    pip install requests
    PHIGATE_TOKEN=phg_... python3 examples/pull.py scheduler [--once]

Each message is leased to this subscriber for `delivery.lease` (30 s by
default). Acknowledge it after processing; an unacknowledged message comes
back after its lease with `attempt` + 1 and the same `delivery_id`.

That is at-least-once delivery. To process each message exactly once,
record the `delivery_id` in the same transaction as your own work and skip
ids you have already recorded (a set stands in for that here).
"""

import os
import sys

import requests

URL = os.environ.get("PHIGATE_URL", "https://127.0.0.1:8443")
CA = os.environ.get("PHIGATE_CA", "data/tls/ca.pem")
TOKEN = os.environ["PHIGATE_TOKEN"]
PLUGIN = sys.argv[1] if len(sys.argv) > 1 else "scheduler"
ONCE = "--once" in sys.argv

session = requests.Session()
session.headers["Authorization"] = f"Bearer {TOKEN}"
base = f"{URL}/messaging/subscriptions/{PLUGIN}"
processed = set()  # in real life: a table written with your own work


def handle(message):
    # The payload is already filtered for this plugin: encrypted and
    # hashed fields arrive as "enc:v1:..." and "hmac:v1:..." strings.
    print(f"{message['topic']} attempt {message['attempt']}: {sorted(message['payload'])}")


while True:
    # Long-poll: wait up to 20 s for something to arrive.
    # `verify` goes on each call: requests lets REQUESTS_CA_BUNDLE override
    # a session's `verify`, and the gateway's CA is in no system bundle.
    response = session.get(f"{base}/messages", params={"max": 10, "wait": 20}, verify=CA, timeout=30)
    response.raise_for_status()
    messages = response.json()["messages"]
    done = []
    for message in messages:
        if message["delivery_id"] not in processed:
            handle(message)
            processed.add(message["delivery_id"])
        done.append(message["delivery_id"])
    if done:
        ack = session.post(f"{base}/ack", json={"delivery_ids": done}, verify=CA, timeout=10)
        ack.raise_for_status()
        print(f"acknowledged {ack.json()['acked']}")
    if ONCE:
        break
