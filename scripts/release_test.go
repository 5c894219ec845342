package scripts_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The release tests build with the machine's Go ("--toolchain local"), so
// that `go test ./...` needs no toolchain download; `make release-check`
// (release_check_test.go) repeats the build with the release toolchain
// for both architectures and with a cold build cache.

// lintianStaticGoTags are the only lintian tags the package may override:
// they describe a statically linked Go program, not a packaging fault.
var lintianStaticGoTags = []string{"statically-linked-binary"}

// snapshot copies the working tree (tracked files and untracked ones git
// does not ignore) into a new repository at dir with a single commit, so
// that a release build sees a clean, committed tree with the content under
// test, at a path of its own.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", "..", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	require.NoError(t, err, "git ls-files (the tests run from a git checkout)")
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join("..", name)
		fi, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree
		}
		require.NoError(t, err)
		require.True(t, fi.Mode().IsRegular(), "%s: only regular files are expected in the tree", name)
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		dst := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		require.NoError(t, os.WriteFile(dst, b, fi.Mode().Perm()))
	}
	gitIn(t, dir, "init", "-q")
	gitIn(t, dir, "add", "-A")
	gitIn(t, dir, "commit", "-q", "-m", "snapshot")
	return strings.TrimSpace(gitIn(t, dir, "rev-parse", "HEAD"))
}

// gitIn runs git in dir with a fixed identity and dates and returns stdout.
func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=release-test", "-c", "user.email=release-test@imedge.invalid",
		"-c", "init.defaultBranch=main", "-c", "tag.gpgSign=false", "-c", "commit.gpgSign=false"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE=2026-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2026-01-02T03:04:05Z")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		require.NoError(t, err, "git %v: %s", args, ee.Stderr)
	}
	require.NoError(t, err, "git %v", args)
	return string(out)
}

// releaseScript runs scripts/release.sh of the tree at dir with env added
// to the environment, and returns its combined output and exit code.
func releaseScript(t *testing.T, dir string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(dir, "scripts", "release.sh")}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(withoutReleaseEnv(os.Environ()), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	require.NoError(t, err, "running release.sh: %s", out)
	return string(out), 0
}

// withoutReleaseEnv drops the variables that change what release.sh does,
// so that the caller's environment cannot change the tests' verdict.
func withoutReleaseEnv(env []string) []string {
	var kept []string
	for _, kv := range env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "ALLOW_UNTAGGED", "ALLOW_DIRTY", "DEB_MAINTAINER", "SOURCE_DATE_EPOCH", "GOTOOLCHAIN":
			continue
		}
		kept = append(kept, kv)
	}
	return kept
}

func versionFile(t *testing.T, dir string) string {
	t.Helper()
	return strings.TrimSpace(string(readFile(t, filepath.Join(dir, "VERSION"))))
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	sum := sha256.Sum256(readFile(t, path))
	return hex.EncodeToString(sum[:])
}

// checkReleaseBinary checks what makes a binary a release binary: static
// ELF for arch, built with -trimpath and without cgo, stamped with commit,
// and free of the build directory's path.
func checkReleaseBinary(t *testing.T, path, arch, commit, buildDir string) {
	t.Helper()
	f, err := elf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	assert.Equal(t, machine, f.Machine, "%s is an ELF binary for %s", path, arch)
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "%s is statically linked (no program interpreter)", path)
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	assert.Empty(t, libs, "%s needs no shared library", path)
	assert.Nil(t, f.Section(".note.go.buildid"), "%s carries no Go build id (-ldflags=-buildid=)", path)

	bi, err := buildinfo.ReadFile(path)
	require.NoError(t, err)
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	assert.Equal(t, "true", settings["-trimpath"], "built with -trimpath")
	assert.Equal(t, "0", settings["CGO_ENABLED"])
	assert.Equal(t, "linux", settings["GOOS"])
	assert.Equal(t, arch, settings["GOARCH"])
	assert.Equal(t, commit, settings["vcs.revision"], "stamped with the commit")
	assert.Equal(t, "false", settings["vcs.modified"])
	assert.False(t, bytes.Contains(readFile(t, path), []byte(buildDir)), "%s does not contain its build directory %s", path, buildDir)
}

