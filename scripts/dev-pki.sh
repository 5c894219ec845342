#!/usr/bin/env bash
# dev-pki.sh: make a complete development PKI for imedge with `imedge certs`:
# a server CA and a server certificate, a client CA (standing in for
# Tencent's TencentQQAuthCA) with one client certificate, and an empty CRL
# of the client CA. Not for production keys.
#
# Usage:
#   dev-pki.sh [--imedge PATH] [--days N] [--name NAME]... [--force] DIR
#
#   DIR       where the files go (created, mode 0700)
#   --name    server certificate name, DNS or IP (repeatable; default
#             localhost, 127.0.0.1 and ::1)
#   --days    validity of the leaf certificates and the CRL (default 90)
#   --force   overwrite files left by an earlier run
#   --imedge  the imedge binary (default $IMEDGE, else imedge)
#
# Output: DIR/server-ca.pem, server-ca-key.pem, server.pem, server-key.pem,
# client-ca.pem, client-ca-key.pem, client.pem, client-key.pem, client.crl
# (keys mode 0600), a summary of each on stdout and an `imedge serve`
# command line that uses them. Exit status: 0 done; 1 failure (or files
# exist without --force); 2 bad command line.
set -euo pipefail
PROG=dev-pki.sh
# shellcheck source=scripts/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

DIR=''
DAYS=90
FORCE=0
names=()
while (($#)); do
  case $1 in
  -h | --help)
    print_usage
    exit 0
    ;;
  --imedge | --days | --name)
    (($# >= 2)) || usage_error "$1 needs a value"
    case $1 in
    --imedge) IMEDGE=$2 ;;
    --days) DAYS=$2 ;;
    --name) names+=("$2") ;;
    esac
    shift 2
    ;;
  --force)
    FORCE=1
    shift
    ;;
  -*) usage_error "unknown option '$1'" ;;
  *)
    [[ -z $DIR ]] || usage_error "one DIR only"
    DIR=$1
    shift
    ;;
  esac
done
[[ -n $DIR ]] || usage_error "DIR is required"
[[ $DAYS =~ ^[1-9][0-9]*$ ]] || usage_error "--days wants a positive number"
((${#names[@]} > 0)) || names=(localhost 127.0.0.1 ::1)
command -v "$IMEDGE" >/dev/null 2>&1 || die "imedge binary '$IMEDGE' not found (set --imedge or \$IMEDGE)"

files=(server-ca.pem server-ca-key.pem server.pem server-key.pem client-ca.pem client-ca-key.pem
  client.pem client-key.pem client.crl)
if ((!FORCE)); then
  for f in "${files[@]}"; do
    [[ ! -e $DIR/$f ]] || die "$DIR/$f exists; use --force to replace the PKI"
  done
fi
mkdir -p -- "$DIR"
chmod 700 -- "$DIR"

san_args=()
for n in "${names[@]}"; do
  if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then
    san_args+=(--ip "$n")
  else
    san_args+=(--dns "$n")
  fi
done

log "creating the server CA"
"$IMEDGE" certs ca --cn "imedge dev server CA" --out-cert "$DIR/server-ca.pem" --out-key "$DIR/server-ca-key.pem"
log "issuing the server certificate for ${names[*]}"
"$IMEDGE" certs issue --ca-cert "$DIR/server-ca.pem" --ca-key "$DIR/server-ca-key.pem" --server \
  "${san_args[@]}" --days "$DAYS" --out-cert "$DIR/server.pem" --out-key "$DIR/server-key.pem"
log "creating the client CA (stands in for TencentQQAuthCA)"
"$IMEDGE" certs ca --cn "imedge dev client CA" --out-cert "$DIR/client-ca.pem" --out-key "$DIR/client-ca-key.pem"
log "issuing the client certificate"
"$IMEDGE" certs issue --ca-cert "$DIR/client-ca.pem" --ca-key "$DIR/client-ca-key.pem" --client \
  --uri spiffe://tencent-im/callback --days "$DAYS" --out-cert "$DIR/client.pem" --out-key "$DIR/client-key.pem"
log "signing an empty CRL of the client CA"
"$IMEDGE" certs crl --ca-cert "$DIR/client-ca.pem" --ca-key "$DIR/client-ca-key.pem" --days "$DAYS" --out "$DIR/client.crl"
"$IMEDGE" certs check --cert "$DIR/server.pem" --key "$DIR/server-key.pem" --root "$DIR/server-ca.pem" \
  --name "${names[0]}" --min-validity 1h --crl "$DIR/client.crl" --crl-issuer "$DIR/client-ca.pem"
"$IMEDGE" certs check --client --cert "$DIR/client.pem" --key "$DIR/client-key.pem" --root "$DIR/client-ca.pem" --min-validity 1h

log "done; files in $DIR:"
for f in "${files[@]}"; do
  printf '  %s\n' "$DIR/$f"
done
cat <<EOF
Run imedge with them (forwarding to a local service on :8080):
  $IMEDGE serve --listen 127.0.0.1:8443 --cert $DIR/server.pem --key $DIR/server-key.pem \\
    --client-ca $DIR/client-ca.pem --client-crl $DIR/client.crl \\
    --sdkappid 1400000000 --forward-url http://127.0.0.1:8080/im-events
Revoke the client later with (PID: the process id of that imedge):
  scripts/revoke-client-cert.sh --crl $DIR/client.crl --ca-cert $DIR/client-ca.pem \\
    --ca-key $DIR/client-ca-key.pem --bundle $DIR/client-ca.pem \\
    --serial $("$IMEDGE" certs inspect "$DIR/client.pem" | awk '$1 == "serial:" { print $2 }') --pid PID
EOF
