#!/bin/sh
# What the report tests need from the system: Debian's headless chromium (a real browser renders
# the HTML reports) and Pango (WeasyPrint's PDF renderer). Installed when missing and root.
set -eu
need=""
command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 \
    || need="$need chromium-headless-shell"
ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so.0' || need="$need libpango-1.0-0 libpangoft2-1.0-0"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing from Debian's packages:$need" >&2
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
else
    echo "warning: missing$need (install them as root); the browser and PDF tests will skip" >&2
fi