// Two builds of one commit, from two copies of the tree at different
// paths, are byte for byte the same, and each is a release binary.
func TestRelease_BinaryIsReproducible(t *testing.T) {
	base := t.TempDir()
	a := filepath.Join(base, "a", "imedge")
	commit := snapshot(t, a)
	b := filepath.Join(base, "elsewhere", "deeper", "src")
	require.NoError(t, exec.Command("git", "clone", "-q", a, b).Run())

	arch := runtime.GOARCH
	version := versionFile(t, a)
	bin := "imedge_" + version + "_linux_" + arch
	var sums []string
	for _, dir := range []string{a, b} {
		out, code := releaseScript(t, dir, []string{"ALLOW_UNTAGGED=1"},
			"--only", "binaries", "--arch", arch, "--toolchain", "local", "--out", filepath.Join(dir, "dist"))
		require.Equal(t, 0, code, "release.sh --only binaries: %s", out)
		path := filepath.Join(dir, "dist", bin)
		checkReleaseBinary(t, path, arch, commit, dir)
		sums = append(sums, sha256File(t, path))
	}
	assert.Equal(t, sums[0], sums[1], "the same commit builds the same binary in %s and %s", a, b)

	out, err := exec.Command(filepath.Join(a, "dist", bin), "version", "--json").Output()
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, json.Unmarshal(out, &v))
	assert.Equal(t, version, v["version"])
	assert.Equal(t, commit, v["commit"])
	assert.Equal(t, false, v["dirty"])
}

// A release is built from the commit its tag names: no tag needs
// ALLOW_UNTAGGED=1, a tag on another commit is refused always, and so is
// a modified tree without ALLOW_DIRTY=1.
func TestRelease_TagMustNameHEAD(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "imedge")
	snapshot(t, dir)
	tag := "v" + versionFile(t, dir)
	full := filepath.Join(t.TempDir(), "out")
	require.NoError(t, os.MkdirAll(full, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(full, "old"), nil, 0o644))
	args := []string{"--only", "binaries", "--toolchain", "local", "--out", full}

	out, code := releaseScript(t, dir, nil, args...)
	assert.Equal(t, 1, code, "%s", out)
	assert.Contains(t, out, "no tag "+tag+":", "untagged without ALLOW_UNTAGGED=1")

	// With ALLOW_UNTAGGED=1 the tag check passes with a warning and the
	// next check, the non-empty output directory, stops the script.
	out, code = releaseScript(t, dir, []string{"ALLOW_UNTAGGED=1"}, args...)
	assert.Equal(t, 1, code, "%s", out)
	assert.Contains(t, out, "warning: no tag "+tag)
	assert.Contains(t, out, "is not empty")

	gitIn(t, dir, "tag", tag)
	out, code = releaseScript(t, dir, nil, args...)
	assert.Equal(t, 1, code, "%s", out)
	assert.Contains(t, out, "tag "+tag+" names HEAD")
	assert.Contains(t, out, "is not empty")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "VERSION"), []byte(versionFile(t, dir)+"\n\n"), 0o644))
	out, code = releaseScript(t, dir, nil, args...)
	assert.Equal(t, 1, code, "%s", out)
	assert.Contains(t, out, "uncommitted changes")
	gitIn(t, dir, "commit", "-q", "-am", "after the tag")
	for _, env := range [][]string{nil, {"ALLOW_UNTAGGED=1", "ALLOW_DIRTY=1"}} {
		out, code = releaseScript(t, dir, env, args...)
		assert.Equal(t, 1, code, "%s", out)
		assert.Contains(t, out, "tag "+tag+" names commit", "a tag on another commit is refused, whatever the environment")
	}
}

// debEntry is one line of `dpkg-deb -c`.
type debEntry struct{ mode, owner string }

func debContents(t *testing.T, deb string) map[string]debEntry {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-c", deb).Output()
	require.NoError(t, err)
	entries := map[string]debEntry{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		require.Len(t, f, 6, "dpkg-deb -c line %q", sc.Text())
		entries[f[5]] = debEntry{mode: f[0], owner: f[1]}
	}
	return entries
}

