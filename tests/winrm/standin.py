#!/usr/bin/env python3
"""A Windows stand-in for tests: a WinRM (WS-Management) server that real WinRM clients accept.

    python standin.py --dir DIR [--allow-unencrypted] [--no-https] [--cbt-relaxed]
                      [--receive-timeouts N] [--progress-noise]
                      [--rdp-sam PATH [--rdp-groups 'Remote Desktop Users,Other Group']]
                      [--ad-url ldaps://HOST:636 --ad-ca PEM --ad-base-dn DN [--ad-realm REALM]
                       [--ad-netbios DOMAIN]]

DIR/users holds `DOMAIN:USER:PASSWORD` lines. Prints `READY http=PORT https=PORT` when listening
on 127.0.0.1. Authentication (NTLM through pyspnego, Basic), NTLM message encryption, TLS with a
test CA, the cmd shell protocol (Create/Command/Send/Receive/Signal/Delete) and, inside it, exactly
one form of PowerShell script (Latch's), parsed with tree-sitter-powershell and carried out
against a small local-accounts state (see shared/recipes/winrm-stand-in.md).

Secrets never come in the script: a SecureString parameter is a variable `$latchN` the script
fills from its stdin (`$latch = @($input)`, one base64 line per secret). The stand-in refuses a
script holding a literal where a SecureString belongs, or holding the value of a secret its
stdin carried; it runs such a command only once its stdin was closed (`Send` with End="true",
after a Command with WINRS_CONSOLEMODE_STDIN=FALSE: with a console stdin `$input` is empty and
the script's own count check fails, as on Windows), and records how many secrets arrived there.

Records: DIR/calls.jsonl (one line per PowerShell call), DIR/wire.jsonl (one per HTTP request),
state in DIR/state.json. This is a test server: state.json keeps passwords in clear, and
DIR/ntlm-users (the file pyspnego checks NTLM logins against) their NT and LM hashes: both mode
0600, replaced atomically.

With --rdp-sam, PATH is kept as the FreeRDP SAM file of the users allowed to log on over RDP
(see RdpSam), for a `freerdp-shadow-cli /sec:nla /sam-file:PATH` (tests/rdp/rdp.sh).

With --ad-url, the Active Directory cmdlets Latch's windows-dc guest sends (Get-ADUser, New-ADUser,
...) are carried out against a real DC over LDAPS, bound as the WinRM user: see standin_ad.py. A
password the DC accepts there for one of the users file's domain accounts becomes the stand-in's
record of that user's password too (the next NTLM login needs the new one, as on a member
server, where the DC checks it).
"""

import argparse
import base64
import datetime
import fnmatch
import hashlib
import http.server
import json
import os
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape as xml_escape

import spnego
import spnego.channel_bindings
import tree_sitter
import tree_sitter_powershell

# --------------------------------------------------------------------------------------------
# Constants

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
RESOURCE_CMD = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
A_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
A_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
A_COMMAND = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command"
A_RECEIVE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"
A_SEND = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send"
A_SIGNAL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal"
STATE_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
STATE_RUNNING = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"
# Most output bytes one Receive carries (base64 in an envelope under 150 KiB MaxEnvelopeSize).
RECEIVE_CHUNK = 48 * 1024
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
ENC_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = b"--Encrypted Boundary"
MAX_BODY = 512 * 1024
COMPUTER = "WINSTANDIN"
DOMAIN_SID = "S-1-5-21-3623811015-3361044348-30300820"
QUOTES = "'\u2018\u2019\u201a\u201b"
PS_NS = "http://schemas.microsoft.com/powershell/2004/04"
ONLY_POWERSHELL = "the stand-in runs only powershell -EncodedCommand"


def log(msg):
    print(f"standin: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# State: local users and groups, persisted in DIR/state.json


class State:
    def __init__(self, directory):
        self.dir = directory
        self.path = os.path.join(directory, "state.json")
        self.ntlm_path = os.path.join(directory, "ntlm-users")
        self.lock = threading.RLock()
        self.logoff_module = False  # --logoff-module
        self.save_hooks = []  # called (under the lock) after every save, e.g. RdpSam.write
        self.file_users = read_users_file(os.path.join(directory, "users"))
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                self.data = json.load(f)
        else:
            self.data = self.initial()
        self.save()

    def initial(self):
        now = ms_now()
        data = {"computer": COMPUTER, "next_rid": 1001, "users": [], "groups": []}
        data["users"].append(user_record("Administrator", f"{DOMAIN_SID}-500", None, now,
                                         "Built-in account for administering the computer/domain"))
        for domain, name, password in self.file_users:
            u = user_record(name, f"{DOMAIN_SID}-{data['next_rid']}", password, now, "")
            u["LoginDomain"] = domain
            data["next_rid"] += 1
            data["users"].append(u)
        data["groups"] = [
            {"Name": "Administrators", "SID": "S-1-5-32-544",
             "Description": "Administrators have complete and unrestricted access to the computer/domain",
             "Members": ["Administrator"] + [n for _, n, _ in self.file_users]},
            {"Name": "Remote Desktop Users", "SID": "S-1-5-32-555",
             "Description": "Members in this group are granted the right to logon remotely", "Members": []},
            {"Name": "Users", "SID": "S-1-5-32-545",
             "Description": "Users are prevented from making accidental or intentional system-wide changes "
                            "and can run most applications", "Members": []},
        ]
        return data

    def save(self):
        with self.lock:
            write_private(self.path, json.dumps(self.data, indent=1, ensure_ascii=False))
            self.write_ntlm_file()
            for hook in self.save_hooks:
                hook()

    def write_ntlm_file(self):
        """The NTLM_USER_FILE pyspnego reads at every authentication: each user with a password
        (login_ok checks Enabled), under its users-file domain, the computer name, '.' and no
        domain. In pyspnego's hash form, `[DOMAIN\\]USER:UID:LMHASH:NTHASH:FLAGS:LCT` (smbpasswd's
        layout), not `DOMAIN:USER:PASSWORD`: it holds any password, `:` and line breaks included
        (Latch's generated passwords may contain `:`), and no password in clear."""
        lines = []
        for u in self.data["users"]:
            pw, name = u.get("Password"), u["Name"]
            if pw is None or any(c in name for c in ":\\\r\n"):
                continue  # the file format cannot hold the name (Basic still works)
            lm, nt = ntlm_hashes(pw)
            for d in dict.fromkeys([u.get("LoginDomain") or "", COMPUTER, ".", ""]):
                if any(c in d for c in "\\\r\n"):
                    continue
                user = f"{d}\\{name}" if d else name
                lines.append(f"{user}:0:{lm.hex().upper()}:{nt.hex().upper()}:[U]:LCT-00000000")
        write_private(self.ntlm_path, "\n".join(lines) + "\n")

    def set_password(self, name, password):
        """Record `password` as local user `name`'s (found ignoring case), saved at once: NTLM and
        Basic logins then take it and no longer the previous one. False if there is no such user."""
        with self.lock:
            u = self.user(name)
            if u is None:
                return False
            u["Password"] = password
            u["PasswordLastSet"] = ms_now()
            self.save()
            return True

    def user(self, name):
        for u in self.data["users"]:
            if u["Name"].lower() == name.lower():
                return u
        return None

    def group(self, name):
        for g in self.data["groups"]:
            if g["Name"].lower() == name.lower():
                return g
        return None

    def login_ok(self, name, password=None):
        """Does local user `name` (DOMAIN\\ prefix ignored) exist, enabled (and, for Basic, with
        this password)?"""
        if "\\" in name:
            name = name.split("\\", 1)[1]
        with self.lock:
            u = self.user(name)
            if u is None or not u["Enabled"]:
                return False
            if password is not None:
                return u.get("Password") is not None and u["Password"] == password
            return True


def ntlm_hashes(password):
    """(LM, NT) one-way hashes of `password` (LMOWFv1, NTOWFv1), as pyspnego computes them from a
    password in its users file; directly, since its own functions would take a password that
    looks like `LMHASH:NTHASH` for the hashes themselves."""
    from spnego._ntlm_raw.crypto import des
    from spnego._ntlm_raw.md4 import md4
    nt = md4(password.encode("utf-16-le", errors="surrogatepass"))
    b = password.upper().encode("utf-8", errors="surrogatepass").ljust(14, b"\0")[:14]
    return des(b[:7], b"KGS!@#$%") + des(b[7:], b"KGS!@#$%"), nt


def write_private(path, text):
    """Replace `path` atomically (a temp file in the same directory, then rename) with `text`,
    mode 0600 whatever the umask (state.json holds passwords in clear, ntlm-users their hashes).
    The temp file is made afresh (O_EXCL): a leftover one cannot lend it another mode or owner."""
    tmp = path + ".tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def read_users_file(path):
    users = []
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            if not line.strip():
                continue
            parts = line.split(":", 2)
            if len(parts) != 3:
                raise SystemExit(f"standin: {path}: a line is not DOMAIN:USER:PASSWORD")
            users.append(tuple(parts))
    return users


def ms_now():
    return int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)


