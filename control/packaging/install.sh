#!/bin/bash
# Installs natd and natctl on this machine (as root):
#   /usr/local/lib/natd/         the published binaries (framework-dependent, needs the .NET 10 runtime)
#   /usr/local/bin/natd, natctl  wrappers
#   /etc/systemd/system/natd.service
#   /etc/natd/natd.yaml          the example configuration, only when no configuration exists yet
# It neither enables nor starts the service: edit /etc/natd/natd.yaml first, then
#   natctl config check /etc/natd/natd.yaml && systemctl enable --now natd
#
# Environment: PREFIX (default /usr/local), SYSCONFDIR (default /etc), UNITDIR (default
# /etc/systemd/system), DESTDIR (staging root for packaging, default empty).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-/etc/systemd/system}
DESTDIR=${DESTDIR:-}
libdir="$DESTDIR$PREFIX/lib/natd"
bindir="$DESTDIR$PREFIX/bin"
confdir="$DESTDIR$SYSCONFDIR/natd"
unitdir="$DESTDIR$UNITDIR"

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (or set DESTDIR to stage the files)" >&2
    exit 1
fi
if ! command -v dotnet >/dev/null; then
    echo "install.sh: the .NET SDK (dotnet) is needed to publish natd" >&2
    exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
echo "install.sh: publishing natd and natctl (Release)"
# natd references natctl, so one publish of natd brings natctl (dll, apphost, runtimeconfig) with it;
# natctl is published into the same folder anyway so its own deps.json is the published one.
dotnet publish "$repo/control/natd/natd.csproj" -c Release -o "$stage" --nologo -v quiet
dotnet publish "$repo/control/natctl/natctl.csproj" -c Release -o "$stage" --nologo -v quiet

install -d -m 0755 "$libdir" "$bindir" "$unitdir"
rm -rf "${libdir:?}"/*
cp -a "$stage"/. "$libdir"/
[ -f "$repo/README.md" ] && install -m 0644 "$repo/README.md" "$libdir/README.md"

for tool in natd natctl; do
    cat > "$bindir/$tool" <<WRAPPER
#!/bin/sh
# Installed by natd's install.sh.
exec "$PREFIX/lib/natd/$tool" "\$@"
WRAPPER
    chmod 0755 "$bindir/$tool"
done

install -m 0644 "$here/natd.service" "$unitdir/natd.service"
install -d -m 0755 "$confdir"
if [ -e "$confdir/natd.yaml" ]; then
    echo "install.sh: $confdir/natd.yaml exists, left as it is (the example is $libdir/natd.yaml.example)"
else
    install -m 0644 "$here/natd.yaml" "$confdir/natd.yaml"
    echo "install.sh: installed the example configuration $confdir/natd.yaml: edit interfaces, pool and rules"
fi
install -m 0644 "$here/natd.yaml" "$libdir/natd.yaml.example"

if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
echo "install.sh: done. Next: natctl config check $SYSCONFDIR/natd/natd.yaml && systemctl enable --now natd"
