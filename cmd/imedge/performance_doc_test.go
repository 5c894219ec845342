package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/forward"
)

// TestPerformanceDoc keeps docs/performance.md reproducible: the commands
// it gives exist and take the options shown, every benchmark it cites is
// a benchmark of the tree, every scenario of its tables is one
// scripts/bench.sh runs, the goals it lists are the thresholds bench.sh
// prints, and the defaults it explains the figures with are the code's.
func TestPerformanceDoc(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "docs", "performance.md"))
	require.NoError(t, err)
	doc := string(raw)
	benchRaw, err := os.ReadFile(filepath.Join(root, "scripts", "bench.sh"))
	require.NoError(t, err)
	bench := string(benchRaw)

	t.Run("commands", func(t *testing.T) {
		t.Parallel()
		shell, _ := splitFenced(doc)
		opts := newScriptOptions(t)["bench.sh"]
		require.NotEmpty(t, opts)
		var benchRuns, goTests int
		for _, seg := range commandSegments(shell) {
			switch {
			case len(seg) > 0 && seg[0] == "scripts/bench.sh":
				benchRuns++
				for _, name := range flagNames(seg[1:]) {
					assert.Contains(t, opts, name, "`%s`: bench.sh documents no --%s", strings.Join(seg, " "), name)
				}
			case len(seg) > 2 && seg[0] == "go" && seg[1] == "test":
				goTests++
				var pkgs []string
				for _, arg := range seg[2:] {
					if strings.HasPrefix(arg, "./") {
						pkgs = append(pkgs, arg)
					}
				}
				makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
				require.NoError(t, err)
				assert.True(t, strings.Contains(string(makefile), "-bench . -benchmem "+strings.Join(pkgs, " ")+"\n"),
					"make bench runs the benchmarks of the packages the doc names: %v", pkgs)
				for _, arg := range seg[2:] {
					if !strings.HasPrefix(arg, "./") {
						continue
					}
					st, err := os.Stat(filepath.Join(root, arg))
					if assert.NoError(t, err, "`%s`: no package %s", strings.Join(seg, " "), arg) {
						assert.True(t, st.IsDir(), arg)
					}
				}
			}
		}
		assert.GreaterOrEqual(t, benchRuns, 3, "the bench.sh invocations were found")
		assert.Equal(t, 1, goTests, "the go test -bench invocation was found")
	})

	t.Run("benchmarks", func(t *testing.T) {
		t.Parallel()
		defined := map[string]bool{}
		decl := regexp.MustCompile(`(?m)^func (Benchmark\w+)\(`)
		require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range decl.FindAllStringSubmatch(string(b), -1) {
				defined[m[1]] = true
			}
			return nil
		}))
		cited := regexp.MustCompile(`\bBenchmark[A-Za-z0-9_]+`).FindAllString(doc, -1)
		require.NotEmpty(t, cited)
		for _, name := range cited {
			if strings.HasSuffix(name, "_") { // `BenchmarkX`, `_Suffix`: the suffix is checked with its prefix
				continue
			}
			assert.True(t, defined[name], "%s is cited in docs/performance.md but is no benchmark", name)
		}
		assert.True(t, defined["BenchmarkClientLimiter_AllowParallel"], "the `_AllowParallel` shorthand names a real benchmark")
	})

	t.Run("scenarios", func(t *testing.T) {
		t.Parallel()
		row := regexp.MustCompile(`(?m)^(?:decide )?([a-z0-9-]+)\s+(imedge[a-z0-9-]*|nginx[a-z-]*|direct|go-floor)\s+\d`)
		rows := row.FindAllStringSubmatch(doc, -1)
		require.Greater(t, len(rows), 20, "the figure tables were found")
		batched := regexp.MustCompile(`^imedge-b\d+$`)
		for _, m := range rows {
			scenario := regexp.MustCompile(`\b` + regexp.QuoteMeta(m[1]) + `\b`)
			assert.True(t, scenario.MatchString(bench), "scenario %q is not one bench.sh runs", m[1])
			server := batched.ReplaceAllString(m[2], "imedge-b$$BATCH") // named after --forward-batch
			assert.True(t, strings.Contains(bench, server), "server %q is not one bench.sh starts", m[2])
		}
	})

	t.Run("goals", func(t *testing.T) {
		t.Parallel()
		for _, goal := range []struct{ doc, bench string }{
			{"≥ 1.0x nginx", "goal >= 1.0x"},
			{"≤ 2 ms", "goal p99 <= 2 ms"},
			{"p99 ≤ `--decide-timeout` + 50 ms", "goal <= --decide-timeout + 50 ms"},
			{"p99 < 5 ms", "goal < 5 ms"},
		} {
			assert.True(t, strings.Contains(doc, goal.doc), "docs/performance.md lists the goal %q", goal.doc)
			assert.True(t, strings.Contains(bench, goal.bench), "bench.sh prints the goal the doc lists as %q", goal.doc)
		}
	})

	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		assert.Equal(t, "24h0m0s", forward.DefaultRetainDelivered.String(), "the doc says retention is 24 h by default")
		assert.True(t, strings.Contains(doc, "(`--retain-delivered`, 24 h by default)"), "the doc states retention's default")
		assert.True(t, strings.Contains(bench, `--forward-batch "$BATCH" --tls-curves "X25519,P-256,P-384"`), "imedge-b64's flags as the doc gives them")
		assert.True(t, strings.Contains(bench, "TUNED_ENV=(GOGC=400 GOMEMLIMIT=256MiB GOMAXPROCS=1)"), "imedge-b64's environment as the doc gives it")
		assert.True(t, strings.Contains(doc, "`GOGC=400 GOMEMLIMIT=256MiB GOMAXPROCS=1`"), "the doc gives imedge-b64's environment")
	})
}