def user_record(name, sid, password, now, description):
    return {"Name": name, "SID": sid, "Enabled": True, "Description": description, "FullName": "",
            "AccountExpires": None, "PasswordLastSet": now, "PasswordNeverExpires": False,
            "UserMayChangePassword": True, "Password": password, "LoginDomain": None}


# --------------------------------------------------------------------------------------------
# --rdp-sam: the FreeRDP SAM file a freerdp-shadow-cli /sec:nla checks RDP logins against


class RdpSam:
    """Keeps PATH a FreeRDP SAM file listing exactly the local users Windows would let log on over
    RDP: enabled, not expired (AccountExpires unset or in the future), with a password, and a
    member of one of `groups` (compared ignoring case, like Windows). Lines as `winpr-hash -u U -p P
    -f sam` writes them, `USER:::NTHASH:::` (USER:DOMAIN:LMHASH:NTHASH: no domain, so any client
    domain is accepted; no LM hash), USER as stored (FreeRDP compares names case-sensitively).
    Rewritten atomically (temp + rename, mode 0600, only when the content changes) after every
    state change and every second, so an expiry takes effect without any WinRM call: Windows
    enforces it itself. Holds NT hashes only, never passwords."""

    def __init__(self, state, path, groups):
        from spnego._ntlm_raw.crypto import ntowfv1  # MD4(UTF-16LE); hashlib has no MD4 on OpenSSL 3
        self.ntowf = ntowfv1
        self.state, self.path = state, os.path.abspath(path)
        self.groups = {g.strip().lower() for g in groups.split(",") if g.strip()}
        self.last = None
        state.save_hooks.append(self.write)

    def text(self):
        now = ms_now()
        data = self.state.data
        allowed = {m.lower() for g in data["groups"] if g["Name"].lower() in self.groups for m in g["Members"]}
        lines = []
        for u in data["users"]:
            name, password, expires = u["Name"], u.get("Password"), u.get("AccountExpires")
            if not u["Enabled"] or not password or (expires is not None and expires <= now):
                continue
            if name.lower() not in allowed or any(c in name for c in ":\r\n") or name.startswith("#"):
                continue  # not allowed, or a name the format cannot hold (`#` starts a comment)
            lines.append(f"{name}:::{self.ntowf(password).hex()}:::\n")
        return "".join(lines)

    def write(self):
        with self.state.lock:  # one writer at a time, and never an older view after a newer one
            text = self.text()
            if text == self.last and os.path.exists(self.path):
                return
            tmp = f"{self.path}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, self.path)
            self.last = text

    def start(self):
        self.write()

        def tick():
            while True:
                time.sleep(1)
                try:
                    self.write()
                except Exception as e:  # keep ticking (e.g. the directory is briefly gone)
                    log(f"rdp-sam: {type(e).__name__}: {e}")

        threading.Thread(target=tick, name="rdp-sam", daemon=True).start()


# --------------------------------------------------------------------------------------------
# TLS material


def ensure_tls(directory, cert_hash="sha256"):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_pem = os.path.join(directory, "ca.pem")
    cert_pem = os.path.join(directory, "server.pem")
    key_pem = os.path.join(directory, "server.key")
    if not (os.path.exists(ca_pem) and os.path.exists(cert_pem) and os.path.exists(key_pem)):
        now = datetime.datetime.now(datetime.timezone.utc)
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Latch WinRM stand-in test CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(start).not_valid_after(end)
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False,
                                           encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(),
                               "sha512": hashes.SHA512()}[cert_hash]))
        with open(key_pem + ".tmp", "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(cert_pem + ".tmp", "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(ca_pem + ".tmp", "wb") as f:
            f.write(ca.public_bytes(serialization.Encoding.PEM))
        for p in (key_pem, cert_pem, ca_pem):  # ca.pem last: its presence means "all there"
            os.replace(p + ".tmp", p)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_pem, key_pem)
    with open(cert_pem, "rb") as f:
        der = ssl.PEM_cert_to_DER_cert(f.read().decode())
    # RFC 5929 tls-server-end-point: the certificate hashed with its signature's hash
    # (SHA-256 for MD5, SHA-1 and SHA-256).
    signed_with = x509.load_der_x509_certificate(der).signature_hash_algorithm.name
    digest = {"sha384": hashlib.sha384, "sha512": hashlib.sha512}.get(signed_with, hashlib.sha256)
    return ctx, digest(der).digest()


# --------------------------------------------------------------------------------------------
# The PowerShell script: exactly Latch's form, read with tree-sitter-powershell

PS_LANGUAGE = tree_sitter.Language(tree_sitter_powershell.language())
WRAPPERS = {"pipeline", "pipeline_chain", "logical_expression", "bitwise_expression",
            "comparison_expression", "additive_expression", "multiplicative_expression",
            "format_expression", "range_expression", "array_literal_expression", "unary_expression",
            "left_assignment_expression"}
CMDLET_RE = re.compile(r"[A-Za-z]+-[A-Za-z0-9]+\Z")
PARAM_RE = re.compile(r"-([A-Za-z][A-Za-z0-9]*)\Z")


class Refused(Exception):
    pass


def _text(node):
    return node.text.decode("utf-8")


def _leaf(node):
    """Descend through single-child expression wrappers to the node that means something."""
    while node.type in WRAPPERS and node.child_count == 1:
        node = node.children[0]
    return node


def _expect(node, kind, what):
    if node.type != kind:
        raise Refused(f"{what}: expected {kind}, found {node.type} `{_text(node)[:40]}`")
    return node


def _first_problem(node):
    if node.is_error or node.is_missing:
        return node
    for c in node.children:
        p = _first_problem(c)
        if p is not None:
            return p
    return None


def unquote(text):
    """A single-quoted literal as PowerShell's tokenizer reads it: any of the five quote
    characters followed by another is one (the second) character; otherwise it ends the string,
    and that must be the node's last character."""
    if len(text) < 2 or text[0] != "'":
        raise Refused("a string that is not a single-quoted literal")
    out, i = [], 1
    while i < len(text):
        c = text[i]
        if c in QUOTES:
            if i + 1 < len(text) and text[i + 1] in QUOTES:
                out.append(text[i + 1])
                i += 2
                continue
            if i != len(text) - 1:
                raise Refused("a quote character ends the literal early (PowerShell reads what follows as code)")
            return "".join(out)
        out.append(c)
        i += 1
    raise Refused("an unterminated string literal")


def _string(node, what):
    node = _leaf(node)
    _expect(node, "string_literal", what)
    if node.child_count != 1 or node.children[0].type != "verbatim_string_characters":
        raise Refused(f"{what}: not a single-quoted (verbatim) string")
    return unquote(_text(node.children[0]))


def _elements(command, colons=None):
    """The command's elements without the single-space separators (anything else refused).
    With `colons` (a set), a `:` right after a parameter (`-Confirm:$false`) is allowed too,
    and the index of the element after it is added to the set."""
    out = []
    for c in command.children:
        if c.type == "command_name":
            continue
        if c.type != "command_elements":
            raise Refused(f"unexpected {c.type} in a command")
        for e in c.children:
            if e.type == "command_argument_sep":
                text = _text(e)
                if text == ":" and colons is not None and out and out[-1].type == "command_parameter" \
                        and e.start_byte == out[-1].end_byte:
                    colons.add(len(out))
                    continue
                if text != " ":
                    raise Refused("arguments separated by something other than one space")
                continue
            out.append(e)
    return out


def _command_name(command):
    name = command.child_by_field_name("command_name")
    if name is None or name.type != "command_name" or name.named_child_count:
        raise Refused("a command name that is not a plain word")
    return _text(name)


def _single_command(pipeline, what):
    """pipeline → pipeline_chain → one command, nothing else."""
    _expect(pipeline, "pipeline", what)
    if pipeline.child_count != 1:
        raise Refused(f"{what}: more than one pipeline element")
    chain = _expect(pipeline.children[0], "pipeline_chain", what)
    if chain.child_count != 1:
        raise Refused(f"{what}: a pipeline (|) or chain")
    return _expect(chain.children[0], "command", what)


def _value(node):
    """One argument value: (type, value)."""
    leaf = _leaf(node)
    t = leaf.type
    if t == "string_literal":
        return "text", _string(leaf, "a text value")
    if t == "integer_literal":
        return "integer", _integer(leaf)
    if t == "expression_with_unary_operator":
        if (leaf.child_count == 2 and leaf.children[0].type == "-" and _text(leaf.children[0]) == "-"
                and leaf.children[1].type == "unary_expression"):
            inner = _leaf(leaf.children[1])
            if inner.type == "integer_literal":
                return "integer", -_integer(inner)
        raise Refused(f"an expression `{_text(leaf)[:40]}` where a literal belongs")
    if t == "variable":
        v = _text(leaf)
        if v == "$true":
            return "boolean", True
        if v == "$false":
            return "boolean", False
        m = re.fullmatch(r"\$latch([0-9]+)", v)
        if m:
            return "stdin-secret", int(m.group(1))
        raise Refused(f"a variable {v[:40]} where a literal belongs")
    if t == "array_expression":
        return "text-list", _string_list(leaf)
    if t == "parenthesized_expression":
        raise Refused("an expression where a value belongs: a secret in the script text "
                      "(Latch sends each secret on stdin, as $latchN)")
    raise Refused(f"a {t} `{_text(leaf)[:40]}` where a literal belongs")


