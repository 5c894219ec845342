#!/usr/bin/env bash
# release.sh: build imedge's release artefacts, reproducibly.
#
# Usage: scripts/release.sh [--out DIR] [--arch "amd64 arm64"]
#                           [--toolchain GOTOOLCHAIN] [--only binaries]
#
#   --out        directory for the artefacts; must not exist or be empty
#                (default dist; `make release` empties it first)
#   --arch       the linux architectures to build (default "amd64 arm64")
#   --toolchain  the Go that builds the binaries, as a GOTOOLCHAIN value
#                (default RELEASE_GOTOOLCHAIN from scripts/release.env; the
#                tests pass "local" to use the machine's Go)
#   --only binaries   build the binaries only (no SBOM, package or sums)
#
# Environment:
#   ALLOW_UNTAGGED=1  build although no tag v$(cat VERSION) exists (a test
#                     build; a clean clone may carry no tags). A tag that
#                     exists must point at HEAD, always.
#   ALLOW_DIRTY=1     build from a tree with uncommitted changes (the
#                     binaries then say +dirty)
#   DEB_MAINTAINER    the package's Maintainer field (default: the imedge
#                     maintainers; set your organisation's when you
#                     repackage)
#
# Outputs in DIR, for each ARCH, with V the content of VERSION:
#   imedge_V_linux_ARCH          static binary (CGO_ENABLED=0, -trimpath, no
#                                build id, commit stamped by -buildvcs)
#   imedge_V_linux_ARCH.cdx.json CycloneDX SBOM of that binary's modules and
#                                Go standard library (cyclonedx-gomod app)
#   imedge_V_ARCH.deb            Debian package (nfpm; deploy/deb/)
#   SHA256SUMS                   sha256sum of everything above; signing it is
#                                the operator's pipeline's (docs/release.md)
# Every file's time stamp is the commit's (SOURCE_DATE_EPOCH), so the same
# commit built with the same toolchain gives the same bytes.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=scripts/release.env
source scripts/release.env

out=dist
arches="amd64 arm64"
toolchain=$RELEASE_GOTOOLCHAIN
only=""
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --arch) arches=${2:?--arch needs a list}; shift 2 ;;
    --toolchain) toolchain=${2:?--toolchain needs a value}; shift 2 ;;
    --only) only=${2:?--only needs a value}; shift 2 ;;
    -h|--help) sed -n '2,/^set -/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "release: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $only in "" | binaries) ;; *) echo "release: --only takes \"binaries\"" >&2; exit 2 ;; esac

die() { echo "release: $*" >&2; exit 1; }
say() { echo "release: $*"; }

version=$(tr -d '[:space:]' < VERSION)
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || die "VERSION holds \"$version\", not a semantic version"
tag=v$version

# The tree: a release is built from the commit its tag names, unmodified.
if git rev-parse --git-dir >/dev/null 2>&1; then
  head=$(git rev-parse HEAD)
  if git rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
    tagged=$(git rev-parse "$tag^{commit}")
    [ "$tagged" = "$head" ] || die "tag $tag names commit $tagged, not HEAD ($head): check out the tag, or bump VERSION for a new release"
    say "tag $tag names HEAD ($head)"
  elif [ "${ALLOW_UNTAGGED:-}" = 1 ]; then
    say "warning: no tag $tag; building untagged $head (ALLOW_UNTAGGED=1)"
  else
    die "no tag $tag: tag the release commit (git tag -a $tag -m 'imedge $version'), or set ALLOW_UNTAGGED=1 for a test build"
  fi
  if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    [ "${ALLOW_DIRTY:-}" = 1 ] || die "the tree has uncommitted changes; commit them, or set ALLOW_DIRTY=1 for a test build"
    say "warning: building a modified tree (ALLOW_DIRTY=1)"
  fi
  : "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct HEAD)}"
else
  [ "${ALLOW_UNTAGGED:-}" = 1 ] || die "not a git checkout: the tag $tag cannot be checked; set ALLOW_UNTAGGED=1 to build anyway"
  [ -n "${SOURCE_DATE_EPOCH:-}" ] || die "not a git checkout: set SOURCE_DATE_EPOCH (seconds) for the files' time stamps"
fi
export SOURCE_DATE_EPOCH

