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
  # ALG end-to-end tests: real FTP, TFTP and IRC servers and clients. The tests run their own
  # instances inside the lab namespaces; the packages' system services must not run (see below).
  "vsftpd:vsftpd"
  "lftp:lftp"
  "tftpd-hpa:in.tftpd"
  "tftp-hpa:tftp"
  "ngircd:ngircd"
  "python3-scapy:scapy"
  # IPsec end-to-end test: strongSwan's charon with swanctl, and kernel-libipsec (userspace ESP
  # over a TUN device, in libcharon-extra-plugins) for kernels without ESP (CONFIG_INET_ESP).
  "strongswan-charon:/usr/lib/ipsec/charon"
  "strongswan-swanctl:swanctl"
  "libcharon-extra-plugins:/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so"
  # UDP port timer end-to-end test (RFC 4787 REQ-5a): a real DNS server (dnsmasq-base is the
  # program without the system service) and client.
  "dnsmasq-base:dnsmasq"
  "bind9-dnsutils:dig"
  # PCP end-to-end test: libnatpmp's NAT-PMP client, and the toolchain that builds Cisco's libpcp
  # client (pcpnatpmpc) from ../shared/tools/libpcp (tests/EndToEnd.Tests/PcpClients.cs).
  "natpmpc:natpmpc"
  "cmake:cmake"
  "gcc:gcc"
  "make:make"
)

have_command() {
  # An absolute path (a daemon or plugin outside PATH) counts if the file exists.
  [ "${1#/}" != "$1" ] && { [ -e "$1" ]; return; }
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
# vsftpd, tftpd-hpa, ngircd and strongSwan may start their system daemons on install (on ports 21,
# 69, 6667, 500 and 4500 of the root namespace); the tests start their own. A policy-rc.d that
# answers 101 ("action forbidden") keeps invoke-rc.d from starting anything; one already in place is
# left as it is.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# install-deps.sh: no service starts during the install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
# tshark's package asks whether non-root users may capture: answer no, without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get -o DPkg::Lock::Timeout=300 update -q
apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"

# On a machine that runs systemd, units are enabled and may have been started regardless of
# policy-rc.d: stop and disable them so the root namespace keeps its ports free.
if [ -d /run/systemd/system ]; then
  for unit in vsftpd tftpd-hpa ngircd strongswan strongswan-starter; do
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi
