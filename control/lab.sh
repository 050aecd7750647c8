#!/usr/bin/env bash
# The main job: install what the lab needs, build natd, and run the built-in lab (natd with no
# arguments). Needs root: the lab creates network namespaces and opens AF_PACKET sockets.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "control/lab.sh: the lab needs root (network namespaces, AF_PACKET); run: sudo bash control/lab.sh" >&2
  exit 1
fi
bash control/install-deps.sh
dotnet build control/natd/natd.csproj -c Release -nologo -v quiet -clp:NoSummary
exec dotnet control/natd/bin/Release/net10.0/natd.dll "$@"
