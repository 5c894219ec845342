# shellcheck shell=bash
# lib.sh: helpers shared by the certificate scripts in this directory.
# Sourced, never run. The rotation scripts hand their shared options to
# parse_common, then call check_common, and use `set -euo pipefail`.
#
# Conventions: every step is logged to stdout as "PROG: what happened";
# errors go to stderr as "PROG: error: why" and end the script with exit 1
# (exit 2 for a bad command line).

log() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}
usage_error() {
  printf '%s: %s (see --help)\n' "$PROG" "$*" >&2
  exit 2
}

# print_usage prints the header comment of the calling script (the lines
# after the shebang up to the first line that is not a comment).
print_usage() {
  sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"
}

# The options every rotation script takes (parse_common), with defaults.
IMEDGE=${IMEDGE:-imedge}
ADMIN=127.0.0.1:9443 # --admin
ADMIN_CACERT=''      # --admin-cacert
ADMIN_CERT=''        # --admin-cert
ADMIN_KEY=''         # --admin-key
TIMEOUT=30           # --timeout
PID=''               # --pid; with --pid-file or --systemd-unit, found by find_imedge
PID_FILE=''          # --pid-file
UNIT=''              # --systemd-unit
ADMIN_TLS=()         # the TLS options of `imedge certs status`, set by check_common
WHY=''               # why find_imedge or signal_reload failed

# parse_common NAME [VALUE]: takes one shared option; returns 1 when NAME
# is not one of them, so the caller can report an unknown argument.
parse_common() {
  case $1 in
  --pid | --pid-file | --systemd-unit | --admin | --admin-cacert | --admin-cert | --admin-key | --timeout | --imedge) ;;
  *) return 1 ;;
  esac
  (($# >= 2)) || usage_error "$1 needs a value"
  case $1 in
  --pid) PID=$2 ;;
  --pid-file) PID_FILE=$2 ;;
  --systemd-unit) UNIT=$2 ;;
  --admin) ADMIN=$2 ;;
  --admin-cacert) ADMIN_CACERT=$2 ;;
  --admin-cert) ADMIN_CERT=$2 ;;
  --admin-key) ADMIN_KEY=$2 ;;
  --timeout) TIMEOUT=$2 ;;
  --imedge) IMEDGE=$2 ;;
  esac
}