def _integer(node):
    if node.child_count != 1 or node.children[0].type != "decimal_integer_literal":
        raise Refused(f"an integer that is not plain decimal: {_text(node)[:40]}")
    digits = _text(node.children[0])
    if not digits.isascii() or not digits.isdigit():
        raise Refused(f"an integer with a suffix: {digits[:40]}")
    return int(digits)


def _string_list(node):
    kids = node.children
    if not kids or kids[0].type != "@(" or kids[-1].type != ")":
        raise Refused("a malformed @() array")
    inner = kids[1:-1]
    if not inner:
        return []
    if len(inner) != 1 or inner[0].type != "statement_list":
        raise Refused("an @() array with more than a list of strings")
    stmts = inner[0].children
    if len(stmts) != 1 or stmts[0].type != "pipeline" or stmts[0].child_count != 1:
        raise Refused("an @() array with more than one statement")
    chain = stmts[0].children[0]
    if chain.type != "pipeline_chain" or chain.child_count != 1:
        raise Refused("an @() array holding a pipeline")
    leaf = chain.children[0]
    while leaf.type in WRAPPERS - {"array_literal_expression"} and leaf.child_count == 1:
        leaf = leaf.children[0]
    _expect(leaf, "array_literal_expression", "an @() array")
    items = []
    for i, c in enumerate(leaf.children):
        if i % 2 == 1:
            if c.type != ",":
                raise Refused("array items separated by something other than a comma")
            continue
        _expect(c, "unary_expression", "an array item")
        items.append(_string(c, "an array item"))
    if len(leaf.children) % 2 == 0:
        raise Refused("an array ending in a comma")
    return items


def stdin_prelude(count):
    """The lines Latch puts between line 1 and the call to read `count` secrets from stdin
    (crates/cap-winrm/src/lib.rs, `stdin_prelude`): compared as text, exactly."""
    lines = ["$latch = @($input)",
             f"if ($latch.Count -ne {count}) {{ throw 'Latch: stdin did not carry the {count} secrets' }}"]
    for i in range(count):
        lines.append(f"$latch{i} = [Security.SecureString]::new(); foreach ($c in "
                     f"[Text.Encoding]::UTF8.GetChars([Convert]::FromBase64String($latch[{i}]))) "
                     f"{{ $latch{i}.AppendChar($c) }}; $latch{i}.MakeReadOnly()")
    lines.append("$latch = $null")
    return lines


def parse_script(script):
    """(cmdlet, [(name, {"type","value"})], secrets on stdin) of Latch's script, or Refused. A
    parameter `{"type": "stdin-secret", "value": N}` is the Nth line of stdin."""
    src = script.encode("utf-8")
    tree = tree_sitter.Parser(PS_LANGUAGE).parse(src)
    root = tree.root_node
    problem = _first_problem(root)
    if problem is not None or root.has_error:
        where = problem.start_point if problem is not None else (0, 0)
        raise Refused(f"a parse error at line {where[0] + 1}, column {where[1] + 1}"
                      + (" (tree-sitter-powershell cannot read a NUL character)" if "\0" in script else ""))
    first, _, rest = script.partition("\n")
    if rest.startswith("$latch = @($input)\n"):
        m = re.match(r"\$latch = @\(\$input\)\nif \(\$latch\.Count -ne ([0-9]+)\) \{", rest)
        stdin_count = int(m.group(1)) if m else 0
        prelude = "\n".join(stdin_prelude(stdin_count)) + "\n"
        if stdin_count < 1 or not rest.startswith(prelude):
            raise Refused("the lines between line 1 and the call are not exactly Latch's stdin prelude")
        cmdlet, params, _ = parse_script(first + "\n" + rest[len(prelude):])
        used = sorted(v["value"] for _, v in params if v["type"] == "stdin-secret")
        if used != list(range(stdin_count)):
            raise Refused(f"the call uses the stdin secrets {used}, not each of the {stdin_count} once")
        return cmdlet, params, stdin_count
    if root.type != "program" or root.child_count != 1 or root.children[0].type != "statement_list":
        raise Refused("not a single statement list")
    stmts = root.children[0].children
    if len(stmts) != 2 or any(s.type != "pipeline" for s in stmts):
        raise Refused(f"{len(stmts)} statements or separators where the form has 2 statements")
    first, second = stmts
    if first.start_byte != 0 or second.end_byte != len(src) or src[first.end_byte:second.start_byte] != b"\n":
        raise Refused("the two statements are not two lines of their own")
    # Line 1: $ProgressPreference = 'SilentlyContinue'
    assign = _expect(first.children[0] if first.child_count == 1 else first, "assignment_expression", "line 1")
    if assign.child_count != 3:
        raise Refused("line 1 is not a plain assignment")
    left, op, right = assign.children
    if _leaf(left).type != "variable" or _text(left) != "$ProgressPreference":
        raise Refused("line 1 does not assign $ProgressPreference")
    if _text(op) != "=" or _string(right, "line 1") != "SilentlyContinue" or \
            _text(first) != "$ProgressPreference = 'SilentlyContinue'":
        raise Refused("line 1 is not $ProgressPreference = 'SilentlyContinue'")
    # Line 2: ConvertTo-Json -Compress -Depth 3 -InputObject @(CMDLET ...)
    outer = _single_command(second, "line 2")
    if _command_name(outer) != "ConvertTo-Json":
        raise Refused("line 2 is not ConvertTo-Json")
    els = _elements(outer)
    if (len(els) != 5 or [e.type for e in els] != ["command_parameter", "command_parameter",
                                                   "array_literal_expression", "command_parameter",
                                                   "array_literal_expression"]
            or [_text(els[i]) for i in (0, 1, 3)] != ["-Compress", "-Depth", "-InputObject"]
            or _leaf(els[2]).type != "integer_literal" or _integer(_leaf(els[2])) != 3):
        raise Refused("line 2 is not ConvertTo-Json -Compress -Depth 3 -InputObject @(…)")
    arr = _leaf(els[4])
    _expect(arr, "array_expression", "-InputObject")
    kids = arr.children
    if len(kids) != 3 or kids[1].type != "statement_list" or kids[1].child_count != 1:
        raise Refused("-InputObject @(…) does not hold exactly one command")
    cmd = _single_command(kids[1].children[0], "the cmdlet call")
    cmdlet = _command_name(cmd)
    if not CMDLET_RE.match(cmdlet):
        raise Refused(f"the cmdlet {cmdlet[:64]!r} is not of the form Verb-Noun")
    params = []
    colons = set()
    els = _elements(cmd, colons)
    i = 0
    while i < len(els):
        e = els[i]
        if e.type != "command_parameter":
            raise Refused(f"a positional argument `{_text(e)[:40]}` (the form names every parameter)")
        m = PARAM_RE.match(_text(e))
        if not m:
            raise Refused(f"a parameter name {_text(e)[:40]!r} that is not -Name")
        if i + 1 in colons:
            # -Name:$true / -Name:$false: the form Latch writes booleans in (a [switch] takes it too)
            t, v = _value(els[i + 1])
            if t != "boolean":
                raise Refused(f"-{m.group(1)}: takes only $true or $false")
            params.append([m.group(1), {"type": t, "value": v}])
            i += 2
        elif i + 1 < len(els) and els[i + 1].type != "command_parameter":
            t, v = _value(els[i + 1])
            if t == "boolean":
                raise Refused(f"-{m.group(1)} $true/$false with a space (Latch writes -Name:$value)")
            params.append([m.group(1), {"type": t, "value": v}])
            i += 2
        else:
            params.append([m.group(1), {"type": "switch", "value": True}])
            i += 1
    return cmdlet, params, 0


# --------------------------------------------------------------------------------------------
# PowerShell output: ConvertTo-Json (Windows PowerShell 5.1) and CLIXML error records


def ps_json(objects):
    text = json.dumps(objects, ensure_ascii=False, separators=(",", ":"))
    # JavaScriptSerializer (PowerShell 5.1) escapes these.
    for c, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(c, esc)
    return re.sub(r'"\\u0000DATE(-?\d+)\\u0000"', r'"\\/Date(\1)\\/"', text)


def ps_date(ms):
    return None if ms is None else f"\0DATE{ms}\0"


