#!/usr/bin/env bash
# vulncheck.sh: run govulncheck over the module with an offline database.
#
# Usage: scripts/vulncheck.sh
#
# The machines that build imedge reach package registries only, not
# vuln.go.dev, so the vulnerability database is built here from the
# golang.org/x/vulndb module (fetched through the Go module proxy) with its
# own gendb tool, then govulncheck reads it with -db file://.
#
# Output: one line per vulnerability that imedge's code can reach.
# Exit status: 1 when a reachable vulnerability is in a third-party module
# (fix: upgrade it); reachable standard-library vulnerabilities are printed
# as warnings only, because they are fixed by a newer Go toolchain, which is
# the machine's, not the module's, to change. 0 otherwise.
set -euo pipefail

VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
GOVULNCHECK_VERSION=v1.9.0

cd "$(dirname "$0")/.."
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
go run "golang.org/x/vuln/cmd/govulncheck@${GOVULNCHECK_VERSION}" \
  -db "file://$work/db" -format json ./... > "$work/findings.json" || true

python3 - "$work/findings.json" <<'PY'
import json, sys

text = open(sys.argv[1]).read()
dec, pos, called = json.JSONDecoder(), 0, {}
while True:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text):
        break
    obj, pos = dec.raw_decode(text, pos)
    f = obj.get("finding")
    if not f or not f.get("trace") or not f["trace"][0].get("function"):
        continue  # imported or required only: not reachable from our code
    top = f["trace"][0]
    called[f["osv"]] = (top.get("module", "?"), f.get("fixed_version", "?"))

bad = 0
for osv, (module, fixed) in sorted(called.items()):
    kind = "warning (Go toolchain)" if module == "stdlib" else "FAIL"
    bad += module != "stdlib"
    print(f"vulncheck: {kind}: {osv} in {module}, fixed in {fixed}")
print(f"vulncheck: {len(called)} reachable, {bad} in third-party modules")
sys.exit(1 if bad else 0)
PY
