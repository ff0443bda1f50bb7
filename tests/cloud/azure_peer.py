"""A stand-in for Microsoft Entra ID's token endpoint, the instance metadata identity
endpoint and Azure Resource Manager (Compute and Network reads), for Latch's Azure tests.

No Azure emulator exists for these APIs; this peer answers in the shapes of the providers'
published examples, and with their faults. Sources (azure-rest-api-specs paths are under
specification/…/stable/<version>/examples/):
- Compute 2024-07-01: virtualMachineExamples/VirtualMachine_ListAll_MinimumSet_Gen.json,
  VirtualMachine_ListBySubscription_ByLocation.json (item: id, name, type, location, tags,
  properties.networkProfile.networkInterfaces[].id/.properties.primary, provisioningState),
  VirtualMachine_Get_InstanceView.json (statuses[], "PowerState/running"),
  virtualMachineScaleSetExamples/VirtualMachineScaleSet_ListAll_*_Gen.json,
  VirtualMachineScaleSetVM_List_MaximumSet_Gen.json (top-level instanceId, NIC ids under
  Microsoft.Compute, instanceView only with $expand=instanceView); lists page by nextLink
  (an absolute URL carrying api-version), which may be absent.
- Network 2024-05-01: NetworkInterfaceGet.json (ipConfigurations[].properties
  .privateIPAddress — possibly a prefix "a.b.c.d/28" — .primary, .publicIPAddress.id),
  PublicIpAddressGet.json (properties.ipAddress, absent while unallocated); scale-set VM
  NICs: NetworkInterfaces_ListVirtualMachineScaleSetVMNetworkInterfaces, api-version
  2018-10-01 (as Azure's Go SDK sends it), on the Compute path, provider segment matched
  case-insensitively (the spec spells it microsoft.Compute); their public addresses:
  VmssPublicIpListAll.json (`…/virtualMachineScaleSets/{vmss}/publicipaddresses`) and
  VmssPublicIpGet.json (`…/virtualMachines/{i}/networkInterfaces/{nic}/ipconfigurations/
  {ip}/publicipaddresses/{name}`), 2018-10-01, ids under Microsoft.Compute
  (`…/ipConfigurations/ip1/publicIPAddresses/pub1`), the NIC's ipConfiguration pointing at
  it by `publicIPAddress.id`.
- Errors: common-types CloudError {"error":{"code","message"}}; 401
  ExpiredAuthenticationToken / InvalidAuthenticationToken (public captures) with
  WWW-Authenticate `Bearer authorization_uri="…", error="invalid_token",
  error_description="…"` (azure-sdk-for-python's ARM challenge form); 429 with
  Retry-After seconds (learn.microsoft.com, "Throttling Resource Manager requests").
- Key Vault 7.5: specification/keyvault/data-plane/Microsoft.KeyVault/stable/7.5/examples/
  GetSecret-example.json ({"value","id","attributes"}); the 401 challenge of a request
  without a token, `Bearer authorization="https://login.windows.net/{tenant}",
  resource="https://vault.azure.net"` with {"error":{"code":"Unauthorized",…}} (Azure SDK
  recordings); 404 SecretNotFound. A token must be for https://vault.azure.net/.default.
- Token endpoint: MicrosoftDocs entra-docs v2-oauth2-client-creds-grant-flow.md (form
  fields; success {"token_type","expires_in","ext_expires_in","access_token"}; error
  {"error","error_description","error_codes",…}). IMDS: how-to-use-vm-token.md
  (Metadata: true required; expires_in/expires_on/not_before as strings).

  python3 azure_peer.py serve PORT FIXTURE.json LOG_FILE

FIXTURE: {"tenant", "client_id", "client_secret", "federated_token", "token_uses" (a token
expires after this many ARM requests; 0 never), "faults": {"vm-list": [429, …],
"nic-list": [500]} (served on the first requests of that kind), "page_size",
"vms": [{"sub","rg","name","tags","power","private","public"}],
"scale_sets": [{"sub","rg","name","tags","vms": [{"instance","power","private","public"}]}],
"key_vault": {"NAME": "VALUE"}}.
LOG_FILE gets one line per request: what was asked and whether it was authorized — never a
secret or a token.
"""

import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

COMPUTE, NETWORK, VMSS_NETWORK = "2024-07-01", "2024-05-01", "2018-10-01"
LOCK = threading.Lock()


