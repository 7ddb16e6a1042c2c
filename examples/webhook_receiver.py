"""A webhook receiver for phigate's push delivery, standard library only.

    PHIGATE_SIGNING_SECRET="$(phigate signing-secret --plugin inbox)" \
    RECEIVER_CERT=cert.pem RECEIVER_KEY=key.pem PORT=9443 \
        python3 examples/webhook_receiver.py [--once]

Without RECEIVER_CERT it serves plain HTTP on 127.0.0.1 (phigate pushes
over plain HTTP to loopback only). With --once it exits 0 after the first
delivery whose signature verifies.

Every push is a POST of one message, with these headers:

    Phigate-Delivery-Id   stable across retries: the key to de-duplicate on
    Phigate-Message-Id    the published event (shared by its recipients)
    Phigate-Attempt       1, 2, ...
    Phigate-Signature     t=UNIX_SECONDS,v1=HEX

HEX is the hex HMAC-SHA-256 of "{t}.{raw body}", keyed with the secret's
text exactly as `phigate signing-secret` prints it. Check it against the
raw bytes before parsing them, compare in constant time, and refuse an old
`t` so that a captured request cannot be replayed later.

Answer 2xx only once the message is safely yours: anything else (or no
answer within 10 s) makes phigate try again later, with the same
Phigate-Delivery-Id. Delivery is at least once, so record the id with your
own work and skip ids you have seen (a set stands in for that here).
"""

import hashlib
import hmac
import json
import os
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["PHIGATE_SIGNING_SECRET"].strip().encode()
PORT = int(os.environ.get("PORT", "9443"))
CERT = os.environ.get("RECEIVER_CERT")
KEY = os.environ.get("RECEIVER_KEY")
ONCE = "--once" in sys.argv
TOLERANCE_S = 300  # how old a signature may be

seen = set()  # in real life: a table written with your own work


def signature_ok(header, body):
    """Whether `header` (t=...,v1=...) signs `body` with SECRET, recently."""
    fields = [part.strip().split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [value for key, value in fields if key == "t"]
    candidates = [value for key, value in fields if key == "v1"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not candidates:
        return False
    t = timestamps[0]
    if abs(time.time() - int(t)) > TOLERANCE_S:
        return False
    expected = hmac.new(SECRET, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if not signature_ok(self.headers.get("Phigate-Signature", ""), body):
            self.send_response(401)
            self.end_headers()
            return

        message = json.loads(body)
        delivery_id = self.headers["Phigate-Delivery-Id"]
        if delivery_id not in seen:
            # The payload is already filtered for this plugin. Print no
            # values here: they may be PHI.
            payload = message["payload"]
            shape = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
            print(
                f"delivered {delivery_id} {message['topic']} "
                f"attempt {self.headers['Phigate-Attempt']}: {shape}",
                flush=True,
            )
            seen.add(delivery_id)
        self.send_response(204)
        self.end_headers()
        if ONCE:
            self.server.done = True

    def log_message(self, format, *args):
        pass  # keep request lines (and their paths) out of the output


server = HTTPServer(("127.0.0.1", PORT), Handler)
server.done = False
if CERT:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, KEY)
    server.socket = context.wrap_socket(server.socket, server_side=True)
print(f"listening on {'https' if CERT else 'http'}://127.0.0.1:{PORT}", flush=True)
while not server.done:
    server.handle_request()
