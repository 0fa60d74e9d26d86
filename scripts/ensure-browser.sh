#!/bin/sh
# What the reports need from the system: Debian's headless chromium (it renders the HTML reports
# and prints `--pdf`) and poppler-utils (the PDF tests rasterise and read the PDF with pdftoppm,
# pdftotext and pdfinfo). Installed when missing and root.
set -eu
need=""
command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 \
    || need="$need chromium-headless-shell"
command -v pdftoppm >/dev/null 2>&1 || need="$need poppler-utils"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing from Debian's packages:$need" >&2
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
else
    echo "warning: missing$need (install them as root); \`--pdf\` and the browser and PDF tests need them" >&2
fi