class State:
    def __init__(self, port, fixture, log):
        self.port, self.fx, self.log = port, fixture, log
        self.tokens = {}  # token -> uses
        self.audience = {}  # token -> scope or resource it was issued for
        self.faults = {k: list(v) for k, v in fixture.get("faults", {}).items()}

    def note(self, line):
        with LOCK, open(self.log, "a") as f:
            f.write(line + "\n")


def vm_id(v):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s" % (
        v["sub"], v["rg"], v["name"])


def nic_id(v):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkInterfaces/%s-nic" % (
        v["sub"], v["rg"], v["name"])


def pip_id(v):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/publicIPAddresses/%s-ip" % (
        v["sub"], v["rg"], v["name"])


def ss_id(s):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachineScaleSets/%s" % (
        s["sub"], s["rg"], s["name"])


def statuses(power):
    return [
        {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
         "time": "2026-11-30T12:00:00.0000000+00:00"},
        {"code": "PowerState/" + power, "level": "Info", "displayStatus": "VM " + power},
    ]


def vm_json(v):
    return {
        "properties": {
            "vmId": str(uuid.uuid5(uuid.NAMESPACE_URL, vm_id(v))),
            "hardwareProfile": {"vmSize": "Standard_B1s"},
            "networkProfile": {"networkInterfaces": [{"id": nic_id(v), "properties": {"primary": True}}]},
            "provisioningState": "Succeeded",
        },
        "type": "Microsoft.Compute/virtualMachines",
        "location": "eastus",
        "tags": v.get("tags", {}),
        "id": vm_id(v),
        "name": v["name"],
    }


def nic_json(nid, private, vm, public=None):
    ipconf = {
        "provisioningState": "Succeeded",
        "privateIPAddress": private,
        "privateIPAllocationMethod": "Dynamic",
        "primary": True,
        "privateIPAddressVersion": "IPv4",
    }
    if public:
        ipconf["publicIPAddress"] = {"id": public}
    return {
        "name": nid.rsplit("/", 1)[1],
        "id": nid,
        "location": "eastus",
        "properties": {
            "provisioningState": "Succeeded",
            "ipConfigurations": [
                {"name": "ipconfig1", "id": nid + "/ipConfigurations/ipconfig1", "properties": ipconf},
                # A secondary configuration with a prefix, as in NetworkInterfaceGet.json.
                {"name": "ipconfig2", "id": nid + "/ipConfigurations/ipconfig2",
                 "properties": {"provisioningState": "Succeeded", "privateIPAddress": "172.20.2.16/28",
                                "privateIPAddressPrefixLength": 28, "privateIPAllocationMethod": "Dynamic",
                                "primary": False, "privateIPAddressVersion": "IPv4"}},
            ],
            "macAddress": "00-0D-3A-1B-C7-21",
            "primary": True,
            "virtualMachine": {"id": vm},
        },
        "type": "Microsoft.Network/networkInterfaces",
    }


def pip_json(v):
    props = {"provisioningState": "Succeeded", "publicIPAddressVersion": "IPv4",
             "publicIPAllocationMethod": "Static", "idleTimeoutInMinutes": 4}
    if v.get("public"):
        props["ipAddress"] = v["public"]
    return {"name": v["name"] + "-ip", "id": pip_id(v), "location": "eastus", "properties": props,
            "type": "Microsoft.Network/publicIPAddresses"}


def ss_json(s):
    return {"id": ss_id(s), "name": s["name"], "type": "Microsoft.Compute/virtualMachineScaleSets",
            "location": "eastus", "tags": s.get("tags", {}),
            "sku": {"tier": "Standard", "capacity": len(s["vms"]), "name": "Standard_B1s"},
            "properties": {"provisioningState": "Succeeded", "orchestrationMode": "Uniform"}}


def ss_vm_id(s, m):
    return ss_id(s) + "/virtualMachines/" + m["instance"]


def ss_nic_id(s, m):
    return ss_vm_id(s, m) + "/networkInterfaces/nic0"


def ss_pip_id(s, m):
    return ss_nic_id(s, m) + "/ipConfigurations/ipconfig1/publicIPAddresses/pub1"


