#!/usr/bin/env bash
# Installs the Debian packages the lab topology and the end-to-end tests use.
# Idempotent: a package is installed only when neither it (dpkg) nor its main command is present,
# and `apt-get update` runs once, only if something is missing. Run as root on Debian 12.
set -euo pipefail

# package:command pairs; the command lets a toolchain-provided binary (e.g. a pyenv python3) count.
wanted=(
  "iproute2:ip"
  "iputils-ping:ping"
  "curl:curl"
  "python3:python3"
  "ethtool:ethtool"
  "nftables:nft"
  "tcpdump:tcpdump"
  "procps:ps"
  "tshark:tshark"
  "prometheus:promtool"
  "python3-scapy:scapy"
)

have_command() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

have_package() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for entry in "${wanted[@]}"; do
  pkg="${entry%%:*}"
  cmd="${entry##*:}"
  if have_package "$pkg" || have_command "$cmd"; then
    continue
  fi
  missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all lab packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root to install: ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark's package asks whether non-root users may capture: answer no, without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get -o DPkg::Lock::Timeout=300 update -q
apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