def clixml_string(s):
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "_" and s[i + 1:i + 2] == "x":
            out.append("_x005F_")
        elif ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF or c in "\ufffe\uffff":
            out.append(f"_x{ord(c):04X}_")
        else:
            out.append(xml_escape(c))
        i += 1
    return "".join(out)


class PsError:
    def __init__(self, cmdlet, message, fqid, category="NotSpecified", target="", exception="", command_class=""):
        self.cmdlet, self.message, self.fqid = cmdlet, message, fqid
        self.category, self.target, self.exception = category, target, exception
        self.command_class = command_class

    def lines(self):
        first = f"{self.cmdlet} : {self.message}" if self.cmdlet else self.message
        cls = self.command_class or (f"Microsoft.PowerShell.Commands.{self.cmdlet.replace('-', '')}Command"
                                     if self.cmdlet else "")
        return [first,
                f"    + CategoryInfo          : {self.category}: ({self.target}) [{self.cmdlet}], {self.exception}",
                f"    + FullyQualifiedErrorId : {self.fqid}{',' + cls if cls else ''}",
                " "]


PROGRESS = ('<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
            '<T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for '
            'first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR>'
            '</MS></Obj>')


def clixml(errors, progress=False):
    if not errors and not progress:
        return ""
    parts = [PROGRESS] if progress else []
    for e in errors:
        for line in e.lines():
            parts.append(f'<S S="Error">{clixml_string(line + chr(13) + chr(10))}</S>')
    return f'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="{PS_NS}">' + "".join(parts) + "</Objs>"


# --------------------------------------------------------------------------------------------
# The cmdlets, carried out against the state

BAD_NAME_CHARS = set('"/\\[]:;|=,+*?<>@')


class Terminating(Exception):
    def __init__(self, error):
        self.error = error


def user_json(u):
    return {"AccountExpires": ps_date(u["AccountExpires"]), "Description": u["Description"],
            "Enabled": u["Enabled"], "FullName": u.get("FullName", ""),
            "PasswordChangeableDate": ps_date(u["PasswordLastSet"]),
            "PasswordExpires": None if u["PasswordNeverExpires"] else ps_date(u["PasswordLastSet"] + 42 * 86400000),
            "UserMayChangePassword": u["UserMayChangePassword"], "PasswordRequired": u.get("Password") is not None,
            "PasswordLastSet": ps_date(u["PasswordLastSet"]), "LastLogon": None,
            "Name": u["Name"], "SID": u["SID"], "PrincipalSource": "Local", "ObjectClass": "User"}


def group_json(g):
    return {"Description": g["Description"], "Name": g["Name"], "SID": g["SID"],
            "PrincipalSource": "Local", "ObjectClass": "Group"}


# name -> {param: (kind, mandatory)}; kind: text, texts, secure, switch, bool, date
CMDLETS = {
    "Get-LocalUser": {"Name": ("texts", False)},
    "New-LocalUser": {"Name": ("text", True), "Password": ("secure", False), "NoPassword": ("switch", False),
                      "Description": ("text", False), "FullName": ("text", False),
                      "AccountExpires": ("date", False), "AccountNeverExpires": ("switch", False),
                      "PasswordNeverExpires": ("switch", False), "UserMayNotChangePassword": ("switch", False),
                      "Disabled": ("switch", False)},
    "Set-LocalUser": {"Name": ("text", True), "Password": ("secure", False), "Description": ("text", False),
                      "FullName": ("text", False), "AccountExpires": ("date", False),
                      "AccountNeverExpires": ("switch", False), "PasswordNeverExpires": ("bool", False),
                      "UserMayChangePassword": ("bool", False)},
    "Remove-LocalUser": {"Name": ("texts", True)},
    "Enable-LocalUser": {"Name": ("texts", True)},
    "Disable-LocalUser": {"Name": ("texts", True)},
    "Get-LocalGroup": {"Name": ("texts", False)},
    "Get-LocalGroupMember": {"Group": ("text", False), "Name": ("text", False), "Member": ("text", False)},
    "Add-LocalGroupMember": {"Group": ("text", False), "Name": ("text", False), "Member": ("texts", True)},
    "Remove-LocalGroupMember": {"Group": ("text", False), "Name": ("text", False), "Member": ("texts", True)},
    # An admin-installed wrapper (docs/windows/LatchSessions.psm1), only with --logoff-module.
    "Disconnect-LatchSession": {"UserName": ("text", True)},
}
TYPE_NAMES = {"text": "System.String", "texts": "System.String[]", "secure": "System.Security.SecureString",
              "bool": "System.Boolean", "date": "System.DateTime"}


def bind(cmdlet, params):
    spec = CMDLETS[cmdlet]
    bound = {}

    def fail(message, fqid, category="InvalidArgument", target="", exception="ParameterBindingException"):
        raise Terminating(PsError(cmdlet, message, fqid, category, target, exception))

    for name, v in params:
        key = next((k for k in spec if k.lower() == name.lower()), None)
        if key is None:
            fail(f"A parameter cannot be found that matches parameter name '{name}'.", "NamedParameterNotFound",
                 target=":)")
        if key in bound:
            fail(f"Cannot bind parameter because parameter '{key}' is specified more than once. To provide "
                 "multiple values to parameters that can accept multiple values, use the array syntax. For "
                 "example, \"-parameter value1,value2,value3\".", "ParameterAlreadyBound", target=":)")
        kind, t, value = spec[key][0], v["type"], v["value"]
        if kind == "switch":
            if t == "boolean":  # -Switch:$false is the switch not given; -Switch:$true, given
                bound[key] = bool(value)
                continue
            if t != "switch":
                fail(f"A positional parameter cannot be found that accepts argument '{value}'.",
                     "PositionalParameterNotFound", target=":)")
            bound[key] = True
            continue
        if t == "switch":
            fail(f"Missing an argument for parameter '{key}'. Specify a parameter of type '{TYPE_NAMES[kind]}' "
                 "and try again.", "MissingArgument", target=":)")
        if kind in ("text", "texts", "date"):
            if t == "integer":
                value = str(value)
            elif t == "boolean":
                value = "True" if value else "False"
            elif t == "text-list" and kind == "texts":
                value = list(value)
            elif t == "text-list" and kind != "texts":
                if len(value) == 1:
                    value = value[0]
                else:
                    fail(f"Cannot convert 'System.Object[]' to the type '{TYPE_NAMES[kind]}' required by parameter "
                         f"'{key}'. Specified method is not supported.", "CannotConvertArgument", target=":)")
            elif t == "secure-string":
                value = "System.Security.SecureString"
            if kind == "texts" and not isinstance(value, list):
                value = [value]
            if kind == "date":
                value = parse_date(cmdlet, key, value)
        elif kind == "secure":
            if t != "secure-string":
                fail(f"Cannot bind parameter '{key}'. Cannot convert the \"{value}\" value of type "
                     f"\"System.String\" to type \"System.Security.SecureString\".", "CannotConvertArgumentNoMessage",
                     target=":)")
        elif kind == "bool":
            if t != "boolean":
                fail(f"Cannot process argument transformation on parameter '{key}'. Cannot convert value "
                     f"\"System.String\" to type \"System.Boolean\". Boolean parameters accept only Boolean values "
                     "and numbers, such as $True, $False, 1 or 0.", "ParameterArgumentTransformationError",
                     target=":)")
        bound[key] = value
    if cmdlet.endswith("GroupMember"):
        g = [bound.pop(k) for k in ("Group", "Name") if k in bound]
        if len(g) > 1:
            fail("Parameter set cannot be resolved using the specified named parameters.", "AmbiguousParameterSet",
                 target=":)")
        if g:
            bound["Group"] = g[0]
        missing = [] if g else ["Name"]
    else:
        missing = [k for k, (_, mand) in spec.items() if mand and k not in bound]
    if cmdlet == "New-LocalUser" and "Password" not in bound and "NoPassword" not in bound and "Name" in bound:
        missing.append("Password")
    if missing:
        fail("Cannot process command because of one or more missing mandatory parameters: "
             f"{' '.join(missing)}.", "MissingMandatoryParameter", target=":)")
    return bound


def parse_date(cmdlet, key, text):
    t = text.strip()
    for fmt in (None, "%m/%d/%Y %H:%M:%S", "%m/%d/%Y"):
        try:
            d = datetime.datetime.fromisoformat(t.replace("Z", "+00:00")) if fmt is None \
                else datetime.datetime.strptime(t, fmt)
            if d.tzinfo is None:
                d = d.replace(tzinfo=datetime.timezone.utc)
            return int(d.timestamp() * 1000)
        except ValueError:
            continue
    raise Terminating(PsError(cmdlet, f"Cannot bind parameter '{key}'. Cannot convert value \"{text}\" to type "
                                      "\"System.DateTime\". Error: \"String was not recognized as a valid DateTime.\"",
                              "CannotConvertArgumentNoMessage", "InvalidArgument", ":)", "ParameterBindingException"))


def valid_name(name):
    return 1 <= len(name) <= 20 and not (set(name) & BAD_NAME_CHARS) and name.strip(". ") != "" \
        and all(ord(c) >= 0x20 for c in name)


