#!/usr/bin/env bash
# Installs OpenLDAP's server and client tools for the directory tests
# (internal/slapdtest), which start their own throw-away slapd on a free
# 127.0.0.1 port with a cn=config and an mdb database of their own.
#
# The packaged service is not wanted: debconf is told to create no
# configuration (so the package's init script has nothing to serve and
# never binds port 389), and a service left running by an earlier install
# is stopped. The tests never use the system configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for p in slapd ldap-utils; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  echo "ci: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# A packaged slapd that an earlier install configured and started would hold
# :389 for nothing: stop that one (by its pid file), never the tests' own.
if [ -s /var/run/slapd/slapd.pid ]; then
  pid=$(cat /var/run/slapd/slapd.pid)
  if kill -0 "$pid" 2>/dev/null; then
    echo "ci: stopping the packaged slapd (pid $pid)"
    kill "$pid" || true
  fi
fi

for bin in /usr/sbin/slapd /usr/sbin/slapadd /usr/bin/ldapsearch /usr/bin/ldapadd; do
  [ -x "$bin" ] || { echo "ci: $bin missing after install" >&2; exit 1; }
done
for mod in back_mdb memberof; do
  ls /usr/lib/ldap/"$mod".so* >/dev/null 2>&1 || ls /usr/lib/*/ldap/"$mod".so* >/dev/null 2>&1 ||
    { echo "ci: slapd module $mod missing" >&2; exit 1; }
done
echo "ci: slapd and ldap-utils ready ($(/usr/sbin/slapd -VV 2>&1 | head -n1))"