// unitDirectives returns a systemd unit's non-comment lines in order.
func unitDirectives(unit string) []string {
	var lines []string
	for _, l := range strings.Split(unit, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// The release of one architecture, built as `make release` builds it (but
// with the machine's Go): the binary, its SBOM, the Debian package and
// SHA256SUMS, and the package's content, scripts, unit and lintian
// verdict.
func TestRelease_DebianPackage(t *testing.T) {
	requireReleaseTools(t)
	dir := filepath.Join(t.TempDir(), "imedge")
	commit := snapshot(t, dir)
	arch := runtime.GOARCH
	dist := filepath.Join(dir, "dist")
	out, code := releaseScript(t, dir, []string{"ALLOW_UNTAGGED=1"}, "--arch", arch, "--toolchain", "local", "--out", dist)
	require.Equal(t, 0, code, "release.sh: %s", out)
	checkSums(t, dist, releaseFiles(versionFile(t, dir), arch))
	checkArtefacts(t, dir, dist, arch, commit)
}

func requireReleaseTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"dpkg-deb", "lintian", "systemd-analyze", "shellcheck", "sha256sum"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s is needed (scripts/test.sh installs it)", tool)
	}
}

// releaseFiles names the artefacts of version for arches, sorted as
// SHA256SUMS lists them.
func releaseFiles(version string, arches ...string) []string {
	var names []string
	for _, arch := range arches {
		names = append(names, "imedge_"+version+"_"+arch+".deb", "imedge_"+version+"_linux_"+arch, "imedge_"+version+"_linux_"+arch+".cdx.json")
	}
	sort.Strings(names)
	return names
}

// checkSums checks that SHA256SUMS in dist lists exactly names, and that
// sha256sum agrees with it.
func checkSums(t *testing.T, dist string, names []string) {
	t.Helper()
	sums := string(readFile(t, filepath.Join(dist, "SHA256SUMS")))
	var listed []string
	for _, l := range strings.Split(strings.TrimSpace(sums), "\n") {
		_, name, ok := strings.Cut(l, "  ")
		require.True(t, ok, "sha256sum line %q", l)
		listed = append(listed, name)
	}
	assert.Equal(t, names, listed, "SHA256SUMS lists every artefact")
	cmd := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
	cmd.Dir = dist
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "sha256sum --check: %s", out)
}

