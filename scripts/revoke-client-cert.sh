#!/usr/bin/env bash
# revoke-client-cert.sh: revoke client certificates by serial number on a
# running imedge: re-sign its CRL with the serials added, swap it in and
# prove imedge uses it. A revoked client's next handshake is refused with
# audit reason tls_revoked.
#
# Usage:
#   revoke-client-cert.sh --crl LIVE.crl --ca-cert CA.pem --ca-key CA-key.pem
#       --serial HEX [--serial HEX]... --bundle LIVE-BUNDLE.pem
#       (--pid PID | --pid-file FILE | --systemd-unit NAME)
#       [--admin HOST:PORT] [--admin-cacert CA.pem
#       [--admin-cert CERT.pem --admin-key KEY.pem]]
#       [--days N] [--timeout SECONDS] [--imedge PATH]
#
#   --crl                 the CRL file imedge reads (one of its --client-crl);
#                         its entries are kept and the new CRL is numbered
#                         after it
#   --ca-cert, --ca-key   the CA that issued the certificates and signs the
#                         CRL
#   --serial              serial number in hex, as `imedge certs inspect` and
#                         the audit log's cert_serial print it (repeatable)
#   --bundle              imedge's --client-ca bundle: the new CRL must be
#                         signed by one of its CAs, or imedge would refuse it
#   --days                validity of the new CRL (NextUpdate), default 30
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
# Steps: `imedge certs crl --from LIVE` signs the new CRL into a staged file;
# `imedge certs check --crl` proves a bundle CA signed it (a failure changes
# nothing); imedge (per --admin) must report --crl among its CRLs (else
# --admin is another instance's listener: nothing changes); the live CRL is
# backed up as FILE.bak.TIMESTAMP and replaced atomically (mode 0644);
# imedge is reloaded; `imedge certs status` must then report the new CRL
# number for this file. If the reload cannot be requested or the number
# does not show in time, the backup is put back and imedge reloaded again.
#
# Output: one line per step on stdout, errors on stderr. Exit status: 0 the
# new CRL is in effect; 1 refused (nothing changed), imedge not running, or
# rolled back; 2 bad command line.
set -euo pipefail
PROG=revoke-client-cert.sh
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

CRL=''
CA_CERT=''
CA_KEY=''
BUNDLE=''
DAYS=30
serials=()
while (($#)); do
  case $1 in
  -h | --help)
    print_usage
    exit 0
    ;;
  --crl | --ca-cert | --ca-key | --serial | --bundle | --days)
    (($# >= 2)) || usage_error "$1 needs a value"
    case $1 in
    --crl) CRL=$2 ;;
    --ca-cert) CA_CERT=$2 ;;
    --ca-key) CA_KEY=$2 ;;
    --serial) serials+=("$2") ;;
    --bundle) BUNDLE=$2 ;;
    --days) DAYS=$2 ;;
    esac
    shift 2
    ;;
  *)
    parse_common "$@" || usage_error "unknown argument '$1'"
    shift 2
    ;;
  esac
done
[[ -n $CRL && -n $CA_CERT && -n $CA_KEY && -n $BUNDLE ]] ||
  usage_error "--crl, --ca-cert, --ca-key and --bundle are required"
((${#serials[@]} > 0)) || usage_error "give at least one --serial"
[[ $DAYS =~ ^[1-9][0-9]*$ ]] || usage_error "--days wants a positive number"
check_common
need_file "$CRL" --crl
need_file "$CA_CERT" --ca-cert
need_file "$CA_KEY" --ca-key
need_file "$BUNDLE" --bundle

staged=$(dirname -- "$CRL")/.$(basename -- "$CRL").staged.$$
trap 'rm -f -- "$staged"' EXIT

revoke_args=()
for s in "${serials[@]}"; do revoke_args+=(--revoke "$s"); done
log "signing a new CRL with ${serials[*]} revoked"
if ! out=$("$IMEDGE" certs crl --ca-cert "$CA_CERT" --ca-key "$CA_KEY" --out "$staged" \
  --from "$CRL" --days "$DAYS" "${revoke_args[@]}" 2>&1); then
  die "cannot sign the new CRL: $out"
fi
printf '%s\n' "$out"
number=$(awk '$1 == "number:" { print $2 }' <<<"$out")
[[ -n $number ]] || die "imedge certs crl printed no CRL number"

log "checking that a CA of $BUNDLE signed it"
if ! "$IMEDGE" certs check --crl "$staged" --crl-issuer "$BUNDLE"; then
  die "refusing: the new CRL is not signed by a CA of $BUNDLE (imedge would reject it); nothing was changed"
fi

live=$(realpath -m -- "$CRL")
# crl_number: the number imedge reports for this CRL file.
crl_number() {
  admin_status 2>/dev/null |
    while read -r key file num _; do
      if [[ $key == crl && $(realpath -m -- "$file") == "$live" ]]; then
        printf '%s\n' "${num#number=}"
        return 0
      fi
    done
}
old_number=$(crl_number)
[[ -n $old_number ]] || die "imedge ($ADMIN) does not report $CRL among its CRLs; is it one of its --client-crl? Nothing was changed"
log "imedge uses CRL number $old_number from $CRL"

mark_reloads
bak=$(backup_file "$CRL")
log "backed up $CRL to $bak"
install_file "$staged" "$CRL" 644
log "replaced $CRL with CRL number $number"
# shellcheck disable=SC2317 # called through wait_for
has_number() { [[ $(crl_number) == "$1" ]]; }
rc=0
if signal_reload; then
  wait_for_reload has_number "$number" || rc=$?
else
  rc=3
fi
if ((rc == 0)); then
  log "confirmed: imedge uses CRL number $number; revoked ${serials[*]}"
  exit 0
fi

explain_wait "$rc" CRL
log "rolling back"
install_file "$bak" "$CRL" 644
log "restored $CRL from the backup"
rollback_reload
if wait_for has_number "$old_number"; then
  die "rolled back: imedge uses CRL number $old_number again"
fi
die "rolled back the file, but imedge does not report CRL number $old_number: check its log"
