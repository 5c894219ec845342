package forward

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/forward/internal/journal"
	"github.com/imedge/imedge/internal/uring"
)

// crashDirEnv, when set, turns the test binary into the crash writer: it
// appends events to the outbox in that directory and prints "ack <id>" for
// each Append that returned nil, until it is killed.
const crashDirEnv = "IMEDGE_FORWARD_CRASH_DIR"

// crashSyncEnv, set to "fdatasync", makes the crash writer's journal
// flush with fdatasync(2) (no io_uring).
const crashSyncEnv = "IMEDGE_FORWARD_CRASH_SYNC"

// crashWriterLifetime bounds the writer should its parent vanish.
const crashWriterLifetime = 20 * time.Second

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		if err := crashWriter(dir); err != nil {
			fmt.Fprintln(os.Stderr, "crash writer:", err)
			os.Exit(2)
		}
		return
	}
	m.Run()
}

// crashWriter is the child side of TestOutbox_SurvivesSIGKILL.
func crashWriter(dir string) error {
	o := OutboxOptions{Dir: dir, LockTimeout: 5 * time.Second, RememberFor: time.Hour}
	if os.Getenv(crashSyncEnv) == journal.MethodFdatasync {
		o.newRing = func() (*uring.Ring, error) { return nil, uring.ErrUnavailable }
	}
	ob, err := OpenOutbox(o)
	if err != nil {
		return err
	}
	defer ob.Close()
	ctx, cancel := context.WithTimeout(context.Background(), crashWriterLifetime)
	defer cancel()
	var out sync.Mutex
	write := func(line string) {
		out.Lock()
		defer out.Unlock()
		// One write(2) per line: a pipe write under PIPE_BUF is atomic, so
		// the parent never sees half a line.
		_, _ = os.Stdout.Write([]byte(line))
	}
	write("ready\n")
	pid := os.Getpid()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				ev := testEvent(fmt.Sprintf("crash-%d-%d", pid, w), i)
				sum := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%d", pid, w, i))
				ev.ID = hex.EncodeToString(sum[:])
				if err := ob.Append(ctx, ev); err != nil {
					continue
				}
				write("ack " + ev.ID + "\n")
			}
		})
	}
	wg.Wait()
	return nil
}

// TestOutbox_SurvivesSIGKILL runs a writer process, kills it with SIGKILL at
// a random moment, reopens the store and checks that every event whose
// Append had returned nil is still pending. Several rounds share one store;
// they alternate the journal's flush methods (io_uring where the kernel
// offers it, and fdatasync).
func TestOutbox_SurvivesSIGKILL(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	acked := map[string]bool{}

	for round := range 5 {
		cmd := exec.Command(exe, "-test.run=^$")
		mode := []string{"auto", journal.MethodFdatasync}[round%2]
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashSyncEnv+"="+mode)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		exited := false
		t.Cleanup(func() {
			if !exited {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})

		lines := make(chan string, 1024)
		var readers sync.WaitGroup
		readers.Go(func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			_, _ = io.Copy(io.Discard, stdout)
		})

		roundAcks := 0
		killAfter := time.Duration(50+rand.IntN(350)) * time.Millisecond
		var kill <-chan time.Time
		deadline := time.After(15 * time.Second)
	read:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break read
				}
				if line == "ready" {
					kill = time.After(killAfter)
					continue
				}
				if id, found := strings.CutPrefix(line, "ack "); found && len(id) == 64 {
					acked[id] = true
					roundAcks++
				}
			case <-kill:
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				kill = nil
			case <-deadline:
				t.Fatalf("round %d: writer did not start or stop in time; stderr: %s", round, stderr.String())
			}
		}
		readers.Wait()
		err = cmd.Wait()
		exited = true
		require.Error(t, err, "the writer was killed")
		assert.Contains(t, err.Error(), "killed")
		require.Positive(t, roundAcks, "round %d acknowledged nothing; stderr: %s", round, stderr.String())
		t.Logf("round %d: killed after %v, %d acknowledged", round, killAfter, roundAcks)

		ob, err := OpenOutbox(OutboxOptions{Dir: dir, LockTimeout: 5 * time.Second})
		require.NoError(t, err, "reopening after SIGKILL (round %d)", round)
		pending := listAll(t, ob, StatePending)
		stored := make(map[string]bool, len(pending))
		for _, e := range pending {
			stored[e.Event.ID] = true
		}
		remembered := map[string]bool{}
		require.NoError(t, ob.AcceptedSince(time.Time{}, func(id string, _ time.Time) { remembered[id] = true }))
		missing := 0
		for id := range acked {
			if !stored[id] {
				missing++
			}
			assert.True(t, remembered[id], "acknowledged id %s is remembered", id)
		}
		assert.Zero(t, missing, "round %d: acknowledged events lost", round)
		require.NoError(t, ob.Close())
	}
}