def password_ok(password, name):
    if len(password) < 8:
        return False
    classes = sum([any(c.isupper() for c in password), any(c.islower() for c in password),
                   any(c.isdigit() for c in password), any(not c.isalnum() for c in password)])
    if classes < 3:
        return False
    if len(name) >= 3 and name.lower() in password.lower():
        return False
    return True


PASSWORD_POLICY = ("The password does not meet the password policy requirements. Check the minimum password "
                   "length, password complexity and password history requirements.")


def run_cmdlet(state, cmdlet, params):
    """(objects, errors, exit_code)."""
    if cmdlet not in CMDLETS or (cmdlet == "Disconnect-LatchSession" and not state.logoff_module):
        e = PsError(cmdlet, f"The term '{cmdlet}' is not recognized as the name of a cmdlet, function, script "
                            "file, or operable program. Check the spelling of the name, or if a path was included, "
                            "verify that the path is correct and try again.", "CommandNotFoundException",
                    "ObjectNotFound", f"{cmdlet}:String", "CommandNotFoundException", command_class="")
        return [], [e], 1
    try:
        bound = bind(cmdlet, params)
    except Terminating as t:
        return [], [t.error], 1
    objects, errors = [], []
    cls = f"Microsoft.PowerShell.Commands.{cmdlet.replace('-', '')}Command"

    def err(message, fqid, category, target, exception):
        errors.append(PsError(cmdlet, message, fqid, category, target, exception, cls))

    def user_not_found(name):
        err(f"User {name} was not found.", "UserNotFound", "ObjectNotFound", f"{name}:String", "UserNotFoundException")

    def group_not_found(name):
        err(f"Group {name} was not found.", "GroupNotFound", "ObjectNotFound", f"{name}:String",
            "GroupNotFoundException")

    def member_user(member):
        m = member
        for prefix in (COMPUTER + "\\", ".\\"):
            if m.lower().startswith(prefix.lower()):
                m = m[len(prefix):]
        if "\\" in m:
            dom, rest = m.split("\\", 1)
            u = state.user(rest)
            if u is not None and (u.get("LoginDomain") or "").lower() == dom.lower():
                return u
            return None
        return state.user(m)

    changed = False
    with state.lock:
        if cmdlet in ("Get-LocalUser", "Get-LocalGroup"):
            items = state.data["users" if cmdlet == "Get-LocalUser" else "groups"]
            render = user_json if cmdlet == "Get-LocalUser" else group_json
            names = bound.get("Name")
            if names is None:
                objects = [render(x) for x in sorted(items, key=lambda x: x["Name"].lower())]
            for n in names or []:
                if any(c in n for c in "*?["):
                    objects += [render(x) for x in items if fnmatch.fnmatch(x["Name"].lower(), n.lower())]
                    continue
                x = state.user(n) if cmdlet == "Get-LocalUser" else state.group(n)
                if x is None:
                    (user_not_found if cmdlet == "Get-LocalUser" else group_not_found)(n)
                else:
                    objects.append(render(x))
        elif cmdlet == "New-LocalUser":
            name = bound["Name"]
            password = bound.get("Password")
            if not valid_name(name):
                err(f"The name {name} is not valid.", "InvalidName", "InvalidArgument", f"{name}:String",
                    "InvalidNameException")
            elif state.user(name) is not None or state.group(name) is not None:
                err(f"User {name} already exists.", "UserExists", "ResourceExists", f"{name}:String",
                    "UserExistsException")
            elif password is not None and not password_ok(password, name):
                err(PASSWORD_POLICY, "InvalidPassword", "InvalidOperation", ":)", "InvalidPasswordException")
            else:
                d = state.data
                u = user_record(name, f"{DOMAIN_SID}-{d['next_rid']}", password, ms_now(),
                                bound.get("Description", ""))
                d["next_rid"] += 1
                u["FullName"] = bound.get("FullName", "")
                u["Enabled"] = not bound.get("Disabled", False)
                u["AccountExpires"] = bound.get("AccountExpires")
                u["PasswordNeverExpires"] = bool(bound.get("PasswordNeverExpires"))
                u["UserMayChangePassword"] = not bound.get("UserMayNotChangePassword", False)
                d["users"].append(u)
                objects.append(user_json(u))
                changed = True
        elif cmdlet == "Set-LocalUser":
            u = state.user(bound["Name"])
            if u is None:
                user_not_found(bound["Name"])
            elif "Password" in bound and not password_ok(bound["Password"], u["Name"]):
                err(PASSWORD_POLICY, "InvalidPassword", "InvalidOperation", ":)", "InvalidPasswordException")
            else:
                if "Password" in bound:
                    u["Password"] = bound["Password"]
                    u["PasswordLastSet"] = ms_now()
                for k in ("Description", "FullName", "AccountExpires", "PasswordNeverExpires",
                          "UserMayChangePassword"):
                    if k in bound:
                        u[k] = bound[k]
                if bound.get("AccountNeverExpires"):
                    u["AccountExpires"] = None
                changed = True
        elif cmdlet in ("Remove-LocalUser", "Enable-LocalUser", "Disable-LocalUser"):
            for n in bound["Name"]:
                u = state.user(n)
                if u is None:
                    user_not_found(n)
                elif cmdlet == "Remove-LocalUser":
                    if u["SID"].endswith("-500"):
                        err("Cannot perform this operation on built-in accounts.", "AccessDenied",
                            "PermissionDenied", f"{n}:LocalUser", "AccessDeniedException")
                        continue
                    state.data["users"].remove(u)
                    for g in state.data["groups"]:
                        g["Members"] = [m for m in g["Members"] if m.lower() != u["Name"].lower()]
                    changed = True
                else:
                    u["Enabled"] = cmdlet == "Enable-LocalUser"
                    changed = True
        elif cmdlet == "Disconnect-LatchSession":
            # The stand-in has no interactive sessions to end (the RDP check's shadow server
            # has none per user): the call is recorded and answers none logged off.
            pass
        elif cmdlet.endswith("LocalGroupMember"):
            g = state.group(bound["Group"])
            if g is None:
                group_not_found(bound["Group"])
            elif cmdlet == "Get-LocalGroupMember":
                for m in g["Members"]:
                    u = state.user(m)
                    if u is None:
                        continue
                    if "Member" in bound and not fnmatch.fnmatch(u["Name"].lower(),
                                                                 bound["Member"].lower().split("\\")[-1]):
                        continue
                    objects.append({"Name": f"{COMPUTER}\\{u['Name']}", "SID": u["SID"],
                                    "PrincipalSource": "Local", "ObjectClass": "User"})
            else:
                for member in bound["Member"]:
                    u = member_user(member)
                    if u is None:
                        err(f"Principal {member} was not found.", "PrincipalNotFound", "ObjectNotFound",
                            f"{member}:String", "PrincipalNotFoundException")
                        continue
                    present = any(m.lower() == u["Name"].lower() for m in g["Members"])
                    if cmdlet == "Add-LocalGroupMember":
                        if present:
                            err(f"{COMPUTER}\\{u['Name']} is already a member of group {g['Name']}.",
                                "MemberExists", "ResourceExists", f"{g['Name']}:String", "MemberExistsException")
                        else:
                            g["Members"].append(u["Name"])
                            changed = True
                    else:
                        if not present:
                            err(f"Member {member} was not found in group {g['Name']}.", "MemberNotFound",
                                "ObjectNotFound", f"{member}:String", "MemberNotFoundException")
                        else:
                            g["Members"] = [m for m in g["Members"] if m.lower() != u["Name"].lower()]
                            changed = True
        if changed:
            state.save()
    return objects, errors, 0


# --------------------------------------------------------------------------------------------
# The command line of a shell command


def finish(cmd, out, err, code):
    """Keep a command's output, encoded as its shell's codepage says."""
    encoding = "utf-8" if cmd["codepage"] == "65001" else "cp437"
    cmd.update({"stdout": out.encode(encoding, "replace"), "stderr": err.encode(encoding, "replace"),
                "exit": code})


