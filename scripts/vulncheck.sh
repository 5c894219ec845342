#!/usr/bin/env bash
# vulncheck.sh: run govulncheck over what ships, with an offline database.
#
# Usage: scripts/vulncheck.sh [--toolchain GOTOOLCHAIN]
#
#   --toolchain   the Go whose standard library is checked, as a GOTOOLCHAIN
#                 value: default RELEASE_GOTOOLCHAIN from scripts/release.env
#                 (the Go that release binaries are built with); "local" checks
#                 the machine's own Go.
#
# The machines that build imedge reach package registries only, not
# vuln.go.dev, so the vulnerability database is built here from the
# golang.org/x/vulndb module (fetched through the Go module proxy) with its
# own gendb tool, then govulncheck reads it with -db file://. govulncheck
# runs under the chosen toolchain (GOTOOLCHAIN), so its standard-library
# findings are those of the Go that builds the release, and with the build
# settings of a release (CGO_ENABLED=0, linux).
#
# Output: the Go version checked, then one line per vulnerability that
# imedge's code can reach.
# Exit status: 1 when any reachable vulnerability is found, in a third-party
# module (fix: upgrade it in go.mod) or in the standard library (fix: raise
# RELEASE_GOTOOLCHAIN to a Go that fixes it); 0 otherwise.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/release.env
source scripts/release.env

VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
GOVULNCHECK_VERSION=v1.9.0

toolchain=$RELEASE_GOTOOLCHAIN
while [ $# -gt 0 ]; do
  case $1 in
    --toolchain) toolchain=${2:?--toolchain needs a value}; shift 2 ;;
    -h|--help) sed -n '2,/^set -/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "vulncheck: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

src=$(go mod download -json "golang.org/x/vulndb@${VULNDB_VERSION}" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
cp -r "$src" "$work/repo"
chmod -R u+w "$work/repo"
(
  cd "$work/repo"
  git init -q
  git add -A
  git -c user.email=vulncheck@imedge.invalid -c user.name=vulncheck commit -qm snapshot
  GOFLAGS=-mod=mod go run ./cmd/gendb -repo . -out "$work/db" > "$work/gendb.log" 2>&1
)
echo "vulncheck: database built from golang.org/x/vulndb@${VULNDB_VERSION}"

# govulncheck exits 3 when it finds anything; the verdict is ours below.
# Its stderr goes to a file, shown only when it produced no result.
if ! GOTOOLCHAIN=$toolchain CGO_ENABLED=0 GOOS=linux \
  go run "golang.org/x/vuln/cmd/govulncheck@${GOVULNCHECK_VERSION}" \
  -db "file://$work/db" -format json ./... > "$work/findings.json" 2> "$work/govulncheck.log"; then
  if [ ! -s "$work/findings.json" ]; then
    cat "$work/govulncheck.log" >&2
    echo "vulncheck: govulncheck failed under GOTOOLCHAIN=$toolchain" >&2
    exit 1
  fi
fi

python3 - "$work/findings.json" "$toolchain" <<'PY'
import json, sys

text, toolchain = open(sys.argv[1]).read(), sys.argv[2]
dec, pos, called, go_version = json.JSONDecoder(), 0, {}, "?"
while True:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text):
        break
    obj, pos = dec.raw_decode(text, pos)
    if "config" in obj:
        go_version = obj["config"].get("go_version", "?")
    f = obj.get("finding")
    if not f or not f.get("trace") or not f["trace"][0].get("function"):
        continue  # imported or required only: not reachable from our code
    top = f["trace"][0]
    called[f["osv"]] = (top.get("module", "?"), f.get("fixed_version", "?"))

print(f"vulncheck: checked with {go_version} (GOTOOLCHAIN={toolchain})")
stdlib = 0
for osv, (module, fixed) in sorted(called.items()):
    stdlib += module == "stdlib"
    hint = "raise RELEASE_GOTOOLCHAIN" if module == "stdlib" else "upgrade the module"
    print(f"vulncheck: FAIL: {osv} in {module}, fixed in {fixed} ({hint})")
print(f"vulncheck: {len(called)} reachable: {stdlib} in the standard library, "
      f"{len(called) - stdlib} in third-party modules")
sys.exit(1 if called else 0)
PY
