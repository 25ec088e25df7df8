#!/usr/bin/env bash
# Installs what the spreadsheet tests of the history CSVs and the audit
# export need (issue 19): Debian's LibreOffice Calc without a GUI
# (`soffice --headless --convert-to`) and Python 3 (its csv module).
# Idempotent and quiet: it installs only what is missing.
set -euo pipefail

packages=(libreoffice-calc-nogui python3)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "libreoffice: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