def run_command_line(server, user, auth, transport, program, arguments):
    """(stdout str, stderr str, exit code) of one command, or — for a script that reads secrets
    from stdin — a pending job for `with_stdin`."""
    # cmd.exe sees one command line: the program, then the arguments (pywinrm sends them as one
    # Arguments element, Latch as one each).
    words = " ".join([program] + list(arguments)).split()
    exe = words[0].strip().strip('"')
    if exe.lower() not in ("powershell", "powershell.exe"):
        return "", ONLY_POWERSHELL + "\r\n", 1
    encoded = None
    i = 1
    while i < len(words):
        w = words[i].lower()
        if w in ("-nologo", "-noprofile", "-noninteractive", "-nop", "-noni"):
            i += 1
        elif w in ("-encodedcommand", "-enc", "-ec", "-e") and i + 1 < len(words) and encoded is None:
            encoded = words[i + 1]
            i += 2
        else:
            return "", ONLY_POWERSHELL + "\r\n", 1
    if encoded is None:
        return "", ONLY_POWERSHELL + "\r\n", 1
    try:
        raw = base64.b64decode(encoded, validate=True)
        if len(raw) % 2:
            raise ValueError("odd length")
        script = raw.decode("utf-16-le")
    except Exception:
        e = PsError("", "Cannot process the command because the value specified with -EncodedCommand is not "
                        "properly encoded. The value must be Base64 encoded.", "EncodedCommandError")
        return "", clixml([e]), 1
    record = {"user": user, "auth": auth, "transport": transport, "script": script, "cmdlet": None,
              "parameters": [], "refused": None, "exit_code": None, "stdin_secrets": 0}
    try:
        cmdlet, params, stdin_count = parse_script(script)
    except Refused as r:
        return refuse(server, record, r)
    record["cmdlet"], record["parameters"], record["stdin_secrets"] = cmdlet, params, stdin_count
    if stdin_count:
        # The script reads its secrets from stdin: it runs once stdin is closed (`Send`).
        return {"server": server, "user": user, "record": record, "count": stdin_count}
    return carry_out(server, user, record)


def refuse(server, record, why):
    record["refused"] = str(why)
    record["exit_code"] = 1
    server.record_call(record)
    e = PsError("", f"the stand-in refused the script: {why}", "StandInRefused", "InvalidOperation",
                ":)", "ParseException")
    return "", clixml([e]), 1


def with_stdin(job, stdin, console):
    """(stdout, stderr, exit code) of a pending command `job`, now that its stdin was closed with
    `stdin` (bytes). A console stdin (WINRS_CONSOLEMODE_STDIN TRUE) feeds `$input` nothing, and
    the script's own count check throws, as on Windows."""
    record, count = job["record"], job["count"]
    lines = [] if console else [line for line in stdin.decode("utf-8", "replace").split("\r\n") if line]
    if len(lines) != count:
        e = PsError("", f"Latch: stdin did not carry the {count} secrets", "Latch: stdin did not carry the "
                    f"{count} secrets", "OperationStopped", ":)", "RuntimeException")
        record["exit_code"] = 1
        record["refused"] = f"stdin carried {len(lines)} lines, not {count}"
        job["server"].record_call(record)
        return "", clixml([e]), 1
    try:
        values = [base64.b64decode(line, validate=True).decode("utf-8") for line in lines]
    except Exception:
        return refuse(job["server"], record, "a stdin line that is not base64 of UTF-8")
    # The script must hold no secret: every value came on stdin, and none is in the text.
    if any(len(v) >= 4 and v in record["script"] for v in values):
        return refuse(job["server"], record, "the script text holds a secret that stdin carried")
    params = []
    for name, v in record["parameters"]:
        if v["type"] == "stdin-secret":
            v = {"type": "secure-string", "value": values[v["value"]]}
        params.append([name, v])
    record["parameters"] = params
    return carry_out(job["server"], job["user"], record)


def carry_out(server, user, record):
    """(stdout, stderr, exit code) of the parsed call in `record`, recorded."""
    cmdlet, params = record["cmdlet"], record["parameters"]
    if server.ad is not None and cmdlet in server.ad.cmdlets:  # --ad-url: standin_ad.py
        record["script"], record["parameters"] = server.ad.redact(record["script"], params)
        objects, errors, code = server.ad.run(user, cmdlet, params)
    else:
        objects, errors, code = run_cmdlet(server.state, cmdlet, params)
    record["exit_code"] = code
    server.record_call(record)
    stdout = "" if code else ps_json(objects) + "\r\n"
    return stdout, clixml(errors, progress=server.progress_noise and code == 0), code


# --------------------------------------------------------------------------------------------
# WS-Management envelopes


ENVELOPE_NS = " ".join(f'xmlns:{p}="{NS[p]}"' for p in ("s", "a", "x", "w", "rsp", "p"))


def envelope(action, relates_to, body):
    return (f'<s:Envelope xml:lang="en-US" {ENVELOPE_NS}><s:Header><a:Action>{action}</a:Action>'
            f'<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID><a:To>{ANONYMOUS}</a:To>'
            f'<a:RelatesTo>{xml_escape(relates_to or "")}</a:RelatesTo></s:Header><s:Body>{body}</s:Body>'
            "</s:Envelope>")


class Fault(Exception):
    def __init__(self, code, subcode, reason, wsman_code, message, provider=False, detail=None, sender=True):
        super().__init__(message)
        self.code = "s:Sender" if sender else "s:Receiver"
        self.subcode, self.reason, self.wsman_code, self.message = subcode, reason, wsman_code, message
        self.provider, self.detail = provider, detail

    def xml(self, relates_to):
        msg = xml_escape(self.message)
        if self.provider:
            msg = (f'<f:ProviderFault provider="Shell cmd plugin" path="%systemroot%\\system32\\winrscmd.dll">'
                   f'{msg}</f:ProviderFault>')
        detail = f"<w:FaultDetail>{self.detail}</w:FaultDetail>" if self.detail else ""
        body = (f'<s:Fault><s:Code><s:Value>{self.code}</s:Value><s:Subcode><s:Value>{self.subcode}</s:Value>'
                f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{xml_escape(self.reason)}</s:Text>'
                f'</s:Reason><s:Detail>{detail}<f:WSManFault xmlns:f="{NS["f"]}" Code="{self.wsman_code}" '
                f'Machine="127.0.0.1"><f:Message>{msg}</f:Message></f:WSManFault></s:Detail></s:Fault>')
        return envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body)


