package sandbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/internal/uring"
	"github.com/imedge/imedge/sandbox"
)

// childEnv names the JSON-encoded childSpec a re-executed test binary
// sandboxes itself with. Landlock cannot be undone, so every test that
// applies it does so in a child process.
const childEnv = "IMEDGE_SANDBOX_CHILD"

// childSpec is what the child applies and then tries.
type childSpec struct {
	Opts  sandbox.Options
	Tries []try
	// URingFirst flushes a file through io_uring before Apply, which
	// starts a kernel worker thread in the child.
	URingFirst bool
}

// try is one file operation attempted after Apply.
type try struct {
	Op   string // read, write, append, create, exec, readdir
	Path string
}

// childReport is what the child prints on stdout.
type childReport struct {
	Result sandbox.Result
	Err    string
	// Outcomes holds, per try, "" when it succeeded, "denied" for a
	// permission error, else the error text.
	Outcomes []string
}

// TestMain runs the child side when asked to.
func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

func runChild(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return 3
	}
	var rep childReport
	if s.URingFirst {
		if err := flushThroughURing(); err != nil {
			rep.Err = "io_uring: " + err.Error()
			_ = json.NewEncoder(os.Stdout).Encode(rep)
			return 0
		}
	}
	res, err := sandbox.Apply(s.Opts)
	rep.Result = res
	if err != nil {
		rep.Err = err.Error()
	}
	for _, tr := range s.Tries {
		rep.Outcomes = append(rep.Outcomes, errText(attempt(tr)))
	}
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

func attempt(tr try) error {
	switch tr.Op {
	case "read":
		_, err := os.ReadFile(tr.Path)
		return err
	case "readdir":
		_, err := os.ReadDir(tr.Path)
		return err
	case "write", "create":
		return os.WriteFile(tr.Path, []byte("x"), 0o600)
	case "append":
		f, err := os.OpenFile(tr.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		_, err = f.WriteString("line\n")
		return errors.Join(err, f.Close())
	case "remove":
		return os.Remove(tr.Path)
	case "exec":
		return exec.Command(tr.Path).Run()
	}
	return errors.New("unknown op " + tr.Op)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, fs.ErrPermission) {
		return "denied"
	}
	return err.Error()
}

// runSandboxed re-executes the test binary as a child that applies o and
// attempts tries.
func runSandboxed(t *testing.T, o sandbox.Options, tries ...try) childReport {
	t.Helper()
	return runChildSpec(t, childSpec{Opts: o, Tries: tries})
}

// runChildSpec runs the child for s; a child that does not finish within
// 30 s is killed and fails the test.
func runChildSpec(t *testing.T, s childSpec) childReport {
	t.Helper()
	spec, err := json.Marshal(s)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	out, err := cmd.Output()
	require.NoError(t, ctx.Err(), "the child hung")
	require.NoError(t, err, "child: %s", out)
	var rep childReport
	require.NoError(t, json.Unmarshal(out, &rep), "child output: %s", out)
	return rep
}

func write(t *testing.T, path, data string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(data), 0o600))
	return path
}

