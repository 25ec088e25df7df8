#!/usr/bin/env bash
# Installs the SFTP clients that the clients test suite drives (issue 7):
# Debian packages for OpenSSH, sshpass, lftp, curl, rclone, paramiko, JSch
# (with a JDK for single-file launch) and PuTTY, and the npm package
# ssh2-sftp-client into a cache directory. Idempotent and quiet: it installs
# only what is missing.
#
# The npm cache directory is PIGP_CLIENTS_DIR, default ~/.cache/pigp-clients;
# the tests look in the same place.
set -euo pipefail

packages=(openssh-client sshpass lftp curl rclone python3-paramiko libjsch-java default-jdk-headless putty-tools)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "clients: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

dir="${PIGP_CLIENTS_DIR:-$HOME/.cache/pigp-clients}"
node_version="12.1.1"
if ! command -v npm >/dev/null 2>&1; then
  echo "clients: installing nodejs and npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
installed=$(node -p "require('$dir/node_modules/ssh2-sftp-client/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$node_version" ]; then
  echo "clients: installing ssh2-sftp-client@$node_version into $dir"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --silent "ssh2-sftp-client@$node_version" >/dev/null
fi
