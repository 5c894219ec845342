#!/usr/bin/env bash
# rotate-client-ca.sh: change the CAs trusted for client certificates
# (imedge's --client-ca bundle) on a running imedge, in two phases, and
# prove each phase is in effect.
#
# Usage:
#   rotate-client-ca.sh add    --bundle LIVE-BUNDLE.pem --ca NEW-CA.pem
#       (--pid PID | --pid-file FILE | --systemd-unit NAME)
#       [--admin HOST:PORT] [--admin-cacert CA.pem
#       [--admin-cert CERT.pem --admin-key KEY.pem]]
#       [--timeout SECONDS] [--imedge PATH]
#   rotate-client-ca.sh remove --bundle LIVE-BUNDLE.pem --ca OLD-CA.pem
#       (--pid PID | --pid-file FILE | --systemd-unit NAME) [...as add]
#
#   add                   appends the CA certificate(s) of --ca to the
#                         bundle, next to the ones already there
#                         (certificates already present are skipped)
#   remove                drops the CA certificate(s) of --ca from the bundle
#                         (matched by SHA-256 fingerprint); refuses to leave
#                         the bundle empty
#   --bundle              the file imedge reads (its --client-ca)
#   --ca                  the CA certificate(s) to add or remove, PEM
#
# Which imedge (give exactly one):
#   --pid PID             the imedge process; sent SIGHUP
#   --pid-file FILE       the file `imedge serve --pid-file` writes; read
#                         again before each signal, so a restart is followed
#   --systemd-unit NAME   a systemd unit such as imedge or imedge@a: reloaded
#                         with `systemctl reload NAME` (its ExecReload sends
#                         SIGHUP), its process is `systemctl show -p MainPID`;
#                         a unit that is not running (MainPID 0) is an error
#                         before anything changes
#
# Its admin listener (every `imedge certs status` call uses these):
#   --admin HOST:PORT     imedge's --admin-listen (default 127.0.0.1:9443);
#                         with several instances on a host, each has its own
#   --admin-cacert FILE   CA bundle of the admin listener's certificate
#                         (imedge's --admin-cert): talk https
#   --admin-cert FILE,    client certificate and key for an admin listener
#   --admin-key FILE      with mutual TLS (issued by a CA of imedge's
#                         --admin-client-ca); need --admin-cacert
#
# Other options:
#   --timeout SECONDS     how long to wait for imedge to show the change
#                         (default 30)
#   --imedge PATH         the imedge binary (default $IMEDGE, else imedge)
#   -h, --help            print this text
#
# Rotating IM's CA: `add` the new CA, wait until IM presents a certificate
# from it, then `remove` the old one.
#
# Steps: check that --ca holds only CA certificates; build the new bundle;
# check that imedge (per --admin) trusts exactly the CAs of --bundle now
# (else --admin is another instance's listener, or the file was changed by
# hand: nothing changes; but when --bundle already is the new bundle, as
# after the rotation of another instance that reads the same file, imedge
# is only reloaded and the new list confirmed); back up the live bundle as
# FILE.bak.TIMESTAMP; replace it atomically (mode 0644, owner kept when run
# as root); reload imedge; poll `imedge certs status` until the
# client_ca_sha256 list is the new bundle. If the reload cannot be
# requested or the list does not change in time, the backup is put back
# and imedge reloaded again.
#
# Output: one line per step on stdout, errors on stderr. Exit status: 0 the
# new bundle is in effect; 1 refused (nothing changed), imedge not running,
# or rolled back; 2 bad command line.
set -euo pipefail
PROG=rotate-client-ca.sh
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

PHASE=${1:-}
case $PHASE in
-h | --help)
  print_usage
  exit 0
  ;;
add | remove) shift ;;
*) usage_error "first argument must be add or remove" ;;
esac
BUNDLE=''
CA=''
while (($#)); do
  case $1 in
  -h | --help)
    print_usage
    exit 0
    ;;
  --bundle | --ca)
    (($# >= 2)) || usage_error "$1 needs a value"
    case $1 in
    --bundle) BUNDLE=$2 ;;
    --ca) CA=$2 ;;
    esac
    shift 2
    ;;
  *)
    parse_common "$@" || usage_error "unknown argument '$1'"
    shift 2
    ;;
  esac
done
[[ -n $BUNDLE && -n $CA ]] || usage_error "--bundle and --ca are required"
check_common
need_file "$BUNDLE" --bundle
need_file "$CA" --ca

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# split_pem FILE PREFIX: writes each CERTIFICATE block of FILE to
# PREFIX.N.pem and prints the paths in order.
split_pem() {
  awk -v prefix="$2" '
    /^-----BEGIN CERTIFICATE-----/ { n++; out = prefix "." n ".pem"; inblock = 1 }
    inblock { print > out }
    /^-----END CERTIFICATE-----/ { if (inblock) { close(out); print out }; inblock = 0 }
  ' "$1"
}