def ss_nic_json(s, m):
    return nic_json(ss_nic_id(s, m), m["private"], ss_vm_id(s, m), ss_pip_id(s, m) if m.get("public") else None)


def ss_pip_json(s, m):
    return {"name": "pub1", "id": ss_pip_id(s, m), "etag": 'W/"00000000-0000-0000-0000-000000000000"',
            "properties": {"provisioningState": "Succeeded", "ipAddress": m["public"],
                           "publicIPAddressVersion": "IPv4", "publicIPAllocationMethod": "Dynamic",
                           "idleTimeoutInMinutes": 10,
                           "ipConfiguration": {"id": ss_nic_id(s, m) + "/ipConfigurations/ipconfig1"}}}


def ss_vm_json(s, m, expand):
    props = {
        "latestModelApplied": True,
        "vmId": str(uuid.uuid5(uuid.NAMESPACE_URL, ss_vm_id(s, m))),
        "networkProfile": {"networkInterfaces": [{"id": ss_nic_id(s, m), "properties": {"primary": True}}]},
        "provisioningState": "Succeeded",
    }
    if expand:
        props["instanceView"] = {"platformUpdateDomain": 0, "platformFaultDomain": 0,
                                 "statuses": statuses(m["power"])}
    return {"name": "%s_%s" % (s["name"], m["instance"]), "id": ss_vm_id(s, m),
            "type": "Microsoft.Compute/virtualMachines", "location": "eastus", "tags": {},
            "instanceId": m["instance"], "properties": props}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, *args):
        pass

    def send(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def arm_error(self, status, code, message, headers=()):
        self.send(status, {"error": {"code": code, "message": message}}, headers)

    # --- tokens -------------------------------------------------------------------------------
    def issue(self, kind, audience):
        token = "tok-" + uuid.uuid4().hex
        with LOCK:
            self.state.tokens[token] = 0
            self.state.audience[token] = audience.rstrip("/").removesuffix("/.default")
        self.state.note("TOKEN %s issued" % kind)
        return token

    def do_POST(self):
        st, fx = self.state, self.state.fx
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        if url.path != "/%s/oauth2/v2.0/token" % fx["tenant"]:
            st.note("POST %s unknown" % url.path)
            return self.send(404, {"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."})
        good_scope = form.get("scope", "").endswith("/.default")
        if form.get("grant_type") != "client_credentials" or not good_scope:
            st.note("TOKEN refused: bad grant or scope")
            return self.send(400, {"error": "invalid_scope", "error_description":
                                   "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
                                   "error_codes": [70011]})
        if form.get("client_id") != fx["client_id"]:
            st.note("TOKEN refused: unknown client")
            return self.send(400, {"error": "unauthorized_client", "error_description":
                                   "AADSTS700016: Application not found in the directory.", "error_codes": [700016]})
        if "client_secret" in form:
            kind, ok = "client-secret", form["client_secret"] == fx["client_secret"]
        elif form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            kind, ok = "workload-identity", form.get("client_assertion") == fx["federated_token"]
        else:
            kind, ok = "none", False
        if not ok:
            st.note("TOKEN refused: %s" % kind)
            return self.send(401, {"error": "invalid_client", "error_description":
                                   "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in "
                                   "the request is the client secret value, not the client secret ID.",
                                   "error_codes": [7000215], "trace_id": str(uuid.uuid4()),
                                   "correlation_id": str(uuid.uuid4())})
        token = self.issue(kind, form["scope"])
        self.send(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})

    # --- reads ----------------------------------------------------------------------------------
    def do_GET(self):
        st, fx = self.state, self.state.fx
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        if url.path == "/metadata/identity/oauth2/token":
            if self.headers.get("Metadata") != "true":
                st.note("TOKEN refused: imds without Metadata header")
                return self.send(400, {"error": "invalid_request", "error_description": "Required metadata header not specified"})
            token = self.issue("managed-identity", query.get("resource", ""))
            now = int(time.time())
            return self.send(200, {"access_token": token, "refresh_token": "", "expires_in": "3599",
                                   "expires_on": str(now + 3599), "not_before": str(now),
                                   "resource": query.get("resource", ""), "token_type": "Bearer"})
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if url.path.startswith("/secrets/"):
            return self.key_vault(url, query, token)
        challenge = ("WWW-Authenticate", 'Bearer authorization_uri="https://login.windows.net/", '
                     'error="invalid_token", error_description="The access token is invalid or expired."')
        with LOCK:
            uses = st.tokens.get(token)
            if uses is not None:
                st.tokens[token] = uses + 1
        if uses is None:
            st.note("GET %s unauthorized" % url.path)
            return self.arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.", [challenge])
        if fx.get("token_uses") and uses >= fx["token_uses"]:
            st.note("GET %s expired-token" % url.path)
            return self.arm_error(401, "ExpiredAuthenticationToken",
                                  "The access token expiry UTC time is earlier than current UTC time.", [challenge])
        self.route(url, query)

    def key_vault(self, url, query, token):
        st, fx = self.state, self.state.fx
        with LOCK:
            audience = st.audience.get(token)
        if audience is None:
            st.note("KV %s challenge" % url.path)
            return self.arm_error(401, "Unauthorized", "Request is missing a Bearer or PoP token.", [
                ("WWW-Authenticate", 'Bearer authorization="https://login.windows.net/%s", '
                 'resource="https://vault.azure.net"' % fx["tenant"])])
        if audience != "https://vault.azure.net":
            st.note("KV %s wrong-audience" % url.path)
            return self.arm_error(401, "Unauthorized", "AKV10022: Invalid audience.")
        if query.get("api-version") != "7.5":
            return self.arm_error(400, "BadParameter", "The specified version (%s) is not recognized." % query.get("api-version"))
        parts = url.path.strip("/").split("/")
        name = parts[1] if len(parts) > 1 else ""
        value = fx.get("key_vault", {}).get(name)
        if value is None:
            st.note("KV %s not-found" % url.path)
            return self.arm_error(404, "SecretNotFound",
                                  "A secret with (name/id) %s was not found in this key vault." % name)
        st.note("KV %s ok" % url.path)
        self.send(200, {"value": value, "id": "http://127.0.0.1:%d/secrets/%s/4387e9f3d6e14c459867679a90fd0f79" % (st.port, name),
                        "attributes": {"enabled": True, "created": 1493938410, "updated": 1493938410,
                                       "recoveryLevel": "Recoverable+Purgeable"}})

    def fault(self, kind, path):
        st = self.state
        with LOCK:
            pending = st.faults.get(kind) or []
            status = pending.pop(0) if pending else None
        if status is None:
            return False
        st.note("GET %s fault %d" % (path, status))
        if status == 429:
            self.arm_error(429, "TooManyRequests", "The request is being throttled as the limit has been "
                           "reached for operation 'ListVirtualMachines'. Please try again after '1' seconds.",
                           [("Retry-After", "1"), ("x-ms-ratelimit-remaining-subscription-reads", "0")])
        else:
            self.arm_error(status, "InternalServerError", "Encountered internal server error. Diagnostic information: timestamp '20261130T120000Z'.")
        return True

    def page(self, path, version, items, query):
        size = int(self.state.fx.get("page_size", 2))
        start = int(query.get("$skiptoken", "0") or 0)
        body = {"value": items[start:start + size]}
        if start + size < len(items):
            body["nextLink"] = "http://127.0.0.1:%d%s?api-version=%s&%s=%d" % (
                self.state.port, quote(path), version, quote("$skiptoken"), start + size)
        self.send(200, body)

    def route(self, url, query):
        st, fx = self.state, self.state.fx
        path = url.path
        segs = [s.lower() for s in path.strip("/").split("/")]
        version = query.get("api-version")
        st.note("GET %s %s" % (path, "&".join("%s=%s" % kv for kv in sorted(query.items()))))
        if len(segs) < 2 or segs[0] != "subscriptions":
            return self.arm_error(404, "InvalidResourceNamespace", "No route.")
        sub = segs[1]
        vms = [v for v in fx["vms"] if v["sub"].lower() == sub]
        sets = [s for s in fx.get("scale_sets", []) if s["sub"].lower() == sub]
        if not any(v["sub"].lower() == sub for v in fx["vms"] + fx.get("scale_sets", [])):
            return self.arm_error(404, "SubscriptionNotFound", "The subscription '%s' could not be found." % sub)
        rest = segs[2:]
        if rest[:1] == ["resourcegroups"]:
            rg = rest[1] if len(rest) > 1 else ""
            if not any(x["rg"].lower() == rg for x in vms + sets):
                return self.arm_error(404, "ResourceGroupNotFound", "Resource group '%s' could not be found." % rg)
            vms = [v for v in vms if v["rg"].lower() == rg]
            sets = [s for s in sets if s["rg"].lower() == rg]
            rest = rest[2:]
        if rest[:1] != ["providers"] or len(rest) < 3:
            return self.arm_error(404, "NoRegisteredProviderFound", "No registered resource provider found.")
        provider, kind, tail = rest[1], rest[2], rest[3:]
        vmss_network = "networkinterfaces" in tail or "publicipaddresses" in tail
        want = VMSS_NETWORK if vmss_network else (COMPUTE if provider == "microsoft.compute" else NETWORK)
        if version != want:
            return self.arm_error(400, "NoRegisteredProviderFound",
                                  "No registered resource provider found for location 'eastus' and API version '%s' "
                                  "for type '%s'." % (version, kind))
        if provider == "microsoft.compute" and kind == "virtualmachines":
            if not tail:
                if self.fault("vm-list", path):
                    return
                return self.page(path, version, [vm_json(v) for v in vms], query)
            v = next((v for v in vms if v["name"].lower() == tail[0]), None)
            if v is None:
                return self.arm_error(404, "ResourceNotFound", "The Resource 'Microsoft.Compute/virtualMachines/%s' was not found." % tail[0])
            if tail[1:] == ["instanceview"]:
                return self.send(200, {"computerName": v["name"], "osName": "debian", "statuses": statuses(v["power"])})
            if not tail[1:]:
                return self.send(200, vm_json(v))
        if provider == "microsoft.network" and kind == "networkinterfaces":
            items = [nic_json(nic_id(v), v["private"], vm_id(v), pip_id(v) if v.get("public") else None) for v in vms]
            if not tail:
                if self.fault("nic-list", path):
                    return
                return self.page(path, version, items, query)
            hit = [n for n in items if n["name"].lower() == tail[0]]
            if hit and not tail[1:]:
                return self.send(200, hit[0])
        if provider == "microsoft.network" and kind == "publicipaddresses":
            items = [pip_json(v) for v in vms if v.get("public")]
            if not tail:
                return self.page(path, version, items, query)
            hit = [p for p in items if p["name"].lower() == tail[0]]
            if hit and not tail[1:]:
                return self.send(200, hit[0])
        if provider == "microsoft.compute" and kind == "virtualmachinescalesets":
            if not tail:
                return self.page(path, version, [ss_json(s) for s in sets], query)
            s = next((s for s in sets if s["name"].lower() == tail[0]), None)
            if s is None:
                return self.arm_error(404, "ResourceNotFound", "The Resource 'Microsoft.Compute/virtualMachineScaleSets/%s' was not found." % tail[0])
            more = tail[1:]
            expand = query.get("$expand") == "instanceView"
            if not more:
                return self.send(200, ss_json(s))
            if more == ["virtualmachines"]:
                return self.page(path, version, [ss_vm_json(s, m, expand) for m in s["vms"]], query)
            if more == ["networkinterfaces"]:
                return self.page(path, version, [ss_nic_json(s, m) for m in s["vms"]], query)
            if more == ["publicipaddresses"]:
                return self.page(path, version, [ss_pip_json(s, m) for m in s["vms"] if m.get("public")], query)
            if len(more) >= 2 and more[0] == "virtualmachines":
                m = next((m for m in s["vms"] if m["instance"] == more[1]), None)
                if m is None:
                    return self.arm_error(404, "NotFound", "The entity was not found.")
                if more[2:] == []:
                    return self.send(200, ss_vm_json(s, m, expand))
                if more[2:] == ["networkinterfaces"]:
                    return self.page(path, version, [ss_nic_json(s, m)], query)
                if (more[2:] == ["networkinterfaces", "nic0", "ipconfigurations", "ipconfig1", "publicipaddresses", "pub1"]
                        and m.get("public")):
                    return self.send(200, ss_pip_json(s, m))
        return self.arm_error(404, "ResourceNotFound", "No route for %s." % path)


def main():
    if sys.argv[1:2] != ["serve"]:
        sys.exit("usage: azure_peer.py serve PORT FIXTURE LOG")
    port, fixture, log = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(fixture) as f:
        Handler.state = State(port, json.load(f), log)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