# check_common validates the shared options (a bad command line exits 2)
# and finds the imedge process (exit 1 when it is not running). It changes
# nothing, so a failure here leaves every file as it was.
check_common() {
  local given=0
  [[ -z $PID ]] || given=$((given + 1))
  [[ -z $PID_FILE ]] || given=$((given + 1))
  [[ -z $UNIT ]] || given=$((given + 1))
  ((given == 1)) || usage_error "give one of --pid, --pid-file or --systemd-unit"
  [[ -z $PID || $PID =~ ^[1-9][0-9]*$ ]] || usage_error "--pid wants a process id, not '$PID'"
  [[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || usage_error "--timeout wants whole seconds"
  [[ -n $ADMIN ]] || usage_error "--admin wants HOST:PORT"
  [[ -z $ADMIN_CERT && -z $ADMIN_KEY || -n $ADMIN_CERT && -n $ADMIN_KEY ]] ||
    usage_error "--admin-cert and --admin-key go together"
  [[ -z $ADMIN_CERT || -n $ADMIN_CACERT ]] ||
    usage_error "--admin-cert needs --admin-cacert (the admin listener then speaks TLS)"

  command -v "$IMEDGE" >/dev/null 2>&1 || die "imedge binary '$IMEDGE' not found (set --imedge or \$IMEDGE)"
  ADMIN_TLS=()
  if [[ -n $ADMIN_CACERT ]]; then
    need_file "$ADMIN_CACERT" --admin-cacert
    ADMIN_TLS+=(--cacert "$ADMIN_CACERT")
  fi
  if [[ -n $ADMIN_CERT ]]; then
    need_file "$ADMIN_CERT" --admin-cert
    need_file "$ADMIN_KEY" --admin-key
    ADMIN_TLS+=(--cert "$ADMIN_CERT" --key "$ADMIN_KEY")
  fi
  if [[ -n $UNIT ]]; then
    command -v systemctl >/dev/null 2>&1 || die "--systemd-unit needs systemctl, which is not on the PATH"
  fi
  find_imedge || die "$WHY; nothing was changed"
}

# target: names the process being reloaded, for messages.
target() {
  if [[ -n $UNIT ]]; then
    printf 'systemd unit %s (pid %s)' "$UNIT" "$PID"
  elif [[ -n $PID_FILE ]]; then
    printf 'imedge (pid %s from %s)' "$PID" "$PID_FILE"
  else
    printf 'imedge (pid %s)' "$PID"
  fi
}

# find_imedge: sets PID to the running imedge, read afresh from systemd or
# the pid file each time (imedge may have been restarted since). Returns 1
# with the reason in WHY when there is none.
find_imedge() {
  local pid err
  if [[ -n $UNIT ]]; then
    # stdout only: a warning on stderr must not become part of the number.
    if ! pid=$(systemctl show -p MainPID --value "$UNIT" 2>/dev/null); then
      WHY="cannot ask systemd about $UNIT: $(systemctl show -p MainPID --value "$UNIT" 2>&1 >/dev/null)"
      return 1
    fi
    pid=${pid//[[:space:]]/}
    if [[ ! $pid =~ ^[0-9]+$ ]]; then
      WHY="systemctl show printed '$pid' as the MainPID of $UNIT"
      return 1
    fi
    if ((pid == 0)); then
      WHY="systemd unit $UNIT is not running (MainPID 0): start it, or check the name with systemctl list-units 'imedge*'"
      return 1
    fi
    # systemd knows the process is alive, and the signal goes through
    # systemctl reload (possibly as another user): no kill -0 here.
    PID=$pid
    return 0
  fi
  if [[ -n $PID_FILE ]]; then
    if [[ ! -r $PID_FILE ]]; then
      WHY="cannot read the pid file $PID_FILE: is imedge running with --pid-file $PID_FILE?"
      return 1
    fi
    pid=$(tr -d '[:space:]' <"$PID_FILE")
    if [[ ! $pid =~ ^[1-9][0-9]*$ ]]; then
      WHY="the pid file $PID_FILE holds no process id"
      return 1
    fi
    PID=$pid
  fi
  if ! err=$(kill -0 "$PID" 2>&1); then
    WHY="cannot signal process $PID${PID_FILE:+ (from $PID_FILE)}: ${err##*- }"
    return 1
  fi
}

need_file() {
  [[ -f $1 && -r $1 ]] || die "$2: cannot read file '$1'"
}

# admin_status: `imedge certs status` against the admin listener, with the
# admin TLS options. Every call to the admin listener goes through here.
admin_status() {
  "$IMEDGE" certs status --addr "$ADMIN" --timeout 5s "${ADMIN_TLS[@]}"
}

# status_values KEY: the values (second field) of the KEY lines of
# `imedge certs status`, one per line. Fails when the admin listener does
# not answer.
status_values() {
  local out
  out=$(admin_status) || return 1
  awk -v k="$1" '$1 == k { print $2 }' <<<"$out"
}

# status_line KEY: the rest of the first KEY line of `imedge certs status`.
status_line() {
  admin_status 2>/dev/null |
    awk -v k="$1" '$1 == k { $1 = ""; sub(/^ +/, ""); print; exit }'
}

# cert_sha256s FILE: the SHA-256 fingerprint of every certificate in FILE,
# in order, as imedge certs inspect prints them.
cert_sha256s() {
  "$IMEDGE" certs inspect "$1" | awk '$1 == "sha256:" { print $2 }'
}

# signal_reload: asks imedge to reload its TLS material: `systemctl reload
# UNIT` (the unit's ExecReload sends SIGHUP to its main process), or
# SIGHUP to the process of --pid/--pid-file. Returns 1 with the reason in
# WHY when it could not; the caller rolls back.
signal_reload() {
  find_imedge || return 1
  local out
  if [[ -n $UNIT ]]; then
    if ! out=$(systemctl reload "$UNIT" 2>&1); then
      WHY="systemctl reload $UNIT failed: ${out:-no message}"
      return 1
    fi
    log "ran systemctl reload $UNIT (main pid $PID)"
    return 0
  fi
  if ! out=$(kill -HUP "$PID" 2>&1); then
    WHY="cannot send SIGHUP to $(target): ${out##*- }"
    return 1
  fi
  log "sent SIGHUP to $(target)"
}

# rollback_reload: signal_reload on the way back; a failure is logged and
# the caller still waits for the old material (imedge's file watcher may
# pick it up).
rollback_reload() {
  signal_reload || log "cannot reload imedge: $WHY"
}

# wait_for FUNC [ARGS...]: runs FUNC every 200 ms until it succeeds or
# TIMEOUT seconds pass; returns 1 on timeout.
wait_for() {
  local deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.2
  done
}

# reload_state: prints imedge's "reload_successes reload_failures
# last_reload_ok".
reload_state() {
  admin_status 2>/dev/null | awk '
    $1 == "reload_successes" { s = $2 }
    $1 == "reload_failures" { f = $2 }
    $1 == "last_reload_ok" { ok = $2 }
    END { if (s == "") exit 1; print s, f, (ok == "" ? "-" : ok) }'
}

# mark_reloads: remembers the reload counters before a signal.
mark_reloads() {
  local state
  state=$(reload_state) || die "cannot read the reload counters from the admin listener $ADMIN"
  read -r RELOADS_OK RELOADS_FAILED _ <<<"$state"
}

# wait_for_reload FUNC [ARGS...]: like wait_for, but returns 2 early when
# imedge refused the new material: since mark_reloads it counted a failed
# reload and no successful one, and that stays so for a second (a reload
# that failed while the files were half replaced is then followed by the
# one the signal caused).
wait_for_reload() {
  local deadline=$((SECONDS + TIMEOUT)) refused=0 s f ok
  until "$@"; do
    if read -r s f ok < <(reload_state) && [[ $s == "$RELOADS_OK" && $ok == false ]] && ((f > RELOADS_FAILED)); then
      refused=$((refused + 1))
      ((refused < 5)) || return 2
    else
      refused=0
    fi
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.2
  done
}

# load_as_is WHAT FUNC [ARGS...]: the live file already holds the change
# (another instance's rotation wrote a file both read) but this imedge has
# not loaded it: reload and wait for FUNC as wait_for_reload does. Nothing
# to roll back, as no file is changed; ends the script (exit 1) when imedge
# does not load it.
load_as_is() {
  local what=$1 rc=0
  shift
  log "the live $what already holds this change, but imedge has not loaded it: reloading"
  mark_reloads
  if signal_reload; then
    wait_for_reload "$@" || rc=$?
  else
    rc=3
  fi
  ((rc != 0)) || return 0
  explain_wait "$rc" "$what"
  die "imedge does not load the $what as it is on disk (no file was changed): check its log"
}

# explain_wait CODE WHAT: logs why the change did not take: the reload
# request failed (3, reason in WHY), imedge refused the material (2) or
# did not show it in time (1).
explain_wait() {
  local s f
  case $1 in
  3) log "could not ask imedge to reload: $WHY" ;;
  2) log "imedge refused the new $2: $(status_line last_reload_error)" ;;
  *)
    local ok
    ok=$(status_line last_reload_ok)
    log "imedge did not load the new $2 within ${TIMEOUT}s; last reload: ${ok:-none since start} $(status_line last_reload_error)"
    if read -r s f _ < <(reload_state) && [[ $s == "$RELOADS_OK" && $f == "$RELOADS_FAILED" ]]; then
      log "the admin listener $ADMIN counted no reload since the request: is it the admin listener of $(target)?"
    fi
    ;;
  esac
}