# The --ca file: at least one certificate, and only CA certificates.
if ! ca_info=$("$IMEDGE" certs inspect "$CA" 2>&1); then
  die "refusing: $CA holds no usable certificate ($ca_info); nothing was changed"
fi
if awk '$1 == "is" && $2 == "CA:" && $3 != "true" { bad = 1 } END { exit !bad }' <<<"$ca_info"; then
  die "refusing: $CA holds a certificate that is not a CA; nothing was changed"
fi
mapfile -t ca_fps < <(cert_sha256s "$CA")
mapfile -t live_blocks < <(split_pem "$BUNDLE" "$work/live")
((${#live_blocks[@]} > 0)) || die "the live bundle $BUNDLE holds no certificate"
live_fps=()
for b in "${live_blocks[@]}"; do live_fps+=("$(cert_sha256s "$b")"); done

# The bundle to install, and the fingerprints imedge must then report.
staged=$work/bundle.pem
: >"$staged"
want=()
in_list() {
  local x=$1
  shift
  local y
  for y in "$@"; do [[ $x == "$y" ]] && return 0; done
  return 1
}
removed=0
for i in "${!live_blocks[@]}"; do
  b=${live_blocks[i]}
  fp=${live_fps[i]}
  if [[ $PHASE == remove ]] && in_list "$fp" "${ca_fps[@]}"; then
    log "dropping CA $fp"
    removed=$((removed + 1))
    continue
  fi
  cat -- "$b" >>"$staged"
  want+=("$fp")
done
added=0
if [[ $PHASE == add ]]; then
  mapfile -t new_blocks < <(split_pem "$CA" "$work/new")
  for b in "${new_blocks[@]}"; do
    fp=$(cert_sha256s "$b")
    if in_list "$fp" "${want[@]}"; then
      log "CA $fp is already in the bundle"
      continue
    fi
    log "adding CA $fp"
    cat -- "$b" >>"$staged"
    want+=("$fp")
    added=$((added + 1))
  done
fi
((${#want[@]} > 0)) || die "refusing: the bundle would be empty; nothing was changed"
"$IMEDGE" certs inspect "$staged" >/dev/null || die "the new bundle does not parse; nothing was changed"

# in_effect FP...: imedge reports exactly these CAs.
# shellcheck disable=SC2317 # called through wait_for
in_effect() {
  local got
  got=$(status_values client_ca_sha256 2>/dev/null | sort) || return 1
  [[ $got == "$(printf '%s\n' "$@" | sort)" ]]
}

# What imedge trusts now must be the live bundle: the file it reads, and
# the state to roll back to.
old=$(status_values client_ca_sha256) ||
  die "cannot read the client CAs from the admin listener $ADMIN; nothing was changed"
[[ -n $old ]] || die "the admin listener $ADMIN reports no client CA; nothing was changed"
mapfile -t old_fps <<<"$old"
if [[ $(printf '%s\n' "${old_fps[@]}" | sort) != "$(printf '%s\n' "${live_fps[@]}" | sort)" ]]; then
  if ((added == 0 && removed == 0)); then
    load_as_is bundle in_effect "${want[@]}"
    log "confirmed: imedge trusts ${#want[@]} client CA(s): ${want[*]}"
    exit 0
  fi
  die "the admin listener $ADMIN reports ${#old_fps[@]} client CA(s) other than the ${#live_fps[@]} in $BUNDLE: --admin belongs to another imedge (each instance has its own), or imedge has not loaded $BUNDLE as it is now (reload it and check its log); nothing was changed"
fi
if ((added == 0 && removed == 0)); then
  log "nothing to change: imedge already trusts exactly these ${#want[@]} CA(s)"
  exit 0
fi

mark_reloads
bak=$(backup_file "$BUNDLE")
log "backed up $BUNDLE to $bak"
install_file "$staged" "$BUNDLE" 644
log "wrote $BUNDLE with ${#want[@]} CA(s) (added $added, removed $removed)"
rc=0
if signal_reload; then
  wait_for_reload in_effect "${want[@]}" || rc=$?
else
  rc=3
fi
if ((rc == 0)); then
  log "confirmed: imedge trusts ${#want[@]} client CA(s): ${want[*]}"
  exit 0
fi

explain_wait "$rc" bundle
log "rolling back"
install_file "$bak" "$BUNDLE" 644
log "restored $BUNDLE from the backup"
rollback_reload
if wait_for in_effect "${old_fps[@]}"; then
  die "rolled back: imedge trusts the previous ${#old_fps[@]} CA(s) again"
fi
die "rolled back the file, but imedge does not report the previous CAs: check its log"
