"""The Active Directory module cmdlets for the WinRM stand-in (standin.py --ad-url ...).

On real Windows the RSAT cmdlets (Get-ADUser, New-ADUser, ...) talk to Active Directory Web
Services on a DC. Samba has no ADWS, so the stand-in carries out exactly the cmdlets and
parameters Latch's `windows-dc` guest sends, translated to LDAP, against a real DC over LDAPS
(tests/samba/dc.sh): the directory changes are real, and so are the DC's own checks (ACLs,
password policy, uniqueness).

- Each call opens its own LDAPS connection (as each powershell.exe would) and binds as the
  WinRM user (`USER@REALM`, with the password the stand-in holds for that user: the users
  file's, or the last one set through the AD cmdlets), so AD's permission checks apply to what
  that user was delegated. TLS is verified against --ad-ca (certificate chain and host name or
  IP address); there is no plaintext mode.
- The domain's accounts are the users file's lines whose DOMAIN is the domain's NetBIOS name
  (--ad-netbios, default REALM's first label upper-cased: `LATCH` for latch.test), REALM itself
  (`LATCH.TEST`), or empty; compared ignoring case. Only these bind to the DC (another line is
  a local account: the DC refuses it, "The server has rejected the client credentials."), and
  only these follow a password set on the DC: once the DC has accepted a password
  (Set-ADAccountPassword -Reset, New-ADUser -AccountPassword) for an account whose
  sAMAccountName is such a line's USER (ignoring case), the stand-in records it as that user's
  password (state.json, ntlm-users), so NTLM logins take the new password and refuse the old
  one, and the next bind uses it. On Windows the DC checks a domain account's NTLM login; here
  the stand-in checks its own record, so a password set on the DC by any other path (plain
  LDAP, samba-tool) goes unnoticed. Note: a real DC (KB906305, OldPasswordAllowedPeriod) and
  Samba (`old password allowed period`) both still accept the previous password for NTLM-style
  network logons for 60 minutes after a change; the stand-in refuses it at once.
- Parameters are bound by name, PowerShell style; anything else is refused with the errors
  PowerShell would give. Every error is terminating (exit code 1), as the AD cmdlets' are.
- Objects are rendered as Windows PowerShell 5.1's ConvertTo-Json renders ADUser / ADGroup
  (SID as its string; enums as numbers).
- The SecureString parameters are never recorded in clear: see `redact`.
"""

import datetime
import hashlib
import re
import ssl
import urllib.parse
import uuid

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPInvalidDnError
from ldap3.utils.dn import escape_rdn

CLS = "Microsoft.ActiveDirectory.Management.Commands."
AD_NS = "Microsoft.ActiveDirectory.Management."
EPOCH_DIFF = 11644473600  # seconds between 1601-01-01 and 1970-01-01
NEVER = (0, 0x7FFFFFFFFFFFFFFF)  # accountExpires values meaning "never"
PAGE = 500
PERMISSIVE_MODIFY = "1.2.840.113556.1.4.1413"

# name -> {param: (kind, mandatory)}; kinds: text, texts, secure, switch, bool, date.
# Exactly what Latch's guest sends, plus -DisablePermissiveModify (a real switch of the two
# group-member cmdlets, to reach the errors permissive modify otherwise hides).
CMDLETS = {
    "Get-ADUser": {"LDAPFilter": ("text", True), "SearchBase": ("text", False), "Properties": ("texts", False)},
    "Get-ADGroup": {"LDAPFilter": ("text", True), "SearchBase": ("text", False)},
    # What Latch's host sends itself to resolve an account given by name (sAMAccountName, GUID,
    # SID) to its DN before it checks the bounds: never a guest's call.
    "Get-ADObject": {"LDAPFilter": ("text", True), "SearchBase": ("text", False), "Properties": ("texts", False)},
    "New-ADUser": {"Name": ("text", True), "SamAccountName": ("text", False), "UserPrincipalName": ("text", False),
                   "Path": ("text", False), "Description": ("text", False), "AccountPassword": ("secure", False),
                   "Enabled": ("bool", False), "AccountExpirationDate": ("date", False)},
    "Set-ADAccountPassword": {"Identity": ("text", True), "Reset": ("switch", False), "NewPassword": ("secure", False)},
    "Set-ADAccountExpiration": {"Identity": ("text", True), "DateTime": ("date", True)},
    "Enable-ADAccount": {"Identity": ("text", True)},
    "Disable-ADAccount": {"Identity": ("text", True)},
    "Add-ADGroupMember": {"Identity": ("text", True), "Members": ("texts", True),
                          "DisablePermissiveModify": ("switch", False)},
    "Remove-ADGroupMember": {"Identity": ("text", True), "Members": ("texts", True), "Confirm": ("switch", False),
                             "DisablePermissiveModify": ("switch", False)},
    "Remove-ADUser": {"Identity": ("text", True), "Confirm": ("switch", False)},
}
# The .NET type of each parameter, for binding errors.
TYPES = {
    "LDAPFilter": "System.String", "SearchBase": "System.String", "Properties": "System.String[]",
    "Name": "System.String", "SamAccountName": "System.String", "UserPrincipalName": "System.String",
    "Path": "System.String", "Description": "System.String", "AccountPassword": "System.Security.SecureString",
    "NewPassword": "System.Security.SecureString", "Enabled": "System.Nullable`1[System.Boolean]",
    "AccountExpirationDate": "System.Nullable`1[System.DateTime]", "DateTime": "System.Nullable`1[System.DateTime]",
    "Members": AD_NS + "ADPrincipal[]",
}
# What -Identity is, per cmdlet (the type its errors name, and the objects it can find).
IDENTITY = {
    "Set-ADAccountPassword": "ADAccount", "Set-ADAccountExpiration": "ADAccount", "Enable-ADAccount": "ADAccount",
    "Disable-ADAccount": "ADAccount", "Add-ADGroupMember": "ADGroup", "Remove-ADGroupMember": "ADGroup",
    "Remove-ADUser": "ADUser",
}
CLASS_FILTER = {
    "ADUser": "(&(objectClass=user)(objectCategory=person))",
    "ADAccount": "(objectClass=user)",
    "ADGroup": "(objectClass=group)",
    "ADPrincipal": "(|(objectClass=user)(objectClass=group))",
}
NOT_EMPTY = {"LDAPFilter", "Identity", "Members", "Name"}  # [ValidateNotNullOrEmpty]
# -Properties of Get-ADUser that are carried out: canonical name -> LDAP attribute.
USER_PROPERTIES = {"Description": "description", "MemberOf": "memberOf", "AccountExpirationDate": "accountExpires"}
USER_ATTRS = ["distinguishedName", "userAccountControl", "givenName", "sn", "name", "objectClass", "objectGUID",
              "sAMAccountName", "objectSid", "userPrincipalName"]