// checkArtefacts checks the binary, SBOM and Debian package of arch that
// release.sh built from the tree at dir (commit) into dist.
func checkArtefacts(t *testing.T, dir, dist, arch, commit string) {
	version := versionFile(t, dir)
	bin := filepath.Join(dist, "imedge_"+version+"_linux_"+arch)
	sbom := bin + ".cdx.json"
	deb := filepath.Join(dist, "imedge_"+version+"_"+arch+".deb")

	t.Run("binary", func(t *testing.T) { checkReleaseBinary(t, bin, arch, commit, dir) })

	t.Run("SBOM", func(t *testing.T) {
		var doc struct {
			BOMFormat string `json:"bomFormat"`
			Metadata  struct {
				Component struct{ Name, Version string } `json:"component"`
			} `json:"metadata"`
			Components []struct{ Name, Version string } `json:"components"`
		}
		require.NoError(t, json.Unmarshal(readFile(t, sbom), &doc))
		assert.Equal(t, "CycloneDX", doc.BOMFormat)
		assert.Equal(t, "github.com/imedge/imedge", doc.Metadata.Component.Name)
		got := map[string]string{}
		for _, c := range doc.Components {
			got[c.Name] = c.Version
		}
		bi, err := buildinfo.ReadFile(bin)
		require.NoError(t, err)
		assert.Equal(t, bi.GoVersion, got["std"], "the SBOM names the Go standard library that is in the binary")
		for _, d := range bi.Deps {
			assert.Equal(t, d.Version, got[d.Path], "the SBOM lists %s, linked into the binary", d.Path)
		}
	})

	x := t.TempDir()
	require.NoError(t, exec.Command("dpkg-deb", "-x", deb, x).Run())
	control := t.TempDir()
	require.NoError(t, exec.Command("dpkg-deb", "-e", deb, control).Run())

	t.Run("control", func(t *testing.T) {
		for field, want := range map[string]string{"Package": "imedge", "Version": version, "Architecture": arch, "Section": "net"} {
			out, err := exec.Command("dpkg-deb", "-f", deb, field).Output()
			require.NoError(t, err)
			assert.Equal(t, want, strings.TrimSpace(string(out)), "control field %s", field)
		}
		assert.Equal(t, "/etc/imedge/imedge.yaml\n/etc/logrotate.d/imedge\n", string(readFile(t, filepath.Join(control, "conffiles"))))
	})

	t.Run("tree", func(t *testing.T) {
		want := map[string]debEntry{
			"./usr/bin/imedge":                                   {"-rwxr-xr-x", "root/root"},
			"./lib/systemd/system/imedge.service":                {"-rw-r--r--", "root/root"},
			"./lib/systemd/system/imedge@.service":               {"-rw-r--r--", "root/root"},
			"./etc/imedge/":                                      {"drwxr-x---", "root/imedge"},
			"./etc/imedge/imedge.yaml":                           {"-rw-r-----", "root/imedge"},
			"./etc/logrotate.d/imedge":                           {"-rw-r--r--", "root/root"},
			"./var/lib/imedge/":                                  {"drwx------", "imedge/imedge"},
			"./var/log/imedge/":                                  {"drwxr-x---", "imedge/imedge"},
			"./usr/share/doc/imedge/copyright":                   {"-rw-r--r--", "root/root"},
			"./usr/share/doc/imedge/changelog.gz":                {"-rw-r--r--", "root/root"},
			"./usr/share/doc/imedge/imedge.example.yaml.gz":      {"-rw-r--r--", "root/root"},
			"./usr/share/man/man1/imedge.1.gz":                   {"-rw-r--r--", "root/root"},
			"./usr/share/doc/imedge/prometheus/imedge.rules.yml": {"-rw-r--r--", "root/root"},
			"./usr/share/lintian/overrides/imedge":               {"-rw-r--r--", "root/root"},
			"./usr/share/imedge/scripts/lib.sh":                  {"-rw-r--r--", "root/root"},
			"./usr/share/imedge/scripts/rotate-server-cert.sh":   {"-rwxr-xr-x", "root/root"},
			"./usr/share/imedge/scripts/rotate-client-ca.sh":     {"-rwxr-xr-x", "root/root"},
			"./usr/share/imedge/scripts/revoke-client-cert.sh":   {"-rwxr-xr-x", "root/root"},
		}
		got := debContents(t, deb)
		for path, e := range got {
			if w, ok := want[path]; ok {
				assert.Equal(t, w, e, "%s", path)
				continue
			}
			assert.Equal(t, debEntry{"drwxr-xr-x", "root/root"}, e, "%s: anything else is a parent directory", path)
		}
		for path := range want {
			assert.Contains(t, got, path)
		}
		assert.Equal(t, sha256File(t, bin), sha256File(t, filepath.Join(x, "usr/bin/imedge")), "the package ships the released binary")
		assert.Equal(t, string(readFile(t, filepath.Join(dir, "deploy/logrotate/imedge"))), string(readFile(t, filepath.Join(x, "etc/logrotate.d/imedge"))))
	})

	t.Run("rotation scripts run from the package", func(t *testing.T) {
		for _, name := range []string{"rotate-server-cert.sh", "rotate-client-ca.sh", "revoke-client-cert.sh"} {
			out, err := exec.Command(filepath.Join(x, "usr/share/imedge/scripts", name), "--help").CombinedOutput()
			require.NoError(t, err, "%s --help: %s", name, out)
			assert.Contains(t, string(out), "Usage:", name)
			assert.Equal(t, string(readFile(t, filepath.Join(dir, "scripts", name))),
				string(readFile(t, filepath.Join(x, "usr/share/imedge/scripts", name))), "%s is shipped as it is", name)
		}
	})

	t.Run("config refuses to start until filled in", func(t *testing.T) {
		if arch != runtime.GOARCH {
			t.Skipf("the %s binary does not run on %s; the %s release checks the same file", arch, runtime.GOARCH, runtime.GOARCH)
		}
		cmd := exec.Command(filepath.Join(x, "usr/bin/imedge"), "check-config", "--config", filepath.Join(x, "etc/imedge/imedge.yaml"))
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		require.Error(t, err, "an unconfigured package must not pass check-config: %s", out)
		assert.Contains(t, string(out), "--sdkappid is required")
		assert.Contains(t, string(out), "--forward-url is required")
		assert.NotContains(t, string(out), "line ", "the shipped file parses: only missing values are reported")
	})

	t.Run("unit", func(t *testing.T) {
		unit := string(readFile(t, filepath.Join(x, "lib/systemd/system/imedge.service")))
		source := string(readFile(t, filepath.Join(dir, "deploy/imedge.service")))
		want := unitDirectives(strings.ReplaceAll(source, "ExecStart=/usr/local/bin/imedge ", "ExecStart=/usr/bin/imedge "))
		assert.Equal(t, want, unitDirectives(unit), "the packaged unit is deploy/imedge.service with the binary in /usr/bin")
		assert.Contains(t, unitDirectives(unit), "ExecStart=/usr/bin/imedge serve --config /etc/imedge/imedge.yaml")
		assert.NotContains(t, unit, "/usr/local")
		tmpl := string(readFile(t, filepath.Join(x, "lib/systemd/system/imedge@.service")))
		tsource := string(readFile(t, filepath.Join(dir, "deploy/imedge@.service")))
		assert.Equal(t, unitDirectives(strings.ReplaceAll(tsource, "/usr/local/bin/imedge ", "/usr/bin/imedge ")), unitDirectives(tmpl),
			"the packaged template is deploy/imedge@.service with the binary in /usr/bin")
		assert.NotContains(t, tmpl, "/usr/local")

		// systemd-analyze verify wants ExecStart's binary to exist: point it at
		// the unpacked one. It reports problems as output, still exiting 0.
		verifyDir := t.TempDir()
		path := filepath.Join(verifyDir, "imedge.service")
		require.NoError(t, os.WriteFile(path, []byte(strings.Replace(unit, "ExecStart=/usr/bin/imedge ", "ExecStart="+filepath.Join(x, "usr/bin/imedge")+" ", 1)), 0o644))
		out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
		require.NoError(t, err, "systemd-analyze verify: %s", out)
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			assert.NotContains(t, line, "imedge.service", "verify reports a problem with the packaged unit")
		}
	})

	t.Run("maintainer scripts", func(t *testing.T) {
		scripts := []string{"postinst", "prerm", "postrm"}
		for _, s := range scripts {
			assert.Equal(t, string(readFile(t, filepath.Join(dir, "deploy/deb", s))), string(readFile(t, filepath.Join(control, s))), "%s ships as written", s)
		}
		cmd := exec.Command("shellcheck", "--shell=sh", "--severity=style", "postinst", "prerm", "postrm")
		cmd.Dir = control
		out, err := cmd.CombinedOutput()
		assert.NoError(t, err, "shellcheck: %s", out)
		checkMaintainerScripts(t, control)
	})

	t.Run("lintian", func(t *testing.T) {
		out, err := exec.Command("lintian", "--fail-on", "error", deb).CombinedOutput()
		assert.NoError(t, err, "lintian: %s", out)
		for _, line := range strings.Split(string(out), "\n") {
			assert.False(t, strings.HasPrefix(line, "E: "), "lintian error: %s", line)
		}
		overrides := string(readFile(t, filepath.Join(x, "usr/share/lintian/overrides/imedge")))
		var tags []string
		for _, l := range strings.Split(overrides, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				f := strings.Fields(strings.TrimPrefix(l, "imedge: "))
				tags = append(tags, f[0])
			}
		}
		require.NotEmpty(t, tags)
		for _, tag := range tags {
			assert.Contains(t, lintianStaticGoTags, tag, "only tags about a static Go binary may be overridden")
			assert.Regexp(t, `(?m)^# .*\n(#.*\n)*imedge: `+regexp.QuoteMeta(tag), overrides, "the override of %s has a comment", tag)
		}
	})
}

