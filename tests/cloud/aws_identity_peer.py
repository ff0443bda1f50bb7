"""Where an AWS workload gets its credentials without a key on disk, for Latch's tests: the
two links of the standard credentials chain that moto does not serve as AWS does.

* **STS `AssumeRoleWithWebIdentity`** (POST /, query protocol), as EKS pods (IRSA) and
  other OIDC workloads call it. moto implements the action but checks neither the token nor
  that the call is unsigned (with signature checking on it even answers an unsigned call
  with a 500). This peer does what STS does first: the call must be unsigned (the token is
  the proof), `Version` 2011-06-15, `RoleArn` the role that trusts the provider (else
  `AccessDenied`), `WebIdentityToken` the token the identity provider issued (here: the
  content of the fixture's `token_file`, standing in for the OIDC signature check; else
  `InvalidIdentityToken`), `RoleSessionName` 2-64 of [\\w+=,.@-] (else `ValidationError`).
  Then it passes the request on to moto, signed with the moto user's key, and returns
  moto's answer unchanged: the credentials are moto's own temporary credentials for the
  role, which moto then checks (signature, session token, the role's policy) on every
  EC2 and Secrets Manager call.
  Shapes: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html
  and https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html

* **The instance metadata service, IMDSv2 required** (an instance with
  `HttpTokens=required`): `PUT /latest/api/token` with
  `X-aws-ec2-metadata-token-ttl-seconds` (1-21600, else 400; a request with
  `X-Forwarded-For` is refused, 403), then `GET /latest/meta-data/iam/security-credentials/`
  (the role's name) and `GET .../ROLE` (JSON: Code, LastUpdated, Type, AccessKeyId,
  SecretAccessKey, Token, Expiration), each with `X-aws-ec2-metadata-token` (missing,
  unknown or expired: 401). The credentials are moto's, from `AssumeRole` of the role.
  Shapes: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
  and .../instance-metadata-security-credentials.html ("Retrieve security credentials from
  instance metadata").

* **A container credentials endpoint** (the ECS agent at 169.254.170.2, the EKS Pod Identity
  agent at 169.254.170.23): `GET /v1/credentials` with the `Authorization` header the agent
  gave the container (here: the content of the fixture's `container_token_file`; else 401),
  answering JSON AccessKeyId, SecretAccessKey, Token, AccountId, Expiration — moto's
  credentials for the role again. Shape:
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html and
  https://docs.aws.amazon.com/eks/latest/userguide/pod-id-how-it-works.html

  python3 aws_identity_peer.py serve PORT FIXTURE LOG

FIXTURE (JSON, read at each request): {"moto": URL, "credentials": moto's shared
credentials file, "role_arn": ARN, "token_file": PATH, "container_token_file": PATH}. LOG gets one line per request.
"""

import configparser
import datetime
import json
import re
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
SESSION = re.compile(r"[\w+=,.@-]{2,64}")
TOKENS = {}  # IMDSv2 session token -> expiry (monotonic)


def fixture(path):
    with open(path) as f:
        return json.load(f)


def moto_key(fx):
    cfg = configparser.ConfigParser()
    cfg.read(fx["credentials"])
    return cfg["moto"]["aws_access_key_id"], cfg["moto"]["aws_secret_access_key"]


def sts_error(code, message, status=400):
    body = ('<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>%s</Code>'
            "<Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>"
            % (STS_NS, code, message, secrets.token_hex(16)))
    return status, "text/xml", body.encode()


def web_identity(fx, headers, raw):
    form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
    one = lambda k: (form.get(k) or [""])[0]
    if headers.get("Authorization") or headers.get("X-Amz-Security-Token"):
        return sts_error("InvalidAction", "AssumeRoleWithWebIdentity is called unsigned"), "signed"
    if one("Version") != "2011-06-15":
        return sts_error("InvalidAction", "Could not find operation for this version"), "version"
    if not SESSION.fullmatch(one("RoleSessionName")):
        return sts_error("ValidationError", "1 validation error detected: Value at "
                         "'roleSessionName' failed to satisfy constraint"), "session"
    if one("RoleArn") != fx["role_arn"]:
        return sts_error("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity",
                         403), "role"
    with open(fx["token_file"]) as f:
        expected = f.read().strip()
    if not expected or one("WebIdentityToken") != expected:
        return sts_error("InvalidIdentityToken", "Couldn't verify the token's signature"), "token"
    # moto's own answer, its own credentials: signed as moto requires, otherwise unchanged.
    key, secret = moto_key(fx)
    request = AWSRequest(method="POST", url=fx["moto"] + "/", data=raw,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(key, secret), "sts", "us-east-1").add_auth(request)
    try:
        with urllib.request.urlopen(urllib.request.Request(
                fx["moto"] + "/", data=raw, method="POST", headers=dict(request.headers.items())),
                timeout=10) as r:
            return (r.status, r.headers.get("Content-Type", "text/xml"), r.read()), "ok"
    except urllib.error.HTTPError as e:
        return (e.code, "text/xml", e.read()), "moto-%d" % e.code