GROUP_ATTRS = ["distinguishedName", "groupType", "name", "objectClass", "objectGUID", "sAMAccountName", "objectSid"]
NONINTERACTIVE = "Windows PowerShell is in NonInteractive mode. Read and Prompt functionality is not available."
SERVER_DOWN = ("Unable to contact the server. This may be because this server does not exist, it is currently down, "
               "or it does not have the Active Directory Web Services running.")
REJECTED = "The server has rejected the client credentials."
PASSWORD_POLICY = "The password does not meet the length, complexity, or history requirement of the domain."
# Windows' text for the Win32 codes Samba puts in front of its messages (`0000202F: ...`).
WIN32_TEXT = {
    8239: "A constraint violation occurred",
    8240: "There is no such object on the server",
    8305: "An attempt was made to add an object to the directory with a name that is already in use",
    8344: "Insufficient access rights to perform the operation",
}


# --------------------------------------------------------------------------------------------
# LDAP filters: RFC 4515, strictly; the DC gets exactly the assertion values given


class FilterError(Exception):
    pass


ATTR_RE = re.compile(r"(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*")
OID_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+")
HEX = "0123456789abcdefABCDEF"


def canonical_filter(text):
    """The RFC 4515 filter `text` rewritten with every assertion-value byte as `\\hh` (so that
    ldap3's own, lenient, filter parser sends exactly these bytes), or FilterError."""
    p = _FilterParser(text)
    out = p.filter()
    if p.i != len(text):
        raise FilterError(f"text after the filter at {p.i}")
    return out


class _FilterParser:
    def __init__(self, text):
        self.s, self.i = text, 0

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ""

    def expect(self, c):
        if self.peek() != c:
            raise FilterError(f"expected {c!r} at {self.i}")
        self.i += 1

    def filter(self):
        self.expect("(")
        c = self.peek()
        if c in ("&", "|"):
            self.i += 1
            parts = []
            while self.peek() == "(":
                parts.append(self.filter())
            if not parts:
                raise FilterError(f"an empty {c} at {self.i}")
            out = "(" + c + "".join(parts) + ")"
        elif c == "!":
            self.i += 1
            out = "(!" + self.filter() + ")"
        else:
            out = "(" + self.item() + ")"
        self.expect(")")
        return out

    def value(self, star_ends):
        """Assertion-value bytes up to `)` (or `*` when star_ends)."""
        out = bytearray()
        while True:
            c = self.peek()
            if c == "" or c == ")" or (c == "*" and star_ends):
                return bytes(out)
            if c in "(\0" or c == "*":
                raise FilterError(f"an unescaped {c!r} in a value at {self.i}")
            if c == "\\":
                h = self.s[self.i + 1:self.i + 3]
                if len(h) != 2 or any(x not in HEX for x in h):
                    raise FilterError(f"a bad escape at {self.i}")
                out.append(int(h, 16))
                self.i += 3
                continue
            out += c.encode("utf-8", "surrogatepass")
            self.i += 1

    def item(self):
        m = ATTR_RE.match(self.s, self.i)
        attr = m.group(0) if m else ""
        self.i += len(attr)
        rest = self.s[self.i:self.i + 2]
        if rest.startswith(":"):  # extensible: attr [":dn"] [":" rule] ":=" value
            dn, rule = False, None
            if self.s[self.i:self.i + 3].lower() == ":dn" and self.s[self.i + 3:self.i + 4] == ":":
                dn = True
                self.i += 3
            if self.s[self.i:self.i + 2] != ":=":
                self.i += 1
                m = OID_RE.match(self.s, self.i)
                if not m:
                    raise FilterError(f"a bad matching rule at {self.i}")
                rule = m.group(0)
                self.i += len(rule)
            if self.s[self.i:self.i + 2] != ":=" or (not attr and not rule):
                raise FilterError(f"a bad extensible match at {self.i}")
            self.i += 2
            return (attr + (":dn" if dn else "") + (":" + rule if rule else "") + ":="
                    + escape_all(self.value(False)))
        if not attr:
            raise FilterError(f"no attribute description at {self.i}")
        if rest in ("~=", ">=", "<="):
            self.i += 2
            return attr + rest + escape_all(self.value(False))
        if not rest.startswith("="):
            raise FilterError(f"no filter type at {self.i}")
        self.i += 1
        pieces = [self.value(True)]
        while self.peek() == "*":
            self.i += 1
            pieces.append(self.value(True))
        if len(pieces) == 1:
            return attr + "=" + escape_all(pieces[0])
        if pieces == [b"", b""]:
            return attr + "=*"
        if any(not p for p in pieces[1:-1]):
            raise FilterError("an empty substring between two *")
        return attr + "=" + "*".join(escape_all(p) for p in pieces)


