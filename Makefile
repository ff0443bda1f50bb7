# One entry point for building, testing and demonstrating Latch on a fresh Debian machine.
# `make test` and `make demo` install what they need first, and no more (the setup layers).

CARGO ?= cargo
GUEST_FLAGS := --profile guest --target wasm32-wasip2
GUEST_CRATES := -p ssh-servers -p ec2-ssh -p azure-vm-ssh -p windows-dc -p rdp-servers -p compat-v0-1 -p compat-v0-2 -p canary-guest -p bench-guest -p denial-spin -p denial-balloon -p denial-sleep -p denial-trap -p denial-reach-unlisted -p denial-read-unlisted-secret -p denial-foreign-import -p denial-ambient -p denial-borrow-secret -p winrm-probe
NATIVE := --workspace --exclude 'denial-*' --exclude bench-guest --exclude compat-v0-1 --exclude compat-v0-2 --exclude canary-guest --exclude winrm-probe
GUEST_DIR := target/wasm32-wasip2/guest

.PHONY: all setup setup-build setup-ssh setup-cloud setup-windows guests build test lint bench bench-fleet bench-first-grant bench-ec2-discovery demo demo-windows demo-ec2 clean

all: build

# Set-up in layers: each command installs what it needs and no more (Debian, as root;
# idempotent). Python peers go into one venv, target/py, never system-wide.
#   setup-build    the wasm32-wasip2 target (guests)
#   setup-ssh      + sshd and the tools of the sshd test fleet          -> make demo
#   setup-cloud    + the Python peers' venv (moto, OpenBao, …)           -> make demo-ec2
#   setup-windows  + Samba AD DC, FreeRDP, Xvfb, Kerberos and LDAP tools -> make demo-windows
#   setup          all of it, the fleet's variants (shells, BusyBox)     -> make test
APT_NEED = missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

SSH_PACKAGES := openssh-server openssh-client sudo procps util-linux python3
WINDOWS_PACKAGES := samba samba-ad-dc samba-ad-provision winbind krb5-user ldap-utils openssl \
  freerdp2-shadow-x11 freerdp2-x11 winpr-utils xvfb iproute2
# The fleet's variants (login shells, BusyBox's user applets built from Debian's source).
VARIANT_PACKAGES := tcsh zsh build-essential bzip2 busybox

## setup-build: what building the guests needs.
setup-build:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

## setup-ssh: the sshd test fleet (make demo).
setup-ssh: setup-build
	@$(call APT_NEED,$(SSH_PACKAGES))

## setup-cloud: the Python peers (moto, OpenBao, the WinRM clients, schemathesis) in target/py.
setup-cloud: setup-ssh
	@bash tests/winrm/venv.sh target/py

## setup-windows: the Samba AD DC, the RDP (FreeRDP) login check, the Windows stand-in.
setup-windows: setup-cloud
	@$(call APT_NEED,$(WINDOWS_PACKAGES))

## setup: everything every test needs.
setup: setup-windows
	@$(call APT_NEED,$(VARIANT_PACKAGES))
	@bash tests/fleet/busybox.sh target/busybox

## guests: build every guest as a WebAssembly component.
guests: setup-build
	$(CARGO) build $(GUEST_FLAGS) $(GUEST_CRATES)

## build: guests and the `latch` binary.
build: guests
	$(CARGO) build -p latch

## test: build guests, then run every test (unit, integration, CLI, denials, end to end
## against real sshd hosts). The shared test fleet is stopped afterwards, whatever happened.
test: setup guests
	@rc=0; $(CARGO) test $(NATIVE) || rc=$$?; \
	bash tests/fleet/fleet.sh down target/fleet-tests; \
	bash tests/fleet/fleet.sh down target/fleet-rotation; \
	bash tests/fleet/fleet.sh down target/fleet-rotation-ec2; \
	bash tests/fleet/fleet.sh down target/fleet-rotation-forget; \
	bash tests/fleet/fleet.sh down target/fleet-distros; \
	bash tests/fleet/fleet.sh down target/fleet-ec2; \
	bash tests/cloud/moto.sh down target/moto-tests; \
	bash tests/cloud/openbao.sh down target/openbao-tests; \
	bash tests/cloud/peer.sh down target/azure-tests; \
	bash tests/cloud/peer.sh down target/gcp-tests; \
	bash tests/cloud/peer.sh down target/hostile-ec2; \
	bash tests/cloud/peer.sh down target/aws-identity-tests; \
	bash tests/samba/dc.sh down target/samba-tests; \
	bash tests/samba/dc.sh down target/samba-rotation; \
	bash tests/samba/dc.sh down target/samba-rotation-winrm; exit $$rc

## lint: formatting and clippy, for the host and for the guests' real target.
lint: setup-build
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy $(GUEST_FLAGS) $(GUEST_CRATES) -- -D warnings

## bench: runtime and ledger benchmarks, latch serve under a 100,000-grant ledger, a WinRM
## round trip vs pywinrm on the Windows stand-in, and a grant + revoke on a real Samba AD DC
## (LDAPS and WinRM) vs ldapadd/ldapmodify (release; the last needs root).
bench: setup guests
	$(CARGO) bench -p latch --bench runtime --bench ledger --bench scheduler --bench winrm --bench directory

## bench-fleet: grant/revoke against 20 real sshd hosts vs OpenSSH ControlMaster (root).
bench-fleet: setup-ssh guests
	$(CARGO) bench -p latch --bench fleet

## bench-first-grant: the first grant on 20 fresh sshd hosts — one cold `latch grant` vs a
## plain OpenSSH fan-out vs ansible-playbook -f 20 (root; ~3 min a round; RUNS=5 default).
bench-first-grant: setup-cloud guests
	$(CARGO) build --release -p latch
	bash benches/first-grant.sh

## bench-ec2-discovery: 5,000 instances in 3 regions of moto; `latch resources` vs the AWS CLI
## (awscli installed into target/py; ~15 min).
bench-ec2-discovery: setup-cloud guests
	$(CARGO) build --release -p latch
	bash benches/ec2-discovery.sh

## demo: what Latch does today, on the built guests (see README): the SSH servers guest and
## the binary only.
demo: setup-ssh
	$(CARGO) build $(GUEST_FLAGS) -p ssh-servers
	$(CARGO) build -p latch
	./examples/demo.sh

## demo-windows: the second demo: a real Samba AD DC (127.0.0.20), windows-dc over LDAPS and
## over WinRM (the Windows stand-in); grant, bind + kinit with the password, revoke, refused.
demo-windows: setup-windows
	$(CARGO) build $(GUEST_FLAGS) -p windows-dc
	$(CARGO) build -p latch
	./examples/demo-windows.sh

## demo-ec2: the third demo: moto (the AWS stand-in, signatures checked) with 3 instances whose
## private IPs are real sshd servers; discover by tag, grant, ssh with the certificate, revoke.
demo-ec2: setup-cloud
	$(CARGO) build $(GUEST_FLAGS) -p ec2-ssh
	$(CARGO) build -p latch
	./examples/demo-ec2.sh

clean:
	$(CARGO) clean
