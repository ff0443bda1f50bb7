#!/usr/bin/env python3
"""Run the third-party WinRM clients (pywinrm, pypsrp) against a running stand-in.

    python clients_check.py --dir DIR --http PORT --https PORT

Prints `ok NAME` or `FAIL NAME: why` per check, then `N passed, N failed`; exits 0 only if every
check passed.
"""

import argparse
import base64
import json
import os
import secrets
import sys
import traceback
import warnings

warnings.filterwarnings("ignore")

import winrm  # noqa: E402
import winrm.exceptions  # noqa: E402
from pypsrp.shell import Process, WinRS  # noqa: E402
from pypsrp.wsman import WSMan  # noqa: E402

QUOTES = "'\u2018\u2019\u201a\u201b"


def literal(v):
    return "'" + "".join(c + c if c in QUOTES else c for c in v) + "'"


def host_form(cmdlet, params=()):
    """(script, stdin) exactly as Latch renders them: each secure value is a variable `$latchN`
    in the script, read from stdin, where it is one line of base64 (stdin is None without one)."""
    from standin import stdin_prelude
    line = cmdlet
    secure = []
    for name, value in params:
        line += f" -{name}"
        if value is None:
            continue
        if isinstance(value, bool):
            line += ":$true" if value else ":$false"
            continue
        elif isinstance(value, int):
            line += f" {value}"
        elif isinstance(value, list):
            line += " @(" + ", ".join(literal(v) for v in value) + ")"
        elif isinstance(value, tuple) and value[0] == "secure":
            line += f" $latch{len(secure)}"
            secure.append(value[1])
        else:
            line += " " + literal(value)
    script = "$ProgressPreference = 'SilentlyContinue'\n"
    if secure:
        script += "\n".join(stdin_prelude(len(secure))) + "\n"
    script += f"ConvertTo-Json -Compress -Depth 3 -InputObject @({line})"
    stdin = "".join(base64.b64encode(v.encode("utf-8")).decode() + "\r\n" for v in secure).encode()
    return script, (stdin if secure else None)


def run_ps(session, form):
    """pywinrm runs `form`: with `run_ps` when it has no stdin; else, as pywinrm (and Ansible) send
    stdin: a Command with a pipe for stdin, one Send with End="true", then Receive."""
    script, stdin = form
    if stdin is None:
        return session.run_ps(script)
    p = session.protocol
    shell = p.open_shell(codepage=65001)
    try:
        args = ["-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand", encoded(script)]
        cid = p.run_command(shell, "powershell.exe", args, console_mode_stdin=False)
        p.send_command_input(shell, cid, stdin, end=True)
        out, err, rc = p.get_command_output(shell, cid)
        p.cleanup_command(shell, cid)
    finally:
        p.close_shell(shell)
    r = winrm.Response((out, err, rc))
    if r.std_err:
        r.std_err = session._clean_error_msg(r.std_err)
    return r


def encoded(script):
    return base64.b64encode(script.encode("utf-16-le")).decode()


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def run(self, name, fn):
        try:
            fn()
            print(f"ok {name}", flush=True)
            self.passed += 1
        except Exception as e:
            why = f"{type(e).__name__}: {e}".replace("\n", " ")[:400]
            print(f"FAIL {name}: {why}", flush=True)
            if os.environ.get("CHECK_DEBUG"):
                traceback.print_exc()
            self.failed += 1