def escape_all(data):
    return "".join(f"\\{b:02x}" for b in data)


# --------------------------------------------------------------------------------------------
# Values


def sid_string(b):
    if len(b) < 8:
        return None
    n = b[1]
    subs = [int.from_bytes(b[8 + 4 * i:12 + 4 * i], "little") for i in range(n)]
    return "-".join(["S", str(b[0]), str(int.from_bytes(b[2:8], "big"))] + [str(s) for s in subs])


def sid_bytes(s):
    parts = s.split("-")
    rev, auth, subs = int(parts[1]), int(parts[2]), [int(x) for x in parts[3:]]
    return bytes([rev, len(subs)]) + auth.to_bytes(6, "big") + b"".join(x.to_bytes(4, "little") for x in subs)


def guid_string(b):
    return str(uuid.UUID(bytes_le=bytes(b))) if b and len(b) == 16 else None


DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z\Z")


def parse_date(text):
    """Unix seconds of exactly `yyyy-MM-ddTHH:mm:ssZ` (UTC), or None."""
    m = DATE_RE.match(text)
    if not m:
        return None
    try:
        d = datetime.datetime(*(int(x) for x in m.groups()), tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    if d.year < 1601:
        return None
    return int(d.timestamp())


def filetime(unix):
    return (unix + EPOCH_DIFF) * 10_000_000


# --------------------------------------------------------------------------------------------
# TLS: the stdlib's verification (chain + host name or IP), not ldap3's own name check


class _Tls(ldap3.Tls):
    def __init__(self, context, host):
        super().__init__(validate=ssl.CERT_REQUIRED)
        self._context, self._host = context, host

    def wrap_socket(self, connection, do_handshake=False):
        connection.socket = self._context.wrap_socket(connection.socket, server_side=False,
                                                      do_handshake_on_connect=do_handshake,
                                                      server_hostname=self._host)


class AdError(Exception):
    """A terminating error of the cmdlet being run."""

    def __init__(self, message, fqid, category, target, exception):
        super().__init__(message)
        self.message, self.fqid, self.category, self.target, self.exception = \
            message, fqid, category, target, exception


# --------------------------------------------------------------------------------------------


class Ad:
    def __init__(self, ps, url, ca, base_dn, realm, netbios, state):
        """`ps`: the standin module (PsError, Terminating, ps_date, the parser helpers); `state`: its
        State (the users file's accounts, and the passwords the stand-in holds for them)."""
        self.ps = ps
        u = urllib.parse.urlsplit(url)
        if u.scheme.lower() != "ldaps" or not u.hostname:
            raise SystemExit("standin: --ad-url must be ldaps://HOST[:PORT] (no plaintext LDAP)")
        self.host, self.port = u.hostname, u.port or 636
        self.context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.base_dn = base_dn
        if realm is None:
            dcs = [v for k, v in (rdn.split("=", 1) for rdn in base_dn.split(",") if "=" in rdn)
                   if k.strip().lower() == "dc"]
            if not dcs:
                raise SystemExit("standin: --ad-base-dn has no DC= parts: give --ad-realm")
            realm = ".".join(d.strip() for d in dcs)
        self.realm = realm.lower()
        self.netbios = (netbios or self.realm.split(".")[0]).upper()
        self.state = state
        self.users = state.file_users  # [(domain, user, password)] of the users file
        self.cmdlets = CMDLETS

    # ---- records ---------------------------------------------------------------------------

    def redact(self, script, params):
        """(script, params) as calls.jsonl holds them: each SecureString value replaced by
        `<redacted>` (with its SHA-256, so a test can check what arrived without the clear text)."""
        ps = self.ps
        out_params = []
        for name, v in params:
            if v.get("type") == "secure-string":
                v = {"type": "secure-string", "value": "<redacted>",
                     "sha256": hashlib.sha256(v["value"].encode("utf-8")).hexdigest()}
            out_params.append([name, v])
        src = script.encode("utf-8")
        spans = []
        try:
            import tree_sitter
            tree = tree_sitter.Parser(ps.PS_LANGUAGE).parse(src)
            stack = [tree.root_node]
            while stack:
                n = stack.pop()
                if n.type == "command":
                    try:
                        if ps._command_name(n) == "ConvertTo-SecureString":
                            els = ps._elements(n)
                            if els:
                                spans.append((els[0].start_byte, els[0].end_byte))
                    except ps.Refused:
                        pass
                stack.extend(n.children)
        except Exception:
            return "<redacted: the script holds a SecureString>", out_params
        for start, end in sorted(spans, reverse=True):
            src = src[:start] + b"'<redacted>'" + src[end:]
        if "ConvertTo-SecureString" in script and not spans:
            return "<redacted: the script holds a SecureString>", out_params
        return src.decode("utf-8"), out_params

    # ---- running ---------------------------------------------------------------------------

    def run(self, user, cmdlet, params):
        """(objects, errors, exit code) of one AD cmdlet call by WinRM user `user`."""
        ps = self.ps
        cls = CLS + cmdlet.replace("-", "")
        try:
            bound = self.bind(cmdlet, params, cls)
        except ps.Terminating as t:
            return [], [t.error], 1
        conn = None
        try:
            conn = self.connect(user)
            objects = getattr(self, "do_" + cmdlet.replace("-", "_"))(conn, bound)
            return objects, [], 0
        except AdError as e:
            return [], [ps.PsError(cmdlet, e.message, e.fqid, e.category, e.target, e.exception, cls)], 1
        except LDAPException:  # the connection broke mid-call
            return [], [ps.PsError(cmdlet, SERVER_DOWN, "ActiveDirectoryServer:0", "ResourceUnavailable",
                                   ":", "ADServerDownException", cls)], 1
        except Exception as e:  # a bug of the stand-in: say so, never a silent success
            import traceback
            ps.log(f"AD {cmdlet}: {traceback.format_exc()}")
            return [], [ps.PsError(cmdlet, f"the stand-in failed: {type(e).__name__}: {e}", "StandInFailed",
                                   "NotSpecified", ":", type(e).__name__, cls)], 1
        finally:
            if conn is not None:
                try:
                    conn.unbind()
                except Exception:
                    pass

    def bind(self, cmdlet, params, cls):
        """The bound parameters, as PowerShell binds them by name, or Terminating."""
        ps = self.ps
        spec = CMDLETS[cmdlet]
        bound = {}

        def fail(message, fqid, category="InvalidArgument", exception="ParameterBindingException"):
            raise ps.Terminating(ps.PsError(cmdlet, message, fqid, category, ":", exception, cls))

        for name, v in params:
            key = next((k for k in spec if k.lower() == name.lower()), None)
            if key is None:
                fail(f"A parameter cannot be found that matches parameter name '{name}'.", "NamedParameterNotFound")
            if key in bound:
                fail(f"Cannot bind parameter because parameter '{key}' is specified more than once. To provide "
                     "multiple values to parameters that can accept multiple values, use the array syntax. For "
                     "example, \"-parameter value1,value2,value3\".", "ParameterAlreadyBound")
            kind, t, value = spec[key][0], v["type"], v["value"]
            type_name = TYPES.get(key, AD_NS + IDENTITY.get(cmdlet, "ADObject"))
            if kind == "switch":
                if t not in ("switch", "boolean"):
                    fail(f"A positional parameter cannot be found that accepts argument '{value}'.",
                         "PositionalParameterNotFound")
                bound[key] = bool(value)
                continue
            if t == "switch":
                fail(f"Missing an argument for parameter '{key}'. Specify a parameter of type '{type_name}' and "
                     "try again.", "MissingArgument")
            if kind == "secure":
                if t != "secure-string":
                    shown = value if isinstance(value, str) else str(value)
                    fail(f"Cannot bind parameter '{key}'. Cannot convert the \"{shown}\" value of type "
                         f"\"System.String\" to type \"System.Security.SecureString\".",
                         "CannotConvertArgumentNoMessage")
                bound[key] = value
                continue
            if kind == "bool":
                if t != "boolean":
                    fail(f"Cannot process argument transformation on parameter '{key}'. Cannot convert value "
                         f"\"System.String\" to type \"System.Boolean\". Boolean parameters accept only Boolean "
                         "values and numbers, such as $True, $False, 1 or 0.", "ParameterArgumentTransformationError")
                bound[key] = value
                continue
            # text, texts, date: what PowerShell turns the literal into
            if t == "integer":
                value = str(value)
            elif t == "boolean":
                value = "True" if value else "False"
            elif t == "secure-string":
                value = "System.Security.SecureString"
            elif t == "text-list" and kind != "texts":
                if len(value) != 1:
                    fail(f"Cannot convert 'System.Object[]' to the type '{type_name}' required by parameter "
                         f"'{key}'. Specified method is not supported.", "CannotConvertArgument")
                value = value[0]
            if kind == "texts" and not isinstance(value, list):
                value = [value]
            if key in NOT_EMPTY and (value == "" or value == [] or (isinstance(value, list) and "" in value)):
                what = ("The argument is null, empty, or an element of the argument collection contains a null "
                        "value. Supply a collection that does not contain any null values and then try the command "
                        "again.") if kind == "texts" else ("The argument is null or empty. Provide an argument that "
                                                           "is not null or empty, and then try the command again.")
                fail(f"Cannot validate argument on parameter '{key}'. {what}", "ParameterArgumentValidationError",
                     category="InvalidData", exception="ParameterBindingValidationException")
            if kind == "date":
                unix = parse_date(value)
                if unix is None:
                    fail(f"Cannot bind parameter '{key}'. Cannot convert value \"{value}\" to type \"System.DateTime\". "
                         "Error: \"String was not recognized as a valid DateTime.\"", "CannotConvertArgumentNoMessage")
                value = unix
            bound[key] = value
        missing = [k for k, (_, mandatory) in spec.items() if mandatory and k not in bound]
        if missing:
            fail("Cannot process command because of one or more missing mandatory parameters: "
                 f"{' '.join(missing)}.", "MissingMandatoryParameter")
        return bound

    # ---- LDAP ------------------------------------------------------------------------------

    def domain_account(self, d):
        """Is a users-file line with DOMAIN `d` one of the domain's accounts (see the module's doc)?"""
        return d.upper() in ("", self.netbios, self.realm.upper())

    def password_of(self, user):
        """(bind name, password) of WinRM user `user` (`DOMAIN\\name` or `name`): a domain account of
        the users file, with the password the stand-in holds for it now."""
        domain, _, name = user.rpartition("\\")
        for d, n, _ in self.users:
            if n.lower() == name.lower() and (not domain or not d or domain.lower() == d.lower()
                                              or domain.upper() in (self.ps.COMPUTER, ".")):
                if not self.domain_account(d):
                    return None, None
                with self.state.lock:
                    u = self.state.user(n)
                    return f"{n}@{self.realm}", (u.get("Password") if u is not None else None)
        return None, None

    def password_set(self, sam, password):
        """The DC has just accepted `password` for the account `sam` (its sAMAccountName): if that is
        one of the users file's domain accounts, it is that user's password for the stand-in from
        now on (NTLM and Basic logins, the next bind). Logged without the password."""
        if not sam:
            return
        for d, n, _ in self.users:
            if n.lower() == sam.lower() and self.domain_account(d):
                if self.state.set_password(n, password):
                    self.ps.log(f"AD: the DC took a new password for {d or '(no domain)'}\\{n}: the stand-in's "
                                "record follows (the old one no longer logs in)")
                return

    def connect(self, user):
        name, password = self.password_of(user)
        if not password:  # an empty password would be an unauthenticated bind (RFC 4513 5.1.2)
            raise AdError(REJECTED, "ActiveDirectoryCmdlet:System.Security.Authentication.AuthenticationException",
                          "SecurityError", ":", "AuthenticationException")
        server = ldap3.Server(self.host, port=self.port, use_ssl=True, tls=_Tls(self.context, self.host),
                              get_info=ldap3.NONE, connect_timeout=10)
        conn = ldap3.Connection(server, user=name, password=password, authentication=ldap3.SIMPLE,
                                raise_exceptions=False, auto_escape=False, receive_timeout=30,
                                return_empty_attributes=False)
        try:
            conn.open()
        except LDAPException as e:  # no DC, or TLS refused (untrusted certificate, wrong name)
            self.ps.log(f"AD: cannot reach ldaps://{self.host}:{self.port}: {type(e).__name__}: {e}")
            raise AdError(SERVER_DOWN, "ActiveDirectoryServer:0", "ResourceUnavailable", ":",
                          "ADServerDownException")
        if not conn.bind():
            rc = conn.result.get("result")
            conn.unbind()
            self.ps.log(f"AD: the DC refused the bind as {name}: {rc} {conn.result.get('message')!r}")
            if rc == 49:
                raise AdError(REJECTED,
                              "ActiveDirectoryCmdlet:System.Security.Authentication.AuthenticationException",
                              "SecurityError", ":", "AuthenticationException")
            raise AdError(SERVER_DOWN, "ActiveDirectoryServer:0", "ResourceUnavailable", ":",
                          "ADServerDownException")
        return conn

    def search(self, conn, base, scope, filt, attrs):
        """[(dn, {attr lowercased: [bytes]})], or (rc, message) of the failure."""
        out, cookie = [], None
        while True:
            try:
                ok = conn.search(base, filt, scope, attributes=attrs, paged_size=PAGE if scope != ldap3.BASE else None,
                                 paged_cookie=cookie)
            except LDAPInvalidDnError:
                return 34, "invalid DN syntax"
            if not ok and conn.result["result"] != 0:
                return conn.result["result"], conn.result.get("message") or ""
            for e in conn.response or []:
                if e.get("type") != "searchResEntry":
                    continue
                out.append((e["dn"], {k.lower(): v for k, v in (e.get("raw_attributes") or {}).items()}))
            ctrl = (conn.result.get("controls") or {}).get("1.2.840.113556.1.4.319")
            cookie = ctrl["value"]["cookie"] if ctrl else None
            if not cookie:
                return out

    def resolve(self, conn, identity, kind, attrs=("userAccountControl",)):
        """(dn, attributes) of the object `identity` names (a DN, GUID, SID or sAMAccountName, as the
        AD cmdlets take it), or the ADIdentityNotFoundException."""
        cf = CLASS_FILTER[kind]
        attrs = list(attrs)
        if "=" in identity:
            found = self.search(conn, identity, ldap3.BASE, cf, attrs)
        else:
            try:
                key = "(objectGUID=" + escape_all(uuid.UUID(identity).bytes_le) + ")"
            except ValueError:
                if re.fullmatch(r"S-1-[0-9]+(-[0-9]+)+", identity, re.IGNORECASE):
                    key = "(objectSid=" + escape_all(sid_bytes(identity.upper())) + ")"
                else:
                    key = "(sAMAccountName=" + escape_all(identity.encode("utf-8")) + ")"
            found = self.search(conn, self.base_dn, ldap3.SUBTREE, f"(&{cf}{key})", attrs)
        if isinstance(found, tuple):
            if found[0] in (32, 34):
                found = []
            else:
                raise self.ldap_error("search", found, f"{identity}:{kind}")
        if len(found) != 1:
            if len(found) > 1:
                raise AdError(f"Multiple objects were found with identity: '{identity}' under: '{self.base_dn}'.",
                              f"ActiveDirectoryCmdlet:{AD_NS}ADMultipleMatchingIdentitiesException", "NotSpecified",
                              f"{identity}:{kind}", "ADMultipleMatchingIdentitiesException")
            raise AdError(f"Cannot find an object with identity: '{identity}' under: '{self.base_dn}'.",
                          f"ActiveDirectoryCmdlet:{AD_NS}ADIdentityNotFoundException", "ObjectNotFound",
                          f"{identity}:{kind}", "ADIdentityNotFoundException")
        return found[0]

    def ldap_error(self, op, failure, target):
        """The AdError Windows' AD cmdlets give for an LDAP failure (rc, message) of `op`
        (add, delete, password, modify, member-add, member-delete, search)."""
        rc, message = failure
        m = re.match(r"([0-9A-Fa-f]{8}):", message or "")
        win32 = int(m.group(1), 16) if m else 0
        if rc == 50:
            if op in ("add", "delete", "password"):
                return AdError("Access is denied", "ActiveDirectoryCmdlet:System.UnauthorizedAccessException",
                               "PermissionDenied", target, "UnauthorizedAccessException")
            return AdError(WIN32_TEXT[8344], "ActiveDirectoryServer:8344", "NotSpecified", target, "ADException")
        if rc == 19 and (op == "password" or win32 == 0x52D):
            return AdError(PASSWORD_POLICY, "ActiveDirectoryServer:1325", "InvalidData", target,
                           "ADPasswordComplexityException")
        if rc == 68 and op == "member-add":
            return AdError("The specified account name is already a member of the group", "ActiveDirectoryServer:1378",
                           "NotSpecified", target, "ADException")
        if rc in (16, 53) and op == "member-delete":
            return AdError("The specified account name is not a member of the group", "ActiveDirectoryServer:1377",
                           "NotSpecified", target, "ADException")
        if rc == 68 and op == "add-user":
            return AdError("The specified account already exists", "ActiveDirectoryServer:1316", "ResourceExists",
                           target, "ADIdentityAlreadyExistsException")
        if rc == 68:
            return AdError(WIN32_TEXT[8305], "ActiveDirectoryServer:8305", "ResourceExists", target,
                           "ADIdentityAlreadyExistsException")
        if rc in (32, 34):
            return AdError("Directory object not found", f"ActiveDirectoryCmdlet:{AD_NS}ADIdentityNotFoundException",
                           "ObjectNotFound", target, "ADIdentityNotFoundException")
        text = WIN32_TEXT.get(win32) or re.sub(r"^[0-9A-Fa-f]{8}: ", "", (message or "").strip()) or f"LDAP error {rc}"
        return AdError(text, f"ActiveDirectoryServer:{win32}", "NotSpecified", target, "ADException")

    def check(self, conn, ok, op, target):
        if not ok and conn.result["result"] != 0:
            raise self.ldap_error(op, (conn.result["result"], conn.result.get("message") or ""), target)

    def modify(self, conn, dn, changes, op, target, controls=None):
        try:
            ok = conn.modify(dn, changes, controls=controls)
        except LDAPInvalidDnError:
            raise self.ldap_error(op, (34, ""), target)
        self.check(conn, ok, op, target)

    def confirm(self, bound):
        """-Confirm:$false or the prompt a non-interactive powershell.exe cannot show."""
        if bound.get("Confirm", True):
            raise AdError(NONINTERACTIVE, "InvalidOperation", "InvalidOperation", ":", "PSInvalidOperationException")

    # ---- rendering -------------------------------------------------------------------------

    @staticmethod
    def _text(attrs, name):
        v = attrs.get(name.lower())
        return v[0].decode("utf-8", "replace") if v else None

    def _common(self, dn, a):
        oc = a.get("objectclass") or []
        return {"DistinguishedName": dn, "Name": self._text(a, "name"),
                "ObjectClass": oc[-1].decode() if oc else None,
                "ObjectGUID": guid_string((a.get("objectguid") or [None])[0]),
                "SamAccountName": self._text(a, "sAMAccountName"),
                "SID": sid_string((a.get("objectsid") or [b""])[0])}

    @staticmethod
    def _entity(obj):
        """The ADEntity members ConvertTo-Json adds after the AD properties."""
        names = sorted(obj, key=str.lower)
        out = {k: obj[k] for k in names}
        out.update({"PropertyNames": names, "AddedProperties": [], "RemovedProperties": [], "ModifiedProperties": [],
                    "PropertyCount": len(names)})
        return out

    def user_json(self, dn, a, props):
        uac = int(self._text(a, "userAccountControl") or 0)
        obj = self._common(dn, a)
        obj.update({"Enabled": not uac & 2, "GivenName": self._text(a, "givenName"), "Surname": self._text(a, "sn"),
                    "UserPrincipalName": self._text(a, "userPrincipalName")})
        for p in props:
            if p == "Description":
                obj[p] = self._text(a, "description")
            elif p == "MemberOf":
                obj[p] = [v.decode("utf-8", "replace") for v in a.get("memberof") or []]
            elif p == "AccountExpirationDate":
                ft = int(self._text(a, "accountExpires") or 0)
                obj[p] = None if ft in NEVER else self.ps.ps_date(ft // 10_000 - EPOCH_DIFF * 1000)
        return self._entity(obj)

    def group_json(self, dn, a):
        gt = int(self._text(a, "groupType") or 0) & 0xFFFFFFFF
        obj = self._common(dn, a)
        # Enums as Windows PowerShell 5.1's ConvertTo-Json writes them: numbers.
        # ADGroupCategory: Distribution 0, Security 1; ADGroupScope: DomainLocal 0, Global 1, Universal 2.
        obj["GroupCategory"] = 1 if gt & 0x80000000 else 0
        obj["GroupScope"] = 1 if gt & 2 else 0 if gt & 4 else 2 if gt & 8 else None
        return self._entity(obj)

    # ---- the cmdlets -----------------------------------------------------------------------

    def _get(self, conn, bound, class_filter, attrs):
        try:
            filt = canonical_filter(bound["LDAPFilter"])
        except FilterError:
            raise AdError("The search filter cannot be recognized", "ActiveDirectoryServer:8254", "NotSpecified", ":",
                          "ADException")
        base = bound.get("SearchBase", self.base_dn)
        found = self.search(conn, base, ldap3.SUBTREE, f"(&{class_filter}{filt})", attrs)
        if isinstance(found, tuple):
            raise self.ldap_error("search", found, ":")
        return found

    def do_Get_ADUser(self, conn, bound):
        props = []
        for p in bound.get("Properties", []):
            key = next((k for k in USER_PROPERTIES if k.lower() == p.lower()), None)
            if key is None:
                raise AdError(f"One or more properties are invalid.\r\nParameter name: {p}",
                              "ActiveDirectoryCmdlet:System.ArgumentException", "InvalidArgument", ":",
                              "ArgumentException")
            if key not in props:
                props.append(key)
        attrs = USER_ATTRS + [USER_PROPERTIES[p] for p in props]
        return [self.user_json(dn, a, props) for dn, a in self._get(conn, bound, CLASS_FILTER["ADUser"], attrs)]

    def do_Get_ADObject(self, conn, bound):
        # Get-ADObject's default properties, and the requested ones under the name asked for.
        wanted = {p.lower(): p for p in bound.get("Properties", [])}
        unknown = [p for p in wanted if p not in ("samaccountname", "userprincipalname")]
        if unknown:
            raise AdError(f"One or more properties are invalid.\r\nParameter name: {wanted[unknown[0]]}",
                          "ActiveDirectoryCmdlet:System.ArgumentException", "InvalidArgument", ":",
                          "ArgumentException")
        attrs = ["distinguishedName", "name", "objectClass", "objectGUID"] + [wanted[p] for p in wanted]
        out = []
        for dn, a in self._get(conn, bound, "(objectClass=*)", attrs):
            oc = a.get("objectclass") or []
            obj = {"DistinguishedName": dn, "Name": self._text(a, "name"),
                   "ObjectClass": oc[-1].decode() if oc else None,
                   "ObjectGUID": guid_string((a.get("objectguid") or [None])[0])}
            for low, asked in wanted.items():
                obj[asked] = self._text(a, asked)
            out.append(self._entity(obj))
        return out

    def do_Get_ADGroup(self, conn, bound):
        return [self.group_json(dn, a) for dn, a in self._get(conn, bound, CLASS_FILTER["ADGroup"], GROUP_ATTRS)]

    def do_New_ADUser(self, conn, bound):
        path = bound.get("Path", f"CN=Users,{self.base_dn}")
        dn = f"CN={escape_rdn(bound['Name'])},{path}"
        target = f"{dn}:String"
        attrs = {"objectClass": ["top", "person", "organizationalPerson", "user"], "userAccountControl": "514"}
        for param, attr in (("SamAccountName", "sAMAccountName"), ("UserPrincipalName", "userPrincipalName"),
                            ("Description", "description")):
            if param in bound:
                attrs[attr] = bound[param]
        if "AccountExpirationDate" in bound:
            attrs["accountExpires"] = str(filetime(bound["AccountExpirationDate"]))
        try:
            ok = conn.add(dn, attributes=attrs)
        except LDAPInvalidDnError:
            raise self.ldap_error("add", (34, ""), target)
        if not ok and conn.result["result"] == 68:
            # Windows says "account already exists" when the sAMAccountName is taken, and "a name
            # already in use" when only the DN is.
            rc, msg = 68, conn.result.get("message") or ""
            taken = "samAccountName" in msg
            if not taken and "SamAccountName" in bound:
                got = self.search(conn, self.base_dn, ldap3.SUBTREE,
                                  "(sAMAccountName=" + escape_all(bound["SamAccountName"].encode()) + ")", ["cn"])
                taken = isinstance(got, list) and bool(got)
            raise self.ldap_error("add-user" if taken else "add", (rc, msg), target)
        self.check(conn, ok, "add", target)
        # As the real cmdlet: the password and the enabling are later steps; if one fails, the
        # account stays, disabled (nothing is cleaned up).
        if "AccountPassword" in bound:
            self.set_password(conn, dn, bound["AccountPassword"], target, bound.get("SamAccountName"))
        if bound.get("Enabled"):
            self.set_flag(conn, dn, 2, False, target)
        return []

    def set_password(self, conn, dn, password, target, sam=None):
        """Reset the password of `dn` (sAMAccountName `sam`; read from the DC when not given); once
        the DC has taken it, the stand-in's own record follows (password_set)."""
        value = f'"{password}"'.encode("utf-16-le")
        self.modify(conn, dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [value])]}, "password", target)
        if sam is None:
            found = self.search(conn, dn, ldap3.BASE, "(objectClass=*)", ["sAMAccountName"])
            sam = self._text(found[0][1], "sAMAccountName") if isinstance(found, list) and found else None
            if sam is None:
                self.ps.log(f"AD: cannot read the sAMAccountName of {dn} after setting its password")
        self.password_set(sam, password)

    def set_flag(self, conn, dn, bit, on, target, uac=None):
        """Read-modify-write userAccountControl: only `bit` changes."""
        if uac is None:
            found = self.search(conn, dn, ldap3.BASE, "(objectClass=*)", ["userAccountControl"])
            if isinstance(found, tuple):
                raise self.ldap_error("modify", found, target)
            uac = int(self._text(found[0][1], "userAccountControl") or 0) if found else 0
        new = (uac | bit) if on else (uac & ~bit)
        self.modify(conn, dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(new)])]}, "modify", target)

    def do_Set_ADAccountPassword(self, conn, bound):
        identity = bound["Identity"]
        if not bound.get("Reset") or "NewPassword" not in bound:
            # Without -Reset it prompts for the old password; without -NewPassword, for the new one.
            raise AdError(NONINTERACTIVE, "InvalidOperation", "InvalidOperation", ":", "PSInvalidOperationException")
        dn, a = self.resolve(conn, identity, "ADAccount", attrs=("sAMAccountName",))
        self.set_password(conn, dn, bound["NewPassword"], f"{identity}:ADAccount", self._text(a, "sAMAccountName"))
        return []

    def do_Set_ADAccountExpiration(self, conn, bound):
        identity = bound["Identity"]
        dn, _ = self.resolve(conn, identity, "ADAccount")
        self.modify(conn, dn, {"accountExpires": [(ldap3.MODIFY_REPLACE, [str(filetime(bound["DateTime"]))])]},
                    "modify", f"{identity}:ADAccount")
        return []

    def _enable(self, conn, bound, on):
        identity = bound["Identity"]
        dn, a = self.resolve(conn, identity, "ADAccount")
        self.set_flag(conn, dn, 2, not on, f"{identity}:ADAccount", int(self._text(a, "userAccountControl") or 0))
        return []

    def do_Enable_ADAccount(self, conn, bound):
        return self._enable(conn, bound, True)

    def do_Disable_ADAccount(self, conn, bound):
        return self._enable(conn, bound, False)

    def _members(self, conn, bound, add):
        identity = bound["Identity"]
        group, _ = self.resolve(conn, identity, "ADGroup", attrs=("cn",))
        members = [self.resolve(conn, m, "ADPrincipal", attrs=("cn",))[0] for m in bound["Members"]]
        if not add:
            self.confirm(bound)
        target = f"{identity}:ADGroup"
        op = "member-add" if add else "member-delete"
        how = ldap3.MODIFY_ADD if add else ldap3.MODIFY_DELETE
        strict = bound.get("DisablePermissiveModify", False)
        # Permissive modify (the cmdlets' default): a member already there (or already gone) is
        # no error. Samba ignores the control for `member`, so the stand-in does it itself.
        benign = (68,) if add else (16, 53)
        try:
            self.modify(conn, group, {"member": [(how, members)]}, op, target,
                        controls=None if strict else [(PERMISSIVE_MODIFY, False, None)])
        except AdError:
            if strict or conn.result["result"] not in benign:
                raise
            for m in members:  # one at a time, so the others still happen
                ok = conn.modify(group, {"member": [(how, [m])]})
                if not ok and conn.result["result"] not in benign:
                    self.check(conn, ok, op, target)
        return []

    def do_Add_ADGroupMember(self, conn, bound):
        return self._members(conn, bound, True)

    def do_Remove_ADGroupMember(self, conn, bound):
        return self._members(conn, bound, False)

    def do_Remove_ADUser(self, conn, bound):
        identity = bound["Identity"]
        dn, _ = self.resolve(conn, identity, "ADUser")
        self.confirm(bound)
        try:
            ok = conn.delete(dn)
        except LDAPInvalidDnError:
            raise self.ldap_error("delete", (34, ""), f"{identity}:ADUser")
        self.check(conn, ok, "delete", f"{identity}:ADUser")
        return []
