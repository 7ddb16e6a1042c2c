// Publish one event to phigate from Node (18 or later), as the plugin "chat".
//
//   NODE_EXTRA_CA_CERTS=data/tls/ca.pem PHIGATE_TOKEN=phg_... node examples/publish.mjs
//
// Node's fetch trusts the CA named by NODE_EXTRA_CA_CERTS; the development
// profile creates it as data/tls/ca.pem.

const url = process.env.PHIGATE_URL ?? "https://127.0.0.1:8443";
const token = process.env.PHIGATE_TOKEN;
if (!token) {
  console.error("set PHIGATE_TOKEN to the chat plugin's token");
  process.exit(2);
}

const response = await fetch(`${url}/messaging/publish`, {
  method: "POST",
  headers: {
    "Authorization": `Bearer ${token}`,
    "Content-Type": "application/json",
    "Idempotency-Key": `chat-${Date.now()}`,
  },
  body: JSON.stringify({
    topic: "messages.new",
    payload: { content: "Call me back on 555-867-5309 about MRN-1234567" },
    attributes: { priority: "urgent" },
  }),
});

const body = await response.json();
if (response.status !== 202) {
  // Error messages never repeat payload values: safe to log.
  console.error(`refused (${response.status}): ${body.error.code}: ${body.error.message}`);
  process.exit(1);
}
console.log(body.id);
