#!/usr/bin/env python3
"""Drive the WinRM stand-in as Latch's rdp-servers integration will, and prove each step with a
real RDP NLA login against the FreeRDP shadow server that checks the stand-in's SAM file.

    python check.py --http PORT --users FILE --rdp DIR --sam FILE [--up-ms MS]

(started by check.sh, which runs the stand-in with --rdp-sam and `rdp.sh up`). Prints `ok` or
`FAIL` per step, then a table of timings; exits 0 only if every step passed.
"""

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time
import warnings

warnings.filterwarnings("ignore")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "winrm"))
import winrm  # noqa: E402
from clients_check import host_form  # noqa: E402  (the script exactly as Latch renders it)
from spnego._ntlm_raw.crypto import ntowfv1  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RDP_SH = os.path.join(HERE, "rdp.sh")
USER = "jit_alice"
GROUP = "Remote Desktop Users"
PW1 = "Jit-Gr4nt!x7Q"
PW_UNICODE = "Pässwörd-Ünï 密码 1"
PW_SPACES = "two words And 3 more"
CODES = {0: "OK", 1: "REFUSED", 2: "UNREACHABLE", 3: "ERROR"}


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Check:
    def __init__(self, args):
        self.args = args
        with open(args.users, encoding="utf-8") as f:
            domain, user, password = f.read().splitlines()[0].split(":", 2)
        self.session = winrm.Session(f"http://127.0.0.1:{args.http}/wsman", auth=(f"{domain}\\{user}", password),
                                     transport="ntlm", message_encryption="always")
        self.rows = []      # (step, expected, got, winrm ms, login ms)
        self.failed = 0

    def ps(self, cmdlet, params):
        t = time.monotonic()
        r = self.session.run_ps(host_form(cmdlet, params))
        ms = (time.monotonic() - t) * 1000
        if r.status_code != 0 or r.std_err:
            raise AssertionError(f"{cmdlet}: exit {r.status_code}, stderr {r.std_err[:300]!r}")
        return json.loads(r.std_out or b"[]"), ms

    def login(self, user, password, domain=None, rdp_file=None):
        if rdp_file:
            argv = [RDP_SH, "login-file", self.args.rdp, rdp_file, "-"]
        else:
            argv = [RDP_SH, "login", self.args.rdp, user, "-"] + ([domain] if domain else [])
        t = time.monotonic()
        p = subprocess.run(argv, input=(password + "\n").encode(), capture_output=True, timeout=120)
        ms = (time.monotonic() - t) * 1000
        word = p.stdout.decode().strip()
        if CODES.get(p.returncode) != word and not (p.returncode == 3 and word == "CERT"):
            raise AssertionError(f"rdp.sh said {word!r} with exit {p.returncode}: {p.stderr.decode()[:300]}")
        return word, ms

    def step(self, name, expected, user, password, call=None, domain=None, rdp_file=None):
        """Optionally one cmdlet call, then one login; record the row."""
        winrm_ms = None
        try:
            if call is not None:
                _, winrm_ms = self.ps(*call)
            got, login_ms = self.login(user, password, domain, rdp_file)
        except Exception as e:
            got, login_ms = f"error: {type(e).__name__}: {e}"[:200], None
        ok = got == expected
        self.failed += not ok
        print(f"{'ok' if ok else 'FAIL'} {name}: expected {expected}, got {got}", flush=True)
        self.rows.append((name, expected, got, winrm_ms, login_ms))

    def sam_lines(self):
        try:
            with open(self.args.sam, encoding="utf-8") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def expect(self, name, cond, why=""):
        self.failed += not cond
        print(f"{'ok' if cond else 'FAIL'} {name}{'' if cond else ': ' + why}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", type=int, required=True)
    ap.add_argument("--users", required=True)
    ap.add_argument("--rdp", required=True, help="the rdp.sh DIR")
    ap.add_argument("--sam", required=True)
    ap.add_argument("--up-ms", type=float)
    args = ap.parse_args()
    c = Check(args)
    in_an_hour = iso(time.time() + 3600)

    # A grant: the account with a password and an expiry, then the group.
    c.step("new user, not yet in the group", "REFUSED", USER, PW1,
           ("New-LocalUser", [("Name", USER), ("Password", ("secure", PW1)), ("AccountExpires", in_an_hour),
                              ("Description", "Latch JIT grant"), ("PasswordNeverExpires", None)]))
    c.step("Add-LocalGroupMember Remote Desktop Users", "OK", USER, PW1,
           ("Add-LocalGroupMember", [("Group", GROUP), ("Member", [USER])]))
    line = next((x for x in c.sam_lines() if x.startswith(USER + ":")), "")
    winpr = subprocess.run(["winpr-hash", "-u", USER, "-p", PW1, "-f", "sam"], capture_output=True).stdout
    c.expect("SAM line byte for byte as winpr-hash writes it", (line + "\n").encode() == winpr,
             f"{line!r} vs {winpr!r}")
    st = os.stat(args.sam)
    with open(args.sam, "rb") as f:
        raw = f.read()
    c.expect("SAM file mode 0600, no password in it", (st.st_mode & 0o777) == 0o600 and PW1.encode() not in raw,
             f"mode {st.st_mode & 0o777:o}")
    c.step("domain WINSTANDIN\\ given", "OK", USER, PW1, domain="WINSTANDIN")
    c.step("user name in another case (Windows would accept; FreeRDP's SAM is case-sensitive)",
           "REFUSED", USER.upper(), PW1)
    c.step("wrong password", "REFUSED", USER, PW1 + "x")
    c.step("Disable-LocalUser", "REFUSED", USER, PW1, ("Disable-LocalUser", [("Name", [USER])]))
    c.step("Enable-LocalUser", "OK", USER, PW1, ("Enable-LocalUser", [("Name", [USER])]))
    c.step("Remove-LocalGroupMember", "REFUSED", USER, PW1,
           ("Remove-LocalGroupMember", [("Group", GROUP), ("Member", [USER])]))
    c.step("Add-LocalGroupMember again", "OK", USER, PW1,
           ("Add-LocalGroupMember", [("Group", GROUP), ("Member", [USER])]))

    # Expiry enforced by the stand-in itself: no WinRM call after the Set-LocalUser.
    expires = math.ceil(time.time()) + 5
    c.step("Set-LocalUser -AccountExpires in 5 s (still before it)", "OK", USER, PW1,
           ("Set-LocalUser", [("Name", USER), ("AccountExpires", iso(expires))]))
    gone = None
    while time.time() < expires + 3:
        if gone is None and not any(x.startswith(USER + ":") for x in c.sam_lines()):
            gone = time.time()
        time.sleep(0.02)
    c.expect("SAM line dropped within 1.1 s after AccountExpires, with no WinRM call",
             gone is not None and expires <= gone <= expires + 1.1,
             f"dropped at {None if gone is None else round(gone - expires, 3)} s after the expiry")
    c.rows.append(("  (SAM line dropped after the expiry, s)", "", "" if gone is None else f"{gone - expires:+.2f}",
                   None, None))
    c.step("7 s later, no WinRM call in between", "REFUSED", USER, PW1)
    c.step("Set-LocalUser -AccountNeverExpires", "OK", USER, PW1,
           ("Set-LocalUser", [("Name", USER), ("AccountNeverExpires", None)]))

    # Passwords: non-ASCII, spaces (through stdin, not argv).
    c.step("Set-LocalUser -Password non-ASCII", "OK", USER, PW_UNICODE,
           ("Set-LocalUser", [("Name", USER), ("Password", ("secure", PW_UNICODE))]))
    c.step("the old password after the change", "REFUSED", USER, PW1)
    c.step("Set-LocalUser -Password with spaces", "OK", USER, PW_SPACES,
           ("Set-LocalUser", [("Name", USER), ("Password", ("secure", PW_SPACES))]))

    # An .rdp file as Latch may hand out (UTF-16LE with a BOM, as mstsc writes them).
    port = next(x.split("=", 1)[1] for x in open(os.path.join(args.rdp, "env")).read().splitlines()
                if x.startswith("PORT="))
    rdp_file = os.path.join(args.rdp, "grant.rdp")
    with open(rdp_file, "wb") as f:
        f.write(b"\xff\xfe" + (f"full address:s:127.0.0.1:{port}\r\nusername:s:{USER}\r\n"
                               "prompt for credentials:i:1\r\nauthentication level:i:2\r\n").encode("utf-16-le"))
    c.step("login-file (.rdp, UTF-16LE)", "OK", USER, PW_SPACES, rdp_file=rdp_file)
    c.step("login-file, wrong password", "REFUSED", USER, PW1, rdp_file=rdp_file)

    # The revoke, as Latch does it: random password, disable, out of the group, then the account.
    c.step("revoke: Set-LocalUser random password", "REFUSED", USER, PW_SPACES,
           ("Set-LocalUser", [("Name", USER), ("Password", ("secure", "R4nd0m-" + os.urandom(12).hex()))]))
    c.step("revoke: Disable-LocalUser", "REFUSED", USER, PW_SPACES, ("Disable-LocalUser", [("Name", [USER])]))
    c.step("revoke: Remove-LocalGroupMember", "REFUSED", USER, PW_SPACES,
           ("Remove-LocalGroupMember", [("Group", GROUP), ("Member", [USER])]))
    c.step("revoke: Remove-LocalUser", "REFUSED", USER, PW_SPACES, ("Remove-LocalUser", [("Name", [USER])]))
    c.expect("SAM file empty at the end", c.sam_lines() == [], f"{c.sam_lines()}")

    # Nothing listening: UNREACHABLE, not REFUSED (xfreerdp exits 147 for both).
    subprocess.run(["kill", open(os.path.join(args.rdp, "shadow.pid")).read().strip()])
    time.sleep(0.3)
    c.step("server stopped", "UNREACHABLE", USER, PW_SPACES)

    print()
    if args.up_ms is not None:
        print(f"rdp.sh up: {args.up_ms:.0f} ms")
    w = max(len(r[0]) for r in c.rows)
    print(f"{'step':<{w}}  {'expected':<11} {'got':<11} {'WinRM ms':>8} {'login ms':>8}")
    for name, exp, got, wms, lms in c.rows:
        f = lambda v: "" if v is None else f"{v:.0f}"  # noqa: E731
        print(f"{name:<{w}}  {exp:<11} {str(got)[:11]:<11} {f(wms):>8} {f(lms):>8}")
    by = {}
    for _, _, got, _, lms in c.rows:
        if lms is not None:
            by.setdefault(got, []).append(lms)
    for got, v in sorted(by.items()):
        print(f"login {got}: n={len(v)} min {min(v):.0f} ms, median {sorted(v)[len(v) // 2]:.0f} ms, "
              f"max {max(v):.0f} ms")
    print(f"{'all passed' if c.failed == 0 else f'{c.failed} FAILED'}")
    sys.exit(0 if c.failed == 0 else 1)


if __name__ == "__main__":
    main()
