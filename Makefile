# podnet: `make demo` and `make test` set up a fresh Debian machine (as root) and run.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := iproute2 nftables iptables conntrack containernetworking-plugins busybox-static podman runc iperf3 etcd-server dnsmasq-base python3-venv bird2 nginx graphviz chromium tcpdump
BENCH_PACKAGES := dnsperf

.PHONY: all deps venv native test unit fuzz demo bench clean

all: test

# Debian packages: install only what is missing, with one `apt-get update` first.
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo ">> installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call install_missing,$(APT_PACKAGES))

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

# The udp backend's forwarder (C, as flannel's proxy.c), built with the system's compiler. The agent
# builds it itself when it is missing; this builds it ahead.
native: venv
	$(PY) -m podnet.agent.backends.udp.native

test: deps venv native
	$(PY) -m pytest -q -ra

unit: venv
	$(PY) -m pytest -q -m 'not root'

# The fuzz tests with many more examples than the bounded run in `make test` (FUZZ=N per property).
FUZZ ?= 3000
fuzz: deps venv
	PODNET_FUZZ=$(FUZZ) $(PY) -m pytest -q -ra tests/fuzz

demo: deps venv native
	$(VENV)/bin/podnet demo

bench: deps venv native
	$(call install_missing,$(BENCH_PACKAGES))
	$(PY) bench/cni_latency.py
	$(PY) bench/agent_cni_latency.py
	$(PY) bench/pod_network.py
	$(PY) bench/bgp_convergence.py
	$(PY) bench/services.py
	$(PY) bench/proxy_latency.py
	$(PY) bench/policy.py
	$(PY) bench/antispoof.py
	$(PY) bench/ingress.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache src/podnet/agent/backends/udp/podnet-udp-forwarder*
