//go:build releasecheck

package scripts_test

import (
	"bufio"
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests run with `make release-check` (go test -tags releasecheck):
// they build the whole release as `make release` does, with the release
// toolchain and for every architecture, which takes minutes.

// releaseEnv reads scripts/release.env of the tree at dir.
func releaseEnv(t *testing.T, dir string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "scripts", "release.env"))
	require.NoError(t, err)
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	require.NoError(t, sc.Err())
	return env
}

// The release, built twice from one commit, once in a copy of the tree and
// once in a clone at another path with an empty build cache (so every
// package is compiled again, standard library included), is the same byte
// for byte: binaries, SBOMs and packages. Each artefact passes the checks
// of TestRelease_DebianPackage, and the binaries are built with the
// release toolchain.
func TestReleaseCheck_ReproducibleRelease(t *testing.T) {
	requireReleaseTools(t)
	base := t.TempDir()
	a := filepath.Join(base, "a", "imedge")
	commit := snapshot(t, a)
	b := filepath.Join(base, "elsewhere", "src")
	require.NoError(t, exec.Command("git", "clone", "-q", a, b).Run())
	arches := []string{"amd64", "arm64"}
	toolchain := releaseEnv(t, a)["RELEASE_GOTOOLCHAIN"]
	require.NotEmpty(t, toolchain, "scripts/release.env names RELEASE_GOTOOLCHAIN")

	builds := []struct {
		dir string
		env []string
	}{
		{a, []string{"ALLOW_UNTAGGED=1"}},
		{b, []string{"ALLOW_UNTAGGED=1", "GOCACHE=" + filepath.Join(base, "cold-cache")}},
	}
	for _, bld := range builds {
		out, code := releaseScript(t, bld.dir, bld.env, "--arch", strings.Join(arches, " "), "--out", filepath.Join(bld.dir, "dist"))
		require.Equal(t, 0, code, "release.sh in %s: %s", bld.dir, out)
		assert.Contains(t, out, "with "+toolchain+" ", "the release is built with the release toolchain")
	}
	version := versionFile(t, a)
	distA, distB := filepath.Join(a, "dist"), filepath.Join(b, "dist")
	checkSums(t, distA, releaseFiles(version, arches...))
	assert.Equal(t, string(readFile(t, filepath.Join(distA, "SHA256SUMS"))), string(readFile(t, filepath.Join(distB, "SHA256SUMS"))),
		"two builds of one commit give the same artefacts")

	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			bi, err := buildinfo.ReadFile(filepath.Join(distA, "imedge_"+version+"_linux_"+arch))
			require.NoError(t, err)
			assert.Equal(t, toolchain, bi.GoVersion)
			checkArtefacts(t, a, distA, arch, commit)
		})
	}
}