# install_file SRC DEST MODE [MAX]: replaces DEST with a copy of SRC
# atomically (temporary file in DEST's directory, then rename), with DEST's
# group (and, when run as root, its owner). The copy gets MODE; with MAX and
# an existing DEST, it gets DEST's mode instead, limited to MAX (a key kept
# 0640 for the service's group stays readable to it, a stray world bit is
# dropped).
install_file() {
  local src=$1 dest=$2 mode=$3 max=${4:-} tmp
  if [[ -n $max && -e $dest ]]; then
    mode=$(printf '%o' $((8#$(stat -c %a -- "$dest") & 8#$max)))
  fi
  tmp=$(dirname -- "$dest")/.$(basename -- "$dest").new.$$
  (umask 077 && cp -- "$src" "$tmp") || die "cannot write $tmp"
  if [[ -e $dest ]]; then
    if [[ $(id -u) == 0 ]]; then
      chown --reference="$dest" "$tmp" 2>/dev/null || true
    else
      chgrp --reference="$dest" "$tmp" 2>/dev/null || true
    fi
  fi
  chmod "$mode" "$tmp"
  mv -f -- "$tmp" "$dest" || {
    rm -f -- "$tmp"
    die "cannot replace $dest"
  }
}

# backup_file FILE: copies FILE next to itself as FILE.bak.TIMESTAMP
# (mode and owner kept) and prints the copy's path.
backup_file() {
  local bak
  bak=$1.bak.$(date -u +%Y%m%dT%H%M%SZ).$$
  cp -p -- "$1" "$bak" || die "cannot back up $1"
  printf '%s\n' "$bak"
}