def expect(cond, why):
    if not cond:
        raise AssertionError(why)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--http", type=int, required=True)
    ap.add_argument("--https", type=int, required=True)
    args = ap.parse_args()
    with open(os.path.join(args.dir, "users"), encoding="utf-8") as f:
        domain, user, password = f.read().splitlines()[0].split(":", 2)
    login = f"{domain}\\{user}" if domain else user
    ca = os.path.join(args.dir, "ca.pem")
    http_url = f"http://127.0.0.1:{args.http}/wsman"
    https_url = f"https://localhost:{args.https}/wsman"
    c = Checks()

    def pywinrm(url, transport, who=login, pw=password, **kw):
        kw.setdefault("server_cert_validation", "validate")
        if url.startswith("https"):
            kw.setdefault("ca_trust_path", ca)
        return winrm.Session(url, auth=(who, pw), transport=transport, **kw)

    def get_admin(session):
        r = run_ps(session, host_form("Get-LocalUser", [("Name", "Administrator")]))
        expect(r.status_code == 0, f"exit code {r.status_code}, stderr {r.std_err[:300]!r}")
        objs = json.loads(r.std_out.decode("utf-8"))
        expect(isinstance(objs, list) and objs and objs[0]["Name"] == "Administrator", f"stdout {r.std_out[:200]!r}")

    c.run("pywinrm-ntlm-http-encrypted",
          lambda: get_admin(pywinrm(http_url, "ntlm", message_encryption="always")))
    c.run("pywinrm-basic-https", lambda: get_admin(pywinrm(https_url, "basic")))
    c.run("pywinrm-ntlm-https", lambda: get_admin(pywinrm(https_url, "ntlm")))

    def refused(fn, what):
        try:
            fn()
        except (winrm.exceptions.InvalidCredentialsError, winrm.exceptions.WinRMTransportError,
                winrm.exceptions.WinRMError) as e:
            return str(e)
        raise AssertionError(f"{what} was accepted")

    def ntlm_https_no_cbt():
        refused(lambda: get_admin(pywinrm(https_url, "ntlm", send_cbt=False)), "NTLM over HTTPS without a channel binding")

    c.run("ntlm-https-without-channel-binding-refused", ntlm_https_no_cbt)

    def https_name_mismatch():
        try:
            get_admin(pywinrm(f"https://127.0.0.1:{args.https}/wsman", "basic"))
        except Exception as e:
            expect("certificate" in str(e).lower() or "ssl" in str(e).lower(), f"not a TLS error: {e}")
            return
        raise AssertionError("a certificate for localhost was accepted for 127.0.0.1")

    c.run("https-host-name-mismatch-refused", https_name_mismatch)

    def pypsrp_run(wsman, form):
        script, stdin = form
        args_ = ["-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand", encoded(script)]
        with WinRS(wsman, codepage=65001) as shell:
            p = Process(shell, "powershell.exe", args_)
            if stdin is None:
                p.invoke()
            else:
                p.begin_invoke()
                p.send(stdin, end=True)
                p.end_invoke()
            p.signal("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate")
        return p

    def pypsrp_check(wsman):
        p = pypsrp_run(wsman, host_form("Get-LocalUser", [("Name", "Administrator")]))
        expect(p.rc == 0, f"exit code {p.rc}, stderr {p.stderr[:300]!r}")
        objs = json.loads(p.stdout.decode("utf-8"))
        expect(objs[0]["Name"] == "Administrator", f"stdout {p.stdout[:200]!r}")

    c.run("pypsrp-negotiate-http-encrypted", lambda: pypsrp_check(
        WSMan("127.0.0.1", port=args.http, ssl=False, auth="negotiate", username=login, password=password,
              encryption="always")))
    c.run("pypsrp-ntlm-https", lambda: pypsrp_check(
        WSMan("localhost", port=args.https, ssl=True, auth="ntlm", username=login, password=password,
              cert_validation=ca)))
    c.run("pypsrp-negotiate-https", lambda: pypsrp_check(
        WSMan("localhost", port=args.https, ssl=True, auth="negotiate", username=login, password=password,
              cert_validation=ca)))

    def pypsrp_unicode():
        desc = "caf\u00e9 \u2019quoted\u2019 'x' $(whoami) `n ; | \"q\" \u3053\u3093\u306b\u3061\u306f"
        wsman = WSMan("127.0.0.1", port=args.http, ssl=False, auth="negotiate", username=login,
                      password=password, encryption="always")
        name = "u" + secrets.token_hex(4)
        p = pypsrp_run(wsman, host_form("New-LocalUser", [("Name", name), ("NoPassword", None),
                                                          ("Description", desc)]))
        expect(p.rc == 0, f"exit code {p.rc}, stderr {p.stderr[:300]!r}")
        objs = json.loads(p.stdout.decode("utf-8"))
        expect(objs[0]["Description"] == desc, f"description came back as {objs[0]['Description']!r}")

    c.run("pypsrp-unicode-and-quotes-round-trip", pypsrp_unicode)

    def pypsrp_stdin_secret():
        # A password on stdin (pypsrp's Send), never in the script; the new user logs in with it.
        wsman = WSMan("127.0.0.1", port=args.http, ssl=False, auth="negotiate", username=login,
                      password=password, encryption="always")
        name = "s" + secrets.token_hex(4)
        pw = "Std'in’-" + secrets.token_hex(4) + "!"
        form = host_form("New-LocalUser", [("Name", name), ("Password", ("secure", pw))])
        expect(pw not in form[0], "the password is in the script")
        p = pypsrp_run(wsman, form)
        expect(p.rc == 0, f"exit code {p.rc}, stderr {p.stderr[:300]!r}")
        with open(os.path.join(args.dir, "calls.jsonl"), encoding="utf-8") as f:
            last = json.loads(f.read().splitlines()[-1])
        expect(last["stdin_secrets"] == 1 and pw not in last["script"], f"record {last}")
        get_admin(pywinrm(http_url, "ntlm", who=name, pw=pw, message_encryption="always"))

    c.run("pypsrp-password-on-stdin", pypsrp_stdin_secret)

    def secret_in_script_refused():
        # The old form, a secret as a literal in the script: refused, nothing created.
        s = pywinrm(http_url, "ntlm", message_encryption="always")
        name = "lit" + secrets.token_hex(3)
        line = f"New-LocalUser -Name {literal(name)} -Password (ConvertTo-SecureString 'Lit3ral-Pw!' " \
               "-AsPlainText -Force)"
        r = s.run_ps("$ProgressPreference = 'SilentlyContinue'\n"
                     f"ConvertTo-Json -Compress -Depth 3 -InputObject @({line})")
        expect(r.status_code == 1 and b"a secret in the script text" in r.std_err, f"{r.status_code} {r.std_err!r}")
        r = run_ps(s, host_form("Get-LocalUser", [("Name", name)]))
        expect(r.std_out.strip() == b"[]", f"{name} was created: {r.std_out!r}")

    c.run("secret-in-script-refused", secret_in_script_refused)

    def stdin_on_a_console_refused():
        # WINRS_CONSOLEMODE_STDIN TRUE: $input gets nothing, the script's count check throws.
        s = pywinrm(http_url, "ntlm", message_encryption="always")
        script, stdin = host_form("New-LocalUser", [("Name", "con" + secrets.token_hex(3)),
                                                    ("Password", ("secure", "Console-Pw1!"))])
        p = s.protocol
        shell = p.open_shell(codepage=65001)
        try:
            args_ = ["-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand", encoded(script)]
            cid = p.run_command(shell, "powershell.exe", args_, console_mode_stdin=True)
            p.send_command_input(shell, cid, stdin, end=True)
            out, err, rc = p.get_command_output(shell, cid)
        finally:
            p.close_shell(shell)
        expect(rc == 1 and b"stdin did not carry the 1 secrets" in err, f"{rc} {err[:300]!r}")

    c.run("stdin-on-a-console-stdin-fails", stdin_on_a_console_refused)

    def refused_script():
        s = pywinrm(http_url, "ntlm", message_encryption="always")
        r = s.run_ps("Get-LocalUser; whoami")
        expect(r.status_code == 1, f"exit code {r.status_code}")
        expect(b"the stand-in refused the script" in r.std_err, f"stderr {r.std_err[:300]!r}")
        with open(os.path.join(args.dir, "calls.jsonl"), encoding="utf-8") as f:
            last = json.loads(f.read().splitlines()[-1])
        expect(last["refused"] and last["script"] == "Get-LocalUser; whoami", f"record {last}")

    c.run("non-host-form-script-refused", refused_script)

    def not_found():
        s = pywinrm(http_url, "ntlm", message_encryption="always")
        r = run_ps(s, host_form("Get-LocalUser", [("Name", "nosuchuser")]))
        expect(r.status_code == 0 and r.std_out.strip() == b"[]", f"{r.status_code} {r.std_out!r}")
        expect(b"User nosuchuser was not found." in r.std_err, f"stderr {r.std_err[:300]!r}")

    c.run("non-terminating-error-user-not-found", not_found)

    def program_refused():
        s = pywinrm(http_url, "ntlm", message_encryption="always")
        r = s.run_cmd("cmd.exe", ["/c", "echo", "hi"])
        expect(r.status_code == 1 and b"only powershell" in r.std_err, f"{r.status_code} {r.std_err!r}")

    c.run("other-program-refused", program_refused)

    c.run("wrong-password-ntlm-refused", lambda: refused(
        lambda: get_admin(pywinrm(http_url, "ntlm", pw=password + "x", message_encryption="always")),
        "a wrong password"))
    c.run("wrong-password-basic-refused", lambda: refused(
        lambda: get_admin(pywinrm(https_url, "basic", pw=password + "x")), "a wrong password"))
    c.run("plaintext-basic-http-refused", lambda: refused(
        lambda: get_admin(pywinrm(http_url, "basic")), "Basic over plain HTTP"))
    c.run("plaintext-ntlm-http-refused", lambda: refused(
        lambda: get_admin(pywinrm(http_url, "ntlm", message_encryption="never")), "unencrypted SOAP over HTTP"))

    def round_trip():
        s = pywinrm(http_url, "ntlm", message_encryption="always")
        name = "grant" + secrets.token_hex(3)
        new_pw = "Gr4nt'\u2019-" + secrets.token_hex(4) + "!"
        r = run_ps(s, host_form("New-LocalUser", [("Name", name), ("Password", ("secure", new_pw)),
                                                 ("Description", "a grant"), ("PasswordNeverExpires", None)]))
        expect(r.status_code == 0, f"New-LocalUser: {r.status_code} {r.std_err[:300]!r}")
        expect(json.loads(r.std_out)[0]["Name"] == name, f"New-LocalUser stdout {r.std_out!r}")
        with open(os.path.join(args.dir, "calls.jsonl"), encoding="utf-8") as f:
            last = json.loads(f.read().splitlines()[-1])
        expect(["Password", {"type": "secure-string", "value": new_pw}] in last["parameters"],
               f"recorded parameters {last['parameters']}")
        r = run_ps(s, host_form("Add-LocalGroupMember", [("Group", "Remote Desktop Users"), ("Member", [name])]))
        expect(r.status_code == 0 and not r.std_err, f"Add-LocalGroupMember: {r.status_code} {r.std_err[:300]!r}")
        r = run_ps(s, host_form("Add-LocalGroupMember", [("Group", "Remote Desktop Users"), ("Member", name)]))
        expect(b"is already a member of group Remote Desktop Users" in r.std_err, f"second add: {r.std_err[:300]!r}")
        r = run_ps(s, host_form("Get-LocalGroupMember", [("Group", "Remote Desktop Users")]))
        members = [m["Name"] for m in json.loads(r.std_out)]
        expect(f"WINSTANDIN\\{name}" in members, f"members {members}")
        # The new user logs in with the granted password: NTLM (no domain, and WINSTANDIN\) and Basic.
        for who in (name, f"WINSTANDIN\\{name}"):
            get_admin(pywinrm(http_url, "ntlm", who=who, pw=new_pw, message_encryption="always"))
        # Basic carries latin-1 only (requests): set an ASCII password, then log in with Basic.
        ascii_pw = "Set'Pw-" + secrets.token_hex(4) + "#"
        r = run_ps(s, host_form("Set-LocalUser", [("Name", name), ("Password", ("secure", ascii_pw))]))
        expect(r.status_code == 0 and not r.std_err, f"Set-LocalUser: {r.status_code} {r.std_err[:300]!r}")
        get_admin(pywinrm(https_url, "basic", who=name, pw=ascii_pw))
        refused(lambda: get_admin(pywinrm(http_url, "ntlm", who=name, pw=new_pw, message_encryption="always")),
                "the old password")
        r = run_ps(s, host_form("Disable-LocalUser", [("Name", name)]))
        expect(r.status_code == 0, f"Disable-LocalUser {r.std_err!r}")
        refused(lambda: get_admin(pywinrm(http_url, "ntlm", who=name, pw=new_pw, message_encryption="always")),
                "a disabled user")
        r = run_ps(s, host_form("Remove-LocalGroupMember", [("Group", "Remote Desktop Users"), ("Member", [name])]))
        expect(r.status_code == 0 and not r.std_err, f"Remove-LocalGroupMember {r.std_err!r}")

    c.run("grant-round-trip-and-new-user-logs-in", round_trip)

    def weak_password():
        s = pywinrm(http_url, "ntlm", message_encryption="always")
        r = run_ps(s, host_form("New-LocalUser", [("Name", "weak" + secrets.token_hex(2)),
                                                 ("Password", ("secure", "short"))]))
        expect(r.status_code == 0 and r.std_out.strip() == b"[]", f"{r.status_code} {r.std_out!r}")
        expect(b"password policy" in r.std_err, f"stderr {r.std_err[:300]!r}")

    c.run("weak-password-refused-by-policy", weak_password)

    def colon_password_and_private_files():
        # A password with `:` (Latch's generated passwords may have one) logs in over NTLM: the
        # NTLM users file holds hashes, not `DOMAIN:USER:PASSWORD`. The stand-in's files that hold
        # passwords are mode 0600 whatever the umask, and ntlm-users holds none in clear.
        s = pywinrm(http_url, "ntlm", message_encryption="always")
        name = "colon" + secrets.token_hex(3)
        pw = "Co:l:on-" + secrets.token_hex(4) + "!"
        r = run_ps(s, host_form("New-LocalUser", [("Name", name), ("Password", ("secure", pw))]))
        expect(r.status_code == 0 and not r.std_err, f"New-LocalUser: {r.status_code} {r.std_err[:300]!r}")
        get_admin(pywinrm(http_url, "ntlm", who=name, pw=pw, message_encryption="always"))
        refused(lambda: get_admin(pywinrm(http_url, "ntlm", who=name, pw=pw + "x", message_encryption="always")),
                "a wrong password")
        for f in ("state.json", "ntlm-users"):
            mode = os.stat(os.path.join(args.dir, f)).st_mode & 0o777
            expect(mode == 0o600, f"{f} has mode {mode:o}")
        with open(os.path.join(args.dir, "ntlm-users"), encoding="utf-8") as f:
            text = f.read()
        expect(pw not in text and password not in text, "a password in clear in ntlm-users")
        r = run_ps(s, host_form("Remove-LocalUser", [("Name", [name])]))
        expect(r.status_code == 0 and not r.std_err, f"Remove-LocalUser: {r.status_code} {r.std_err[:300]!r}")

    c.run("ntlm-password-with-colon-and-private-files", colon_password_and_private_files)

    print(f"{c.passed} passed, {c.failed} failed", flush=True)
    sys.exit(0 if c.failed == 0 else 1)


if __name__ == "__main__":
    main()