func TestApply_ConfinesFileAccess(t *testing.T) {
	root := t.TempDir()
	certDir := filepath.Join(root, "etc")
	cert := write(t, filepath.Join(certDir, "cert.pem"), "cert")
	linked := write(t, filepath.Join(root, "archive", "key.pem"), "key")
	key := filepath.Join(certDir, "key.pem")
	require.NoError(t, os.Symlink(linked, key))
	secret := write(t, filepath.Join(root, "secret", "token"), "secret")
	state := filepath.Join(root, "state") // created by Apply
	logDir := filepath.Join(root, "log")
	auditLog := write(t, filepath.Join(logDir, "audit.log"), "")
	// A certificate replaced by rename after Apply: a new inode in the
	// same directory, which must stay readable.
	staged := write(t, filepath.Join(certDir, "cert.pem.new"), "rotated")

	rep := runSandboxed(t, sandbox.Options{
		ReadFiles: []string{cert, key}, WriteDirs: []string{state}, AppendFiles: []string{auditLog},
	},
		try{"read", cert},   // 0
		try{"read", key},    // 1 through the symlink
		try{"read", linked}, // 2 the symlink target's directory
		try{"read", secret}, // 3
		try{"create", filepath.Join(state, "outbox.db")},    // 4
		try{"write", filepath.Join(certDir, "evil.pem")},    // 5
		try{"append", auditLog},                             // 6
		try{"remove", auditLog},                             // 7 logrotate moves it; imedge never deletes
		try{"append", filepath.Join(logDir, "audit.log.1")}, // 8 a new file, as after rotation
		try{"exec", "/bin/true"},                            // 9
		try{"read", staged},                                 // 10
		try{"readdir", root},                                // 11
		try{"read", "/etc/hosts"},                           // 12 the resolver's files stay readable
	)
	if rep.Result.Mode == sandbox.ModeUnsupported {
		t.Skipf("no Landlock on this kernel: %s", rep.Result.Reason)
	}
	require.Empty(t, rep.Err)
	require.Equal(t, sandbox.ModeLandlock, rep.Result.Mode)
	assert.Positive(t, rep.Result.ABI)
	t.Logf("Landlock ABI %d", rep.Result.ABI)
	want := []string{"", "", "", "denied", "", "denied", "", "denied", "", "denied", "", "denied", ""}
	assert.Equal(t, want, rep.Outcomes)
	assert.Contains(t, rep.Result.Write, state)
	assert.Contains(t, rep.Result.Read, certDir)
}

func TestApply_MissingReadFileDirectoryIsAnError(t *testing.T) {
	rep := runSandboxed(t, sandbox.Options{ReadFiles: []string{"/nonexistent-imedge-dir/cert.pem"}})
	if rep.Result.Mode == sandbox.ModeUnsupported {
		t.Skipf("no Landlock on this kernel: %s", rep.Result.Reason)
	}
	assert.NotEmpty(t, rep.Err, "a required path that does not exist fails Apply")
}

func TestOff(t *testing.T) {
	r := sandbox.Off("--no-sandbox")
	assert.Equal(t, sandbox.ModeOff, r.Mode)
	assert.Equal(t, "--no-sandbox", r.Reason)
	if runtime.GOOS != "linux" {
		res, err := sandbox.Apply(sandbox.Options{})
		require.NoError(t, err)
		assert.Equal(t, sandbox.ModeUnsupported, res.Mode)
	}
}

// flushThroughURing flushes a temporary file through a new io_uring ring,
// which starts a kernel worker thread (iou-wrk-*) in the process. The ring
// stays open, as the outbox journal's does while imedge runs.
func flushThroughURing() error {
	r, err := uring.New()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "imedge-sandbox-uring")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	return r.Fdatasync(f)
}

// TestApply_RefusesOnceIOURingWorkersRun: applying Landlock to every
// thread waits for each to answer a signal, which an io_uring worker never
// does; Apply says so instead of spinning forever.
func TestApply_RefusesOnceIOURingWorkersRun(t *testing.T) {
	rep := runChildSpec(t, childSpec{URingFirst: true})
	if rep.Result.Mode == sandbox.ModeUnsupported {
		t.Skipf("no Landlock on this kernel: %s", rep.Result.Reason)
	}
	if strings.HasPrefix(rep.Err, "io_uring: ") && strings.Contains(rep.Err, uring.ErrUnavailable.Error()) {
		t.Skipf("no io_uring here: %s", rep.Err)
	}
	assert.Contains(t, rep.Err, sandbox.ErrKernelWorkers.Error())
	assert.Contains(t, rep.Err, "iou-wrk")
	assert.NotEqual(t, sandbox.ModeLandlock, rep.Result.Mode)
}