mkdir -p "$out"
[ -z "$(ls -A "$out")" ] || die "$out is not empty (make release empties dist/ first)"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gover=$(GOTOOLCHAIN=$toolchain go env GOVERSION)
say "building imedge $version with $gover (GOTOOLCHAIN=$toolchain) for: $arches"

# build_binary ARCH FILE: the release build. GOFLAGS is cleared so that the
# environment cannot change the result; GOAMD64/GOARM64 are the defaults,
# named so that they cannot either.
build_binary() {
  env GOTOOLCHAIN="$toolchain" GOFLAGS=-mod=readonly CGO_ENABLED=0 GOOS=linux GOARCH="$1" \
    GOAMD64=v1 GOARM64=v8.0 \
    go build -trimpath -buildvcs=true -ldflags='-s -w -buildid=' -o "$2" ./cmd/imedge
}

for arch in $arches; do
  build_binary "$arch" "$out/imedge_${version}_linux_${arch}"
  if [ -n "${head:-}" ]; then
    stamped=$(GOTOOLCHAIN=$toolchain go version -m "$out/imedge_${version}_linux_${arch}" | sed -n 's/^[[:space:]]*build[[:space:]]*vcs\.revision=//p')
    [ "$stamped" = "$head" ] ||
      die "the $arch binary is stamped with commit \"$stamped\", not $head (Go does not stamp builds in a git worktree: build from a clone)"
  fi
done
if [ "$only" = binaries ]; then
  say "binaries in $out"
  exit 0
fi

# The tools run with the machine's Go; only what ships uses the release Go.
say "installing cyclonedx-gomod $CYCLONEDX_GOMOD_VERSION and nfpm $NFPM_VERSION"
for tool in "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@${CYCLONEDX_GOMOD_VERSION}" \
  "github.com/goreleaser/nfpm/v2/cmd/nfpm@${NFPM_VERSION}"; do
  env GOBIN="$work/tools" GOFLAGS= GOTOOLCHAIN=local go install "$tool"
done

# packaged_unit: deploy/imedge.service with the package's header and binary
# path; the directives are the same as the source unit's.
packaged_unit() {
  cat <<'EOF'
# systemd unit of the imedge Debian package, made from deploy/imedge.service
# of the source with the binary at /usr/bin/imedge. The package leaves it
# disabled: configure /etc/imedge/imedge.yaml, then
#   systemctl enable --now imedge.service
# Local changes go in a drop-in (systemctl edit imedge.service), which
# upgrades keep.
#
# Reload certificates, CA bundle and CRLs: systemctl reload imedge (SIGHUP).
# Reopen the audit log after rotation: systemctl kill -s USR1 imedge.service.

EOF
  sed -e '1,/^$/d' -e 's|/usr/local/bin/imedge|/usr/bin/imedge|g' deploy/imedge.service
}

# debian_changelog: the package's changelog (Debian format), pointing at the
# release's own CHANGELOG.md for the changes, upgrade and downgrade notes.
debian_changelog() {
  cat <<EOF
imedge ($version) unstable; urgency=medium

  * imedge $version. Changes, upgrade and downgrade notes: CHANGELOG.md at
    https://github.com/imedge/imedge/blob/$tag/CHANGELOG.md

 -- $DEB_MAINTAINER  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
}

