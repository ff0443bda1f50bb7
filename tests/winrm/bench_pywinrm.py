#!/usr/bin/env python3
"""pywinrm's side of the WinRM benchmark (host/benches/winrm.rs runs it in the same run as
Latch's side, against the same stand-in): one cmdlet round trip with `Session.run_ps`,
NTLM with message encryption over HTTP and NTLM over HTTPS, cold (a new Session: connect and
log in) and warm (the same Session again). Prints one JSON object of per-iteration seconds.

    bench_pywinrm.py --http PORT --https PORT --ca CA --user U --password P --n N
"""
import argparse
import json
import time

import winrm

SCRIPT = ("$ProgressPreference = 'SilentlyContinue'\n"
          "ConvertTo-Json -Compress -Depth 3 -InputObject @(Get-LocalUser -Name 'Administrator')")


def session(url, args):
    kw = {"server_cert_validation": "validate"}
    if url.startswith("https"):
        kw["ca_trust_path"] = args.ca
    else:
        kw["message_encryption"] = "always"
    return winrm.Session(url, auth=(args.user, args.password), transport="ntlm", **kw)


def once(s):
    r = s.run_ps(SCRIPT)
    assert r.status_code == 0 and b"Administrator" in r.std_out, r


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--http", type=int, required=True)
    p.add_argument("--https", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--n", type=int, default=30)
    args = p.parse_args()
    out = {}
    for name, url in (("http", f"http://localhost:{args.http}/wsman"),
                      ("https", f"https://localhost:{args.https}/wsman")):
        cold = []
        for _ in range(args.n):
            t = time.perf_counter()
            once(session(url, args))
            cold.append(time.perf_counter() - t)
        s = session(url, args)
        once(s)
        warm = []
        for _ in range(args.n):
            t = time.perf_counter()
            once(s)
            warm.append(time.perf_counter() - t)
        out[f"{name}_cold"] = cold
        out[f"{name}_warm"] = warm
    print(json.dumps(out))


if __name__ == "__main__":
    main()