def shell_not_found(shell_id):
    return Fault(None, "w:InvalidSelectors",
                 "The WS-Management service cannot process the request because the request contained invalid "
                 "selectors for the resource. ", 2150858843,
                 f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was "
                 "not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no "
                 "longer exists on the server. Provide the correct ShellId or create a new shell and retry the "
                 "operation. ", detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors")


def command_not_found():
    return Fault(None, "w:InvalidSelectors",
                 "The WS-Management service cannot process the request because the request contained invalid "
                 "selectors for the resource. ", 2150858843,
                 "The Windows Remote Shell received a request to perform an operation on a command identifier "
                 "that does not exist. Either the command has completed execution or the client specified an "
                 "invalid command identifier. ",
                 detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors")


def invalid_parameter():
    return Fault(None, "w:InvalidParameter", "The parameter is incorrect. ", 87, "The parameter is incorrect. ",
                 provider=True, detail="http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidValue")


def timed_out():
    text = "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  "
    return Fault(None, "w:TimedOut", text, 2150858793, text, sender=False)


def q(prefix, name):
    return f"{{{NS[prefix]}}}{name}"


class Shells:
    """Shells and commands, per server (not per connection)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.shells = {}


def handle_soap(server, conn, xml_bytes, user, auth, transport):
    """(status, reply xml, action) for one SOAP request."""
    action, relates = None, None
    try:
        try:
            root = ET.fromstring(xml_bytes)
        except ET.ParseError as e:
            raise Fault(None, "w:SchemaValidationError", "The SOAP XML in the message does not match the "
                        "corresponding XML schema definition. Change the XML and retry. ", 2150858817,
                        f"The WS-Management service cannot process the request because the XML is invalid: {e}. ")
        header = root.find(q("s", "Header"))
        body = root.find(q("s", "Body"))
        if root.tag != q("s", "Envelope") or header is None or body is None:
            raise Fault(None, "w:SchemaValidationError", "The SOAP XML in the message does not match the "
                        "corresponding XML schema definition. Change the XML and retry. ", 2150858817,
                        "The request is not a SOAP 1.2 envelope with a Header and a Body. ")
        action = (header.findtext(q("a", "Action")) or "").strip()
        relates = (header.findtext(q("a", "MessageID")) or "").strip()
        resource = (header.findtext(q("w", "ResourceURI")) or "").strip()
        options = {o.get("Name"): (o.text or "") for o in header.iter(q("w", "Option"))}
        selectors = {s.get("Name"): (s.text or "").strip() for s in header.iter(q("w", "Selector"))}
        if resource.lower() != RESOURCE_CMD:
            raise Fault(None, "w:DestinationUnreachable", "The WS-Management service cannot process the request "
                        "because the resource URI is not supported. ", 2150858770,
                        f"The WinRM stand-in does not support the resource URI {resource or '(none)'}: it serves "
                        f"only the cmd shell ({RESOURCE_CMD}). ")
        shells = server.shells
        if action == A_CREATE:
            sid = str(uuid.uuid4()).upper()
            codepage = options.get("WINRS_CODEPAGE", "437").strip()
            with shells.lock:
                shells.shells[sid] = {"codepage": codepage, "owner": user, "commands": {}}
            reply = (f'<x:ResourceCreated><a:Address>{xml_escape(server.address(transport))}</a:Address>'
                     f'<a:ReferenceParameters><w:ResourceURI>{RESOURCE_CMD}</w:ResourceURI><w:SelectorSet>'
                     f'<w:Selector Name="ShellId">{sid}</w:Selector></w:SelectorSet></a:ReferenceParameters>'
                     f'</x:ResourceCreated><rsp:Shell xmlns:rsp="{NS["rsp"]}"><rsp:ShellId>{sid}</rsp:ShellId>'
                     f'<rsp:ResourceUri>{RESOURCE_CMD}</rsp:ResourceUri><rsp:Owner>{xml_escape(user)}</rsp:Owner>'
                     '<rsp:ClientIP>127.0.0.1</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>'
                     '<rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams>'
                     '<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S'
                     '</rsp:ShellInactivity></rsp:Shell>')
            return 200, envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", relates, reply), action
        if action not in (A_COMMAND, A_SEND, A_RECEIVE, A_SIGNAL, A_DELETE):
            raise Fault(None, "a:ActionNotSupported", "The action is not supported by the service. ", 2150858776,
                        f"The WinRM stand-in does not support the action {action or '(none)'}. ")
        sid = selectors.get("ShellId", "")
        with shells.lock:
            shell = shells.shells.get(sid.upper())
        if shell is None:
            raise shell_not_found(sid)
        if action == A_DELETE:
            with shells.lock:
                shells.shells.pop(sid.upper(), None)
            return 200, envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", relates, ""), action
        if action == A_COMMAND:
            line = body.find(q("rsp", "CommandLine"))
            if line is None:
                raise invalid_parameter()
            program = line.findtext(q("rsp", "Command")) or ""
            args = [a.text or "" for a in line.findall(q("rsp", "Arguments"))]
            # Absent, stdin is a pipe (pypsrp sends no option, and its recording on Windows,
            # test_winrs_send.yml, reads stdin); TRUE makes it a console, which `$input` does not read.
            console = options.get("WINRS_CONSOLEMODE_STDIN", "FALSE").strip().upper() == "TRUE"
            ran = run_command_line(server, user, auth, transport, program.strip(), args)
            cid = str(uuid.uuid4()).upper()
            cmd = {"delivered": False, "timeouts": server.receive_timeouts, "stdin": b"",
                   "console": console, "codepage": shell["codepage"]}
            if isinstance(ran, dict):
                cmd["pending"] = ran
            else:
                finish(cmd, *ran)
            with shells.lock:
                shell["commands"][cid] = cmd
            return 200, envelope("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandResponse", relates,
                                 f"<rsp:CommandResponse><rsp:CommandId>{cid}</rsp:CommandId></rsp:CommandResponse>"), action
        if action == A_SEND:
            stream = body.find(f"{q('rsp', 'Send')}/{q('rsp', 'Stream')}")
            cid = stream.get("CommandId") if stream is not None else None
            if not cid or stream.get("Name") != "stdin":
                raise invalid_parameter()
            try:
                data = base64.b64decode(stream.text or "", validate=True)
            except Exception:
                raise invalid_parameter()
            with shells.lock:
                cmd = shell["commands"].get(cid.upper())
                if cmd is None or cmd["delivered"]:
                    raise command_not_found()
                cmd["stdin"] += data
                job = cmd.pop("pending", None) if (stream.get("End") or "").lower() == "true" else None
            if job is not None:
                finish(cmd, *with_stdin(job, cmd["stdin"], cmd["console"]))
            return 200, envelope("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SendResponse", relates,
                                 "<rsp:SendResponse/>"), action
        if action == A_RECEIVE:
            stream = body.find(f"{q('rsp', 'Receive')}/{q('rsp', 'DesiredStream')}")
            cid = stream.get("CommandId") if stream is not None else None
            if not cid:
                raise invalid_parameter()
            with shells.lock:
                cmd = shell["commands"].get(cid.upper())
                if cmd is None or cmd["delivered"]:
                    raise command_not_found()
                if "pending" in cmd:
                    # Still reading its stdin: nothing within OperationTimeout, as on Windows.
                    raise timed_out()
                if cmd["timeouts"] > 0:
                    cmd["timeouts"] -= 1
                    raise timed_out()
                # Like Windows, large output comes in pieces: at most RECEIVE_CHUNK bytes per
                # Receive (split anywhere, even inside a UTF-8 character), state Running until
                # the last piece.
                budget, parts = RECEIVE_CHUNK, []
                for name in ("stdout", "stderr"):
                    sent = cmd.setdefault(name + "_sent", 0)
                    piece = cmd[name][sent:sent + budget]
                    if piece:
                        cmd[name + "_sent"] = sent + len(piece)
                        budget -= len(piece)
                        data = base64.b64encode(piece).decode()
                        parts.append(f'<rsp:Stream Name="{name}" CommandId="{cid}">{data}</rsp:Stream>')
                done = all(cmd[n + "_sent"] >= len(cmd[n]) for n in ("stdout", "stderr"))
                cmd["delivered"] = done
            if not done:
                parts.append(f'<rsp:CommandState CommandId="{cid}" State="{STATE_RUNNING}"/>')
                return 200, envelope("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse",
                                     relates, "<rsp:ReceiveResponse>" + "".join(parts) + "</rsp:ReceiveResponse>"), action
            parts.append(f'<rsp:Stream Name="stdout" CommandId="{cid}" End="true"></rsp:Stream>')
            parts.append(f'<rsp:Stream Name="stderr" CommandId="{cid}" End="true"></rsp:Stream>')
            parts.append(f'<rsp:CommandState CommandId="{cid}" State="{STATE_DONE}"><rsp:ExitCode>{cmd["exit"]}'
                         '</rsp:ExitCode></rsp:CommandState>')
            return 200, envelope("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse", relates,
                                 "<rsp:ReceiveResponse>" + "".join(parts) + "</rsp:ReceiveResponse>"), action
        # Signal
        sig = body.find(q("rsp", "Signal"))
        cid = (sig.get("CommandId") if sig is not None else None) or ""
        with shells.lock:
            shell["commands"].pop(cid.upper(), None)
        return 200, envelope("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SignalResponse", relates,
                             "<rsp:SignalResponse/>"), action
    except Fault as f:
        return 500, f.xml(relates), action


# --------------------------------------------------------------------------------------------
# HTTP: authentication, message encryption, transport rules


def unwrap_body(ctx, body, content_type):
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    boundary = m.group(1) if m else "Encrypted Boundary"
    parts = re.split(rb"--\s*" + re.escape(boundary.encode()) + rb"\r\n", body)
    parts = [p for p in parts if p]
    out = b""
    if len(parts) < 2:
        raise ValueError("no encrypted parts")
    for i in range(0, len(parts) - 1, 2):
        head, payload = parts[i].strip(), parts[i + 1]
        expected = int(head.split(b"Length=")[1].split(b"\r")[0].split(b";")[0])
        payload = re.sub(rb"--\s*" + re.escape(boundary.encode()) + rb"--\r\n$", b"", payload)
        payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"")
        hlen = struct.unpack("<i", payload[:4])[0]
        data = ctx.unwrap_winrm(payload[4:4 + hlen], payload[4 + hlen:])
        if len(data) != expected:
            raise ValueError("decrypted length does not match")
        out += data
    return out


def wrap_body(ctx, data):
    header, wrapped, padding = ctx.wrap_winrm(data)
    return (BOUNDARY + b"\r\n\tContent-Type: " + ENC_PROTOCOL.encode() + b"\r\n"
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(data) + padding).encode()
            + b"\r\n" + BOUNDARY + b"\r\n\tContent-Type: application/octet-stream\r\n"
            + struct.pack("<i", len(header)) + header + wrapped + BOUNDARY + b"--\r\n")


ENC_CONTENT_TYPE = f'multipart/encrypted;protocol="{ENC_PROTOCOL}";boundary="Encrypted Boundary"'


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle and the client's
    # delayed ACK add ~40 ms to every answer (as no real Windows does).
    disable_nagle_algorithm = True
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = 300

    def setup(self):
        super().setup()
        self.ntlm = None          # the NTLM/SPNEGO context of this connection
        self.ntlm_user = None     # set once the context is complete
        self.ntlm_scheme = "Negotiate"

    def log_message(self, fmt, *args):
        if os.environ.get("STANDIN_DEBUG"):
            log(fmt % args)

    @property
    def https(self):
        return self.server.is_https

    def transport_name(self, encrypted):
        if self.https:
            return "https"
        return "http-encrypted" if encrypted else "http-plain"

    def offers(self):
        o = ["Negotiate"]
        if self.https or self.server.app.allow_unencrypted:
            o.append('Basic realm="WSMAN"')
        return o

    def send(self, status, body=b"", content_type=None, auth_headers=(), wire=None):
        # Recorded before the answer leaves: a client that has its answer finds it recorded.
        if wire is not None:
            wire["status"] = status
            self.server.app.record_wire(wire)
        self.send_response(status)
        for h in auth_headers:
            self.send_header("WWW-Authenticate", h)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def deny(self, wire, close=False):
        self.ntlm, self.ntlm_user = None, None
        if close:
            self.close_connection = True
        self.send(401, auth_headers=self.offers(), wire=wire)

    def do_GET(self):
        self.send(405, wire={"action": None, "auth": None, "transport": self.transport_name(False)})

    def do_POST(self):
        app = self.server.app
        wire = {"action": None, "auth": None, "transport": self.transport_name(False)}
        length = self.headers.get("Content-Length")
        try:
            length = int(length) if length is not None else 0
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self.send(400 if length != -1 else 411, wire=wire)
            return
        body = self.rfile.read(length) if length else b""
        if self.path.split("?")[0].lower() != "/wsman":
            self.send(404, wire=wire)
            return
        authz = self.headers.get("Authorization", "")
        scheme, _, token = authz.partition(" ")
        scheme_l = scheme.lower()
        user, auth, out_token = None, None, None
        if scheme_l in ("negotiate", "ntlm"):
            wire["auth"] = "ntlm"
            if self.ntlm is None or self.ntlm.complete:
                self.ntlm = spnego.server(protocol="negotiate", channel_bindings=self.server.channel_bindings)
                self.ntlm_user = None
            self.ntlm_scheme = scheme
            try:
                out_token = self.ntlm.step(base64.b64decode(token.strip()))
            except Exception as e:  # wrong password, bad binding, garbage
                log(f"NTLM refused: {type(e).__name__}: {e}")
                self.deny(wire)
                return
            if not self.ntlm.complete:
                hdr = f"{scheme} {base64.b64encode(out_token).decode()}" if out_token else scheme
                self.send(401, auth_headers=[hdr], wire=wire)
                return
            principal = self.ntlm.client_principal or ""
            if not app.state.login_ok(principal):
                log(f"NTLM user {principal} is not an enabled local user")
                self.deny(wire)
                return
            self.ntlm_user = principal
            user, auth = principal, "ntlm"
        elif scheme_l == "basic":
            wire["auth"] = "basic"
            if not (self.https or app.allow_unencrypted):
                self.deny(wire)
                return
            try:
                name, _, password = base64.b64decode(token.strip()).decode("utf-8").partition(":")
            except Exception:
                self.deny(wire)
                return
            if not app.state.login_ok(name, password):
                self.deny(wire)
                return
            user, auth = name, "basic"
        elif self.ntlm_user is not None:
            user, auth = self.ntlm_user, "ntlm"
            wire["auth"] = "ntlm"
        else:
            self.send(401, auth_headers=self.offers(), wire=wire)
            return
        final = [f"{self.ntlm_scheme} {base64.b64encode(out_token).decode()}"] if out_token else []
        if not body:
            # The empty POST that finishes the handshake (and sets up encryption).
            self.send(200, auth_headers=final, wire=wire)
            return
        ctype = self.headers.get("Content-Type", "")
        encrypted = ctype.lower().startswith("multipart/encrypted") and ENC_PROTOCOL.lower() in ctype.lower()
        wire["transport"] = self.transport_name(encrypted)
        if encrypted:
            if auth != "ntlm" or self.ntlm is None:
                self.send(400, wire=wire)
                return
            try:
                xml_bytes = unwrap_body(self.ntlm, body, ctype)
            except Exception as e:
                log(f"cannot decrypt: {type(e).__name__}: {e}")
                self.deny(wire, close=True)
                return
        else:
            if not self.https and not app.allow_unencrypted:
                self.deny(wire)  # AllowUnencrypted=false
                return
            xml_bytes = body
        status, reply, action = handle_soap(app, self, xml_bytes, user, auth, wire["transport"])
        wire["action"] = action or None
        data = reply.encode("utf-8")
        if encrypted:
            self.send(status, wrap_body(self.ntlm, data), ENC_CONTENT_TYPE, final, wire)
        else:
            self.send(status, data, "application/soap+xml;charset=UTF-8", final, wire)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app, tls=None, channel_bindings=None):
        self.app = app
        self.tls = tls
        self.is_https = tls is not None
        self.channel_bindings = channel_bindings
        super().__init__(("127.0.0.1", 0), Handler)

    def finish_request(self, request, client_address):
        if self.tls is not None:
            try:
                request.settimeout(30)
                request = self.tls.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                log(f"TLS handshake failed: {e}")
                return
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class App:
    def __init__(self, args):
        self.dir = os.path.abspath(args.dir)
        self.allow_unencrypted = args.allow_unencrypted
        self.receive_timeouts = args.receive_timeouts
        self.progress_noise = args.progress_noise
        self.state = State(self.dir)
        os.environ["NTLM_USER_FILE"] = self.state.ntlm_path
        self.rdp_sam = RdpSam(self.state, args.rdp_sam, args.rdp_groups) if args.rdp_sam else None
        self.state.logoff_module = args.logoff_module
        self.ad = None
        if args.ad_url:
            import standin_ad  # needs ldap3: only with --ad-url
            if not (args.ad_ca and args.ad_base_dn):
                raise SystemExit("standin: --ad-url needs --ad-ca and --ad-base-dn")
            self.ad = standin_ad.Ad(sys.modules[__name__], args.ad_url, args.ad_ca, args.ad_base_dn, args.ad_realm,
                                    args.ad_netbios, self.state)
        self.shells = Shells()
        self.files_lock = threading.Lock()
        self.ports = {}

    def address(self, transport):
        if transport == "https":
            return f"https://localhost:{self.ports.get('https', 0)}/wsman"
        return f"http://127.0.0.1:{self.ports.get('http', 0)}/wsman"

    def _append(self, name, obj):
        line = json.dumps(obj, ensure_ascii=False) + "\n"
        with self.files_lock:
            with open(os.path.join(self.dir, name), "a", encoding="utf-8") as f:
                f.write(line)

    def record_call(self, rec):
        self._append("calls.jsonl", rec)

    def record_wire(self, rec):
        self._append("wire.jsonl", rec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--allow-unencrypted", action="store_true",
                    help="like AllowUnencrypted=true: Basic and plaintext SOAP over HTTP")
    ap.add_argument("--no-https", action="store_true")
    ap.add_argument("--cert-hash", choices=["sha256", "sha384", "sha512"], default="sha256",
                    help="the hash the test CA signs the server certificate with")
    ap.add_argument("--cbt-relaxed", action="store_true",
                    help="do not require the NTLM channel binding over HTTPS (default: required, like "
                         "CbtHardeningLevel=Strict)")
    ap.add_argument("--receive-timeouts", type=int, default=0,
                    help="answer the first N Receives of each command with the w:TimedOut fault")
    ap.add_argument("--progress-noise", action="store_true",
                    help="write the 'Preparing modules for first use.' CLIXML progress record to stderr")
    ap.add_argument("--rdp-sam", metavar="PATH",
                    help="keep PATH the FreeRDP SAM file of the users allowed to log on over RDP (enabled, "
                         "unexpired members of an --rdp-groups group), rewritten on every change and every second")
    ap.add_argument("--rdp-groups", default="Remote Desktop Users", metavar="'GROUP,GROUP'",
                    help="comma-separated local groups whose members may log on over RDP (default: %(default)s)")
    ap.add_argument("--logoff-module", action="store_true",
                    help="as if docs/windows/LatchSessions.psm1 were installed: Disconnect-LatchSession -UserName "
                         "is a known cmdlet (recorded; the stand-in has no interactive sessions to end)")
    ap.add_argument("--ad-url", metavar="ldaps://HOST:636",
                    help="carry out the AD cmdlets against this DC, bound as the WinRM user (standin_ad.py)")
    ap.add_argument("--ad-ca", metavar="PEM", help="the CA that the DC's LDAPS certificate must chain to")
    ap.add_argument("--ad-base-dn", metavar="DN", help="the domain's naming context, e.g. DC=latch,DC=test")
    ap.add_argument("--ad-realm", metavar="REALM",
                    help="the bind is USER@REALM (default: from --ad-base-dn, DC=latch,DC=test -> latch.test)")
    ap.add_argument("--ad-netbios", metavar="DOMAIN",
                    help="the domain's NetBIOS name: users-file accounts under it (or under REALM, or no domain) are "
                         "the domain's accounts (default: REALM's first label upper-cased, latch.test -> LATCH)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    app = App(args)
    servers = [Server(app)]
    app.ports["http"] = servers[0].server_address[1]
    https_port = 0
    if not args.no_https:
        tls, cert_hash = ensure_tls(app.dir, args.cert_hash)
        cb = None if args.cbt_relaxed else spnego.channel_bindings.GssChannelBindings(
            application_data=b"tls-server-end-point:" + cert_hash)
        servers.append(Server(app, tls, cb))
        https_port = app.ports["https"] = servers[1].server_address[1]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    if app.rdp_sam is not None:
        app.rdp_sam.start()
    print(f"READY http={app.ports['http']} https={https_port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