# manual_page USAGE-FILE: imedge(1), whose description is the binary's own
# usage text ("imedge help"), so that it cannot drift from the commands.
manual_page() {
  cat <<EOF
.TH IMEDGE 1 "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)" "imedge $version" "User Commands"
.SH NAME
imedge \\- hardened edge receiver for Tencent Cloud IM webhooks
.SH SYNOPSIS
.B imedge
.I command
.RI [ flags ]
.SH DESCRIPTION
.nf
EOF
  sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^[.']/\\\\&&/" "$1"
  cat <<'EOF'
.fi
.SH FILES
.TP
.I /etc/imedge/imedge.yaml
the configuration read by the systemd unit; keys are the flag names of
.BR "imedge serve" .
.TP
.I /usr/share/doc/imedge/imedge.example.yaml.gz
every setting with its default.
.TP
.I /var/lib/imedge
the state directory: the durable outbox.
.TP
.I /var/log/imedge/audit.log
the audit log, one JSON line per refused callback.
.SH SEE ALSO
.BR systemctl (1),
.BR journalctl (1);
https://github.com/imedge/imedge
EOF
}

export DEB_MAINTAINER=${DEB_MAINTAINER:-imedge maintainers <imedge-maintainers@users.noreply.github.com>}

# The usage text for the manual page, from a binary this machine can run.
hostarch=$(GOTOOLCHAIN=local go env GOHOSTARCH)
if [ -x "$out/imedge_${version}_linux_${hostarch}" ]; then
  "$out/imedge_${version}_linux_${hostarch}" help > "$work/usage.txt"
else
  GOTOOLCHAIN=local go run ./cmd/imedge help > "$work/usage.txt"
fi

for arch in $arches; do
  bin=$out/imedge_${version}_linux_${arch}

  say "SBOM for linux/$arch"
  env GOTOOLCHAIN="$toolchain" GOFLAGS=-mod=readonly CGO_ENABLED=0 GOOS=linux GOARCH="$arch" \
    "$work/tools/cyclonedx-gomod" app -json -licenses -std -noserial -notimestamp \
    -main cmd/imedge -output "$bin.cdx.json" . 2> "$work/sbom.log" ||
    { cat "$work/sbom.log" >&2; die "cyclonedx-gomod failed for $arch"; }

  say "Debian package for $arch"
  stage=$work/stage-$arch
  install -D -m 0755 "$bin" "$stage/usr/bin/imedge"
  mkdir -p "$stage/lib/systemd/system"
  packaged_unit > "$stage/lib/systemd/system/imedge.service"
  grep -q '^ExecStart=/usr/bin/imedge serve ' "$stage/lib/systemd/system/imedge.service" ||
    die "the packaged unit does not start /usr/bin/imedge: deploy/imedge.service changed shape"
  ! grep -q /usr/local "$stage/lib/systemd/system/imedge.service" ||
    die "the packaged unit still names /usr/local"
  # The template unit for several instances, with the same binary path.
  sed -e 's|/usr/local/bin/imedge|/usr/bin/imedge|g' deploy/imedge@.service > "$stage/lib/systemd/system/imedge@.service"
  ! grep -q /usr/local "$stage/lib/systemd/system/imedge@.service" ||
    die "the packaged template unit still names /usr/local"
  install -D -m 0640 deploy/deb/imedge.yaml "$stage/etc/imedge/imedge.yaml"
  install -D -m 0644 deploy/logrotate/imedge "$stage/etc/logrotate.d/imedge"
  install -D -m 0644 deploy/deb/copyright "$stage/usr/share/doc/imedge/copyright"
  debian_changelog | gzip -9n > "$stage/usr/share/doc/imedge/changelog.gz"
  gzip -9n < imedge.example.yaml > "$stage/usr/share/doc/imedge/imedge.example.yaml.gz"
  install -D -m 0644 deploy/prometheus/imedge.rules.yml "$stage/usr/share/doc/imedge/prometheus/imedge.rules.yml"
  install -D -m 0644 scripts/lib.sh "$stage/usr/share/imedge/scripts/lib.sh"
  for s in rotate-server-cert.sh rotate-client-ca.sh revoke-client-cert.sh; do
    install -D -m 0755 "scripts/$s" "$stage/usr/share/imedge/scripts/$s"
  done
  mkdir -p "$stage/usr/share/man/man1"
  manual_page "$work/usage.txt" | gzip -9n > "$stage/usr/share/man/man1/imedge.1.gz"
  install -D -m 0644 deploy/deb/lintian-overrides "$stage/usr/share/lintian/overrides/imedge"
  for s in postinst prerm postrm; do
    install -D -m 0755 "deploy/deb/$s" "$stage/DEBIAN/$s"
  done
  (
    cd "$stage"
    IMEDGE_VERSION=$version IMEDGE_ARCH=$arch "$work/tools/nfpm" package \
      -f "$root/deploy/deb/nfpm.yaml" -p deb -t "$out/imedge_${version}_${arch}.deb" > "$work/nfpm.log" 2>&1
  ) || { cat "$work/nfpm.log" >&2; die "nfpm failed for $arch"; }
done

(
  cd "$out"
  find . -maxdepth 1 -type f -printf '%f\n' | LC_ALL=C sort | xargs sha256sum -- > "$work/SHA256SUMS"
)
mv "$work/SHA256SUMS" "$out/SHA256SUMS"
say "artefacts in $out:"
sed 's/^/  /' "$out/SHA256SUMS"
