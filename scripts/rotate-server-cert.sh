#!/usr/bin/env bash
# rotate-server-cert.sh: put a new server certificate and key into service
# on a running imedge, without dropping a callback, and prove it is served.
#
# Usage:
#   rotate-server-cert.sh --cert LIVE.pem --key LIVE-key.pem
#       --new-cert NEW.pem --new-key NEW-key.pem
#       (--pid PID | --pid-file FILE | --systemd-unit NAME)
#       [--admin HOST:PORT] [--admin-cacert CA.pem
#       [--admin-cert CERT.pem --admin-key KEY.pem]]
#       [--root CA.pem] [--name NAME]... [--min-validity 720h]
#       [--timeout SECONDS] [--imedge PATH]
#
#   --cert, --key         the files imedge serves (its --cert and --key)
#   --new-cert, --new-key the staged certificate chain (leaf first) and key
#   --root, --name,       passed to `imedge certs check`: chain to this root,
#   --min-validity        cover these names, have this much validity left
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
# Steps: 1. `imedge certs check` the staged set (a failure changes nothing);
# 2. note the served fingerprint (`imedge certs status`) and check that it
# is the one of --cert (else --admin is another instance's listener, or
# --cert is not what imedge serves: nothing changes; but when --cert
# already holds the new certificate, as after the rotation of another
# instance that reads the same files, imedge is only reloaded and the new
# fingerprint confirmed); 3. back the live files up as FILE.bak.TIMESTAMP;
# 4. replace key then certificate, each by an atomic rename (certificate
# 0644; the key keeps the live key's mode up to 0640, so a key the service
# reads through its group stays readable, and 0600 when new; group kept,
# and owner too when run as root); 5. reload imedge; 6. poll `imedge certs
# status` until the new fingerprint is served. If the reload cannot be
# requested, or the new certificate is not served in time, the backups are
# put back, imedge is reloaded again and the old fingerprint is confirmed.
#
# Output: one line per step on stdout, errors on stderr. Exit status: 0 the
# new certificate is served; 1 refused (nothing changed), imedge not
# running, or rolled back; 2 bad command line.
set -euo pipefail
PROG=rotate-server-cert.sh
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

LIVE_CERT=''
LIVE_KEY=''
NEW_CERT=''
NEW_KEY=''
check_args=()
while (($#)); do
  case $1 in
  -h | --help)
    print_usage
    exit 0
    ;;
  --cert | --key | --new-cert | --new-key | --root | --name | --min-validity)
    (($# >= 2)) || usage_error "$1 needs a value"
    case $1 in
    --cert) LIVE_CERT=$2 ;;
    --key) LIVE_KEY=$2 ;;
    --new-cert) NEW_CERT=$2 ;;
    --new-key) NEW_KEY=$2 ;;
    *) check_args+=("$1" "$2") ;;
    esac
    shift 2
    ;;
  *)
    parse_common "$@" || usage_error "unknown argument '$1'"
    shift 2
    ;;
  esac
done
[[ -n $LIVE_CERT && -n $LIVE_KEY && -n $NEW_CERT && -n $NEW_KEY ]] ||
  usage_error "--cert, --key, --new-cert and --new-key are required"
check_common
need_file "$LIVE_CERT" --cert
need_file "$LIVE_KEY" --key
need_file "$NEW_CERT" --new-cert
need_file "$NEW_KEY" --new-key

log "checking the staged set $NEW_CERT + $NEW_KEY"
if ! "$IMEDGE" certs check --cert "$NEW_CERT" --key "$NEW_KEY" "${check_args[@]}"; then
  die "staged set refused by imedge certs check; nothing was changed"
fi
# serving SHA: imedge serves the certificate with this fingerprint.
# shellcheck disable=SC2317 # called through wait_for
serving() { [[ $(status_values server_cert_sha256 2>/dev/null | head -n 1) == "$1" ]]; }

new_sha=$(cert_sha256s "$NEW_CERT" | head -n 1)
old_sha=$(status_values server_cert_sha256 | head -n 1) ||
  die "cannot read the served certificate from the admin listener $ADMIN; nothing was changed"
[[ -n $old_sha ]] || die "the admin listener $ADMIN reports no server certificate; nothing was changed"
log "serving $old_sha; new certificate $new_sha"
if [[ $new_sha == "$old_sha" ]]; then
  log "the new certificate is already served; nothing to do"
  exit 0
fi
live_sha=$(cert_sha256s "$LIVE_CERT" | head -n 1) || live_sha=''
if [[ $live_sha == "$new_sha" ]] && cmp -s -- "$NEW_KEY" "$LIVE_KEY"; then
  load_as_is certificate serving "$new_sha"
  log "confirmed: imedge serves $new_sha (not after $(status_line server_cert_not_after))"
  exit 0
fi
[[ $live_sha == "$old_sha" ]] ||
  die "the admin listener $ADMIN serves $old_sha, but $LIVE_CERT holds ${live_sha:-no certificate}: --admin belongs to another imedge (each instance has its own), or imedge has not loaded $LIVE_CERT as it is now; nothing was changed"

mark_reloads
bak_cert=$(backup_file "$LIVE_CERT")
bak_key=$(backup_file "$LIVE_KEY")
log "backed up the live files to $bak_cert and $bak_key"

install_file "$NEW_KEY" "$LIVE_KEY" 600 640
install_file "$NEW_CERT" "$LIVE_CERT" 644
log "replaced $LIVE_KEY ($(stat -c %a -- "$LIVE_KEY")) and $LIVE_CERT (0644)"
rc=0
if signal_reload; then
  wait_for_reload serving "$new_sha" || rc=$?
else
  rc=3
fi
if ((rc == 0)); then
  log "confirmed: imedge serves $new_sha (not after $(status_line server_cert_not_after))"
  exit 0
fi

explain_wait "$rc" certificate
log "rolling back"
install_file "$bak_key" "$LIVE_KEY" 600 640
install_file "$bak_cert" "$LIVE_CERT" 644
log "restored $LIVE_KEY and $LIVE_CERT from the backups"
rollback_reload
if wait_for serving "$old_sha"; then
  die "rolled back: imedge serves the previous certificate $old_sha again"
fi
die "rolled back the files, but imedge does not report the previous certificate $old_sha: check its log"
