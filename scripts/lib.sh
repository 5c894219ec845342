# shellcheck shell=bash
# lib.sh: helpers shared by the certificate scripts in this directory.
# Sourced, never run. Callers set PROG, IMEDGE, ADMIN, TIMEOUT and PID
# (see parse_common) and use `set -euo pipefail`.
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

# Defaults of the options every rotation script takes.
IMEDGE=${IMEDGE:-imedge}
ADMIN=127.0.0.1:9443
TIMEOUT=30
PID=
PID_FILE=

# parse_common NAME VALUE: handles a shared option; returns 1 when NAME is
# not one of them.
parse_common() {
  case $1 in
  --pid) PID=$2 ;;
  --pid-file) PID_FILE=$2 ;;
  --admin) ADMIN=$2 ;;
  --timeout) TIMEOUT=$2 ;;
  --imedge) IMEDGE=$2 ;;
  *) return 1 ;;
  esac
}

# check_common validates the shared options and resolves PID.
check_common() {
  if [[ -n $PID_FILE ]]; then
    [[ -z $PID ]] || usage_error "give --pid or --pid-file, not both"
    [[ -r $PID_FILE ]] || die "cannot read pid file $PID_FILE"
    PID=$(tr -d '[:space:]' <"$PID_FILE")
  fi
  [[ -n $PID ]] || usage_error "--pid or --pid-file is required"
  [[ $PID =~ ^[1-9][0-9]*$ ]] || die "bad pid '$PID'"
  kill -0 "$PID" 2>/dev/null || die "no process $PID to signal"
  [[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || usage_error "--timeout wants whole seconds"
  command -v "$IMEDGE" >/dev/null 2>&1 || die "imedge binary '$IMEDGE' not found (set --imedge or \$IMEDGE)"
}

need_file() {
  [[ -f $1 && -r $1 ]] || die "$2: cannot read file '$1'"
}

# status_values KEY: the values (second field) of the KEY lines of
# `imedge certs status`, one per line. Fails when the admin listener does
# not answer.
status_values() {
  local out
  out=$("$IMEDGE" certs status --addr "$ADMIN" --timeout 5s) || return 1
  awk -v k="$1" '$1 == k { print $2 }' <<<"$out"
}

# status_line KEY: the rest of the first KEY line of `imedge certs status`.
status_line() {
  "$IMEDGE" certs status --addr "$ADMIN" --timeout 5s 2>/dev/null |
    awk -v k="$1" '$1 == k { $1 = ""; sub(/^ +/, ""); print; exit }'
}

# cert_sha256s FILE: the SHA-256 fingerprint of every certificate in FILE,
# in order, as imedge certs inspect prints them.
cert_sha256s() {
  "$IMEDGE" certs inspect "$1" | awk '$1 == "sha256:" { print $2 }'
}

# signal_reload: asks imedge to reload its TLS material.
signal_reload() {
  kill -HUP "$PID" || die "cannot signal imedge (pid $PID)"
  log "sent SIGHUP to imedge (pid $PID)"
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
  "$IMEDGE" certs status --addr "$ADMIN" --timeout 5s 2>/dev/null | awk '
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

# explain_wait CODE WHAT: logs why wait_for_reload gave up.
explain_wait() {
  if (($1 == 2)); then
    log "imedge refused the new $2: $(status_line last_reload_error)"
  else
    local ok
    ok=$(status_line last_reload_ok)
    log "imedge did not load the new $2 within ${TIMEOUT}s; last reload: ${ok:-none since start} $(status_line last_reload_error)"
  fi
}

# install_file SRC DEST MODE: replaces DEST with a copy of SRC atomically
# (temporary file in DEST's directory, then rename), with MODE and, when
# run as root, DEST's owner and group.
install_file() {
  local src=$1 dest=$2 mode=$3 tmp
  tmp=$(dirname -- "$dest")/.$(basename -- "$dest").new.$$
  (umask 077 && cp -- "$src" "$tmp") || die "cannot write $tmp"
  chmod "$mode" "$tmp"
  if [[ $(id -u) == 0 && -e $dest ]]; then
    chown --reference="$dest" "$tmp" 2>/dev/null || true
  fi
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
