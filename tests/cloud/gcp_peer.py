"""A stand-in for GCP Secret Manager's `versions.access`, Google's OAuth token endpoint (the
JWT-bearer grant of a service-account key) and the GCE metadata server's token, for Latch's
secret-store tests. No emulator of these APIs exists.

Shapes: the REST reference of projects.secrets.versions.access (response {"name",
"payload": {"data": base64, "dataCrc32c": int64 as a string}}, from
googleapis/google/cloud/secretmanager/v1/resources.proto's SecretPayload and proto3's JSON
mapping); errors as google.rpc.Status JSON ({"error": {"code", "message", "status"}},
AIP-193); the token endpoint per "Using OAuth 2.0 for Server to Server Applications"
(grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer, an RS256 JWT with iss, scope, aud,
iat, exp; answer {"access_token","expires_in","token_type"}; failure {"error":
"invalid_grant", "error_description"}); the metadata server's
/computeMetadata/v1/instance/service-accounts/default/token, which needs
`Metadata-Flavor: Google`. The JWT's signature is really verified (cryptography) against
the service account's key.

  python3 gcp_peer.py keygen KEY_JSON EMAIL      a service-account key file (0600)
  python3 gcp_peer.py serve PORT FIXTURE LOG

FIXTURE: {"project", "key_file" (the service account's key JSON: its public half verifies),
"secrets": {"NAME": "VALUE"}, "bad_crc": ["NAME", …]}. LOG gets one line per request, never a
token or value.
"""

import base64
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

LOCK = threading.Lock()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def keygen(path, email):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    doc = {"type": "service_account", "project_id": "latch-test", "private_key_id": uuid.uuid4().hex,
           "private_key": pem, "client_email": email, "client_id": "1234567890",
           "token_uri": "https://oauth2.googleapis.com/token"}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fx = None
    public = None
    email = None
    log = None
    port = None
    tokens = set()

    def log_message(self, *args):
        pass

    def note(self, line):
        with LOCK, open(self.log, "a") as f:
            f.write(line + "\n")

    def send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def rpc_error(self, code, status, message):
        self.send(code, {"error": {"code": code, "message": message, "status": status}})

    def issue(self, kind):
        token = "ya29.test-" + uuid.uuid4().hex
        with LOCK:
            self.tokens.add(token)
        self.note("TOKEN %s issued" % kind)
        return token

    def do_POST(self):
        url = urlsplit(self.path)
        form = dict(parse_qsl(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()))
        if url.path != "/token":
            return self.send(404, {"error": "not_found"})
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            self.note("TOKEN refused: grant_type")
            return self.send(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
        try:
            head, claims, sig = form.get("assertion", "").split(".")
            self.public.verify(b64url_decode(sig), (head + "." + claims).encode(), padding.PKCS1v15(), hashes.SHA256())
            header, body = json.loads(b64url_decode(head)), json.loads(b64url_decode(claims))
        except Exception:
            self.note("TOKEN refused: signature")
            return self.send(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        now = time.time()
        ok = (header.get("alg") == "RS256" and body.get("iss") == self.email
              and body.get("aud") == "http://127.0.0.1:%d/token" % self.port
              and "cloud-platform" in body.get("scope", "")
              and body.get("iat", 0) <= now + 60 and now < body.get("exp", 0) <= body.get("iat", 0) + 3600)
        if not ok:
            self.note("TOKEN refused: claims")
            return self.send(400, {"error": "invalid_grant", "error_description": "Invalid JWT: claims."})
        self.send(200, {"access_token": self.issue("service-account-key"), "expires_in": 3599, "token_type": "Bearer"})

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/computeMetadata/v1/instance/service-accounts/default/token":
            if self.headers.get("Metadata-Flavor") != "Google":
                self.note("TOKEN refused: metadata without Metadata-Flavor")
                return self.send(403, {"error": "Missing Metadata-Flavor:Google header."})
            return self.send(200, {"access_token": self.issue("metadata"), "expires_in": 1967, "token_type": "Bearer"})
        auth = self.headers.get("Authorization", "")
        with LOCK:
            known = auth.startswith("Bearer ") and auth[7:] in self.tokens
        if not known:
            self.note("GET %s unauthenticated" % url.path)
            return self.rpc_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. "
                                  "Expected OAuth 2 access token, login cookie or other valid authentication credential.")
        parts = url.path.strip("/").split("/")
        # v1/projects/{p}/secrets/{s}/versions/{v}:access
        if len(parts) != 7 or parts[:2] != ["v1", "projects"] or parts[3] != "secrets" or parts[5] != "versions" \
                or not parts[6].endswith(":access"):
            return self.rpc_error(404, "NOT_FOUND", "Requested entity was not found.")
        project, name, version = parts[2], parts[4], parts[6][: -len(":access")]
        if project != self.fx["project"]:
            self.note("GET %s denied" % url.path)
            return self.rpc_error(403, "PERMISSION_DENIED", "Permission 'secretmanager.versions.access' denied for "
                                  "resource 'projects/%s/secrets/%s/versions/%s' (or it may not exist)." % (project, name, version))
        value = self.fx["secrets"].get(name)
        if value is None:
            self.note("GET %s not-found" % url.path)
            return self.rpc_error(404, "NOT_FOUND", "Secret [projects/%s/secrets/%s] not found or has no versions." % (project, name))
        data = value.encode()
        crc = crc32c(data) ^ (1 if name in self.fx.get("bad_crc", []) else 0)
        self.note("GET %s ok" % url.path)
        self.send(200, {"name": "projects/123456789012/secrets/%s/versions/1" % name,
                        "payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": str(crc)}})


def main():
    if sys.argv[1] == "keygen":
        return keygen(sys.argv[2], sys.argv[3])
    port, fixture, log = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(fixture) as f:
        Handler.fx = json.load(f)
    with open(Handler.fx["key_file"]) as f:
        key = json.load(f)
    private = serialization.load_pem_private_key(key["private_key"].encode(), password=None)
    Handler.public, Handler.email, Handler.log, Handler.port = private.public_key(), key["client_email"], log, port
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