def instance_credentials(fx):
    key, secret = moto_key(fx)
    sts = boto3.client("sts", endpoint_url=fx["moto"], region_name="us-east-1",
                       aws_access_key_id=key, aws_secret_access_key=secret,
                       config=Config(retries={"max_attempts": 1}))
    c = sts.assume_role(RoleArn=fx["role_arn"], RoleSessionName="i-0a1b2c3d4e5f60718",
                        DurationSeconds=3600)["Credentials"]
    iso = lambda t: t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Code": "Success",
        "LastUpdated": iso(datetime.datetime.now(datetime.timezone.utc)),
        "Type": "AWS-HMAC",
        "AccessKeyId": c["AccessKeyId"],
        "SecretAccessKey": c["SecretAccessKey"],
        "Token": c["SessionToken"],
        "Expiration": iso(c["Expiration"]),
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    fixture_path = None
    log = None

    def log_message(self, *args):
        pass

    def note(self, line):
        with open(self.log, "a") as f:
            f.write(line + "\n")

    def answer(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        action = (urllib.parse.parse_qs(raw.decode()).get("Action") or ["?"])[0]
        if self.path != "/" or action != "AssumeRoleWithWebIdentity":
            self.note("STS %s refused: not served" % action)
            return self.answer(*sts_error("InvalidAction", "not served by this peer"))
        (status, ctype, body), why = web_identity(fixture(self.fixture_path), self.headers, raw)
        self.note("STS AssumeRoleWithWebIdentity %s" % why)
        self.answer(status, ctype, body)

    def do_PUT(self):
        if self.path != "/latest/api/token":
            return self.answer(404, "text/plain", b"Not Found")
        if self.headers.get("X-Forwarded-For"):
            self.note("IMDS token refused: X-Forwarded-For")
            return self.answer(403, "text/plain", b"Forbidden")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            self.note("IMDS token refused: ttl %r" % ttl[:20])
            return self.answer(400, "text/plain", b"Bad Request")
        token = secrets.token_urlsafe(42)
        TOKENS[token] = time.monotonic() + int(ttl)
        self.note("IMDS token ttl=%s" % ttl)
        self.answer(200, "text/plain", token.encode())

    def do_GET(self):
        if self.path == "/v1/credentials":
            return self.container()
        token = self.headers.get("X-aws-ec2-metadata-token")
        if token is None or TOKENS.get(token, 0) < time.monotonic():
            self.note("IMDS GET %s refused: %s" % (self.path, "no token" if token is None else "bad token"))
            return self.answer(401, "text/plain", b"Unauthorized")
        fx = fixture(self.fixture_path)
        role = fx["role_arn"].rsplit("/", 1)[1]
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path == base:
            self.note("IMDS GET role")
            return self.answer(200, "text/plain", role.encode())
        if self.path == base + role:
            self.note("IMDS GET credentials")
            body = json.dumps(instance_credentials(fx), indent=2).encode()
            return self.answer(200, "text/plain", body)
        self.note("IMDS GET %s: 404" % self.path)
        self.answer(404, "text/plain", b"Not Found")


    def container(self):
        fx = fixture(self.fixture_path)
        with open(fx["container_token_file"]) as f:
            expected = f.read().strip()
        if not expected or self.headers.get("Authorization") != expected:
            self.note("CONTAINER refused: %s" % ("no token" if self.headers.get("Authorization") is None
                                                 else "bad token"))
            body = json.dumps({"code": "AccessDeniedException",
                               "message": "the authorization token is not valid"}).encode()
            return self.answer(401, "application/json", body)
        c = instance_credentials(fx)
        self.note("CONTAINER credentials")
        body = json.dumps({"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                           "Token": c["Token"], "AccountId": "123456789012",
                           "Expiration": c["Expiration"]}).encode()
        self.answer(200, "application/json", body)


def main():
    if sys.argv[1] != "serve":
        sys.exit("usage: aws_identity_peer.py serve PORT FIXTURE LOG")
    Handler.fixture_path, Handler.log = sys.argv[3], sys.argv[4]
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()


if __name__ == "__main__":
    main()
