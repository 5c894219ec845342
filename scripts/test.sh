#!/usr/bin/env bash
# test.sh: install what the test suite needs, then run it.
#
# Usage: scripts/test.sh [--no-install] [PACKAGES...]
#
#   --no-install  only list the missing Debian packages, install nothing
#   PACKAGES      what to test (default ./...)
#
# The tests drive real programs (curl, openssl, nginx, Redis, HAProxy,
# logrotate, systemd-analyze, shellcheck, lintian, promtool, make, git) and
# `go test -race` needs a C compiler. Missing Debian packages are installed
# with apt-get, which needs root: the script names what it installs first.
# Services those packages bring are not started while they are installed
# (a temporary policy-rc.d): the tests start their own instances on
# loopback. Then it runs:
#
#   go test -race -count=1 PACKAGES
#
# Output: go test's. Exit status: go test's, or 1 when packages are missing
# and cannot be installed (not root, or --no-install).
set -euo pipefail

cd "$(dirname "$0")/.."

install=1
if [ "${1:-}" = --no-install ]; then
  install=0
  shift
fi
[ $# -gt 0 ] || set -- ./...

# have CMD: CMD is on PATH or in an sbin directory (PATH may lack them).
have() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

need=()
have curl || need+=(curl)                         # TestE2E_* (an independent HTTPS client), scripts/bench.sh
have openssl || need+=(openssl)                   # TestE2E_* (an independent TLS client and verifier)
have gcc || need+=(gcc libc6-dev)                 # go test -race needs cgo
have make || need+=(make)                         # TestMakeBuild_StampsCommit
have git || need+=(git)                           # TestMakeBuild_StampsCommit, TestRelease_*
have logrotate || need+=(logrotate)               # TestLogrotateSnippet_*
have systemd-analyze || need+=(systemd)           # TestSystemdUnit_Verifies, TestRelease_DebianPackage
have nginx || need+=(nginx)                       # TestBenchScript_QuickSmoke (scripts/bench.sh --quick)
have shellcheck || need+=(shellcheck)             # TestScripts_ShellcheckClean, maintainer scripts
have redis-server || need+=(redis-server)         # redisstate tests, TestCluster_*
have haproxy || need+=(haproxy)                   # TestCluster_* (TCP mode, send-proxy-v2)
have lintian || need+=(lintian)                   # TestRelease_DebianPackage
have dpkg-deb || need+=(dpkg)                     # TestRelease_DebianPackage
have promtool || need+=(prometheus)               # alerting rules checked with promtool

if [ ${#need[@]} -gt 0 ]; then
  if [ "$install" = 0 ] || [ "$(id -u)" != 0 ]; then
    echo "test: missing Debian packages: ${need[*]}" >&2
    echo "test: install them as root (apt-get install --no-install-recommends ${need[*]}) or run this script as root" >&2
    exit 1
  fi
  echo "test: installing: ${need[*]}"
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# scripts/test.sh: start no service while packages install\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  if [ "$(trap -p EXIT)" != "" ]; then
    rm -f "$policy"
    trap - EXIT
  fi
fi

go test -race -count=1 "$@"