// checkMaintainerScripts runs the package's maintainer scripts from dir
// with every command that changes the system replaced by a stub that
// records its arguments: postinst creates the user once, hands the
// directories over, and tells systemd nothing but daemon-reload; prerm
// stops the service only on removal; nothing ever starts or enables it.
func checkMaintainerScripts(t *testing.T, dir string) {
	t.Helper()
	stubs := t.TempDir()
	state := t.TempDir()
	calls := filepath.Join(state, "calls")
	users := filepath.Join(state, "users")
	overrides := filepath.Join(state, "statoverrides")
	systemd := filepath.Join(state, "run-systemd-system")
	require.NoError(t, os.Mkdir(systemd, 0o755))
	logCall := `echo "$(basename "$0") $*" >> "$CALLS"` + "\n"
	stub := map[string]string{
		"getent":            logCall + `grep -qx "$1 $2" "$USERS"`,
		"groupadd":          logCall + `for a; do last=$a; done; echo "group $last" >> "$USERS"`,
		"useradd":           logCall + `for a; do last=$a; done; echo "passwd $last" >> "$USERS"`,
		"dpkg-statoverride": logCall + `[ "$1" = --list ] && grep -qx "$2" "$OVERRIDES"`,
	}
	for _, name := range []string{"adduser", "addgroup", "usermod", "userdel", "deluser", "chown", "chmod", "rm",
		"systemctl", "deb-systemd-invoke", "deb-systemd-helper", "invoke-rc.d", "service"} {
		stub[name] = logCall
	}
	for name, body := range stub {
		require.NoError(t, os.WriteFile(filepath.Join(stubs, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	}
	require.NoError(t, os.WriteFile(users, nil, 0o644))
	require.NoError(t, os.WriteFile(overrides, nil, 0o644))

	// run runs one script and returns the calls it made.
	run := func(script string, args ...string) []string {
		t.Helper()
		body := strings.ReplaceAll(string(readFile(t, filepath.Join(dir, script))), "/run/systemd/system", systemd)
		path := filepath.Join(state, script)
		require.NoError(t, os.WriteFile(path, []byte(body), 0o755))
		require.NoError(t, os.WriteFile(calls, nil, 0o644))
		cmd := exec.Command("/bin/sh", append([]string{path}, args...)...)
		cmd.Env = []string{"PATH=" + stubs + ":/usr/bin:/bin", "CALLS=" + calls, "USERS=" + users, "OVERRIDES=" + overrides}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s %v: %s", script, args, out)
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(readFile(t, calls))), "\n") {
			if l != "" && !strings.HasPrefix(l, "getent ") && !strings.HasPrefix(l, "dpkg-statoverride ") {
				got = append(got, l)
			}
		}
		return got
	}
	handOver := []string{
		"chown root:imedge /etc/imedge", "chmod 0750 /etc/imedge",
		"chown root:imedge /etc/imedge/imedge.yaml", "chmod 0640 /etc/imedge/imedge.yaml",
		"chown imedge:imedge /var/lib/imedge", "chmod 0700 /var/lib/imedge",
		"chown imedge:imedge /var/log/imedge", "chmod 0750 /var/log/imedge",
	}
	reload := "systemctl --system daemon-reload"

	first := run("postinst", "configure", "")
	assert.Equal(t, append(append([]string{
		"groupadd --system imedge",
		"useradd --system --gid imedge --home-dir /var/lib/imedge --no-create-home --shell /usr/sbin/nologin --comment imedge webhook receiver imedge",
	}, handOver...), reload), first, "first install: user, directories, daemon-reload")
	assert.Equal(t, append(handOver, reload), run("postinst", "configure", "0.1.0"), "upgrade: the user exists and is not created again")

	require.NoError(t, os.WriteFile(overrides, []byte("/var/lib/imedge\n"), 0o644))
	got := run("postinst", "configure", "0.1.0")
	assert.NotContains(t, got, "chown imedge:imedge /var/lib/imedge", "a dpkg-statoverride of the administrator is kept")
	assert.Contains(t, got, "chown imedge:imedge /var/log/imedge")

	require.NoError(t, os.Remove(systemd))
	assert.NotContains(t, run("postinst", "configure", "0.1.0"), reload, "no systemd running: no systemctl")
	require.NoError(t, os.Mkdir(systemd, 0o755))

	assert.Equal(t, []string{"deb-systemd-invoke stop imedge.service"}, run("prerm", "remove"))
	assert.Empty(t, run("prerm", "upgrade", "0.2.0"), "an upgrade does not stop (or restart) the service")
	assert.Equal(t, []string{reload}, run("postrm", "remove"))
	assert.Equal(t, []string{"rm -f /etc/systemd/system/multi-user.target.wants/imedge.service", reload}, run("postrm", "purge"))
	assert.Equal(t, []string{reload}, run("postrm", "upgrade", "0.2.0"))
}
