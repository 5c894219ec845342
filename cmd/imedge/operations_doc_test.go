package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/admin"
	"github.com/imedge/imedge/internal/testkit"
)

const operationsPath = "../../docs/operations.md"

// TestOperationsDoc keeps docs/operations.md, the operator's runbook, true
// to the code: every imedge command it shows exists and takes the flags
// given to it; every script it names exists and documents the options
// given to it; every flag and config key it mentions exists; its table of
// settings SIGHUP applies is runtimeSetting's; the alerts and metrics it
// names are the ones deploy/prometheus and the admin listener have; and
// its relative links and their anchors resolve.
func TestOperationsDoc(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(operationsPath)
	require.NoError(t, err)
	doc := string(raw)
	shell, prose := splitFenced(doc)
	spans := inlineCode(prose)
	segments := commandSegments(append(shell, spans...))

	help := newHelpFlags(t)
	scripts := newScriptOptions(t)

	t.Run("commands", func(t *testing.T) {
		t.Parallel()
		n := 0
		for _, seg := range segments {
			path, args, ok := imedgeInvocation(seg)
			if !ok {
				continue
			}
			n++
			flags, err := help.of(t, path)
			if !assert.NoError(t, err, "`%s`: imedge %s is not a command", strings.Join(seg, " "), strings.Join(path, " ")) {
				continue
			}
			for _, name := range flagNames(args) {
				assert.Contains(t, flags, name, "`%s`: imedge %s takes no --%s", strings.Join(seg, " "), strings.Join(path, " "), name)
			}
		}
		assert.Greater(t, n, 20, "the doc's imedge command lines were found")
	})

	t.Run("scripts", func(t *testing.T) {
		t.Parallel()
		named := regexp.MustCompile(`scripts/[A-Za-z0-9_.-]+\.sh`).FindAllString(doc, -1)
		require.NotEmpty(t, named)
		for _, s := range named {
			_, err := os.Stat(filepath.Join(repoRoot(t), s))
			assert.NoError(t, err, "%s is named in docs/operations.md", s)
		}
		for _, seg := range segments {
			for i, tok := range seg {
				if !strings.HasPrefix(tok, "scripts/") || !strings.HasSuffix(tok, ".sh") {
					continue
				}
				opts, ok := scripts[filepath.Base(tok)]
				if !assert.True(t, ok, "%s is a script of scripts/", tok) {
					continue
				}
				for _, name := range flagNames(seg[i+1:]) {
					assert.Contains(t, opts, name, "`%s`: %s documents no --%s", strings.Join(seg, " "), tok, name)
				}
			}
		}
	})

	t.Run("flags and keys", func(t *testing.T) {
		t.Parallel()
		known := help.all()
		for _, opts := range scripts {
			for name := range opts {
				known[name] = true
			}
		}
		serve := map[string]bool{}
		fs, _ := newServeFlags()
		fs.VisitAll(func(f *flag.Flag) { serve[f.Name] = true })
		key := regexp.MustCompile(`^([a-z][a-z0-9-]*): `)
		for _, span := range spans {
			if strings.HasPrefix(span, "--") {
				for _, name := range flagNames(strings.Fields(span)) {
					assert.True(t, known[name], "`%s`: no imedge command or script has --%s", span, name)
				}
			}
			if m := key.FindStringSubmatch(span); m != nil {
				assert.True(t, serve[m[1]], "`%s`: %q is not a configuration key (a serve flag)", span, m[1])
			}
		}
	})

	t.Run("SIGHUP settings", func(t *testing.T) {
		t.Parallel()
		section := testkit.MarkdownSection(t, doc, "### SIGHUP")
		var listed []string
		for _, line := range strings.Split(section, "\n") {
			if !strings.HasPrefix(line, "| `") {
				continue
			}
			cell, _, _ := strings.Cut(strings.TrimPrefix(line, "|"), "|")
			listed = append(listed, inlineCode(cell)...)
		}
		slices.Sort(listed)
		assert.Equal(t, runtimeSettings(), listed, "the SIGHUP table lists exactly the settings runtimeSetting applies")
	})

	t.Run("alerts and metrics", func(t *testing.T) {
		t.Parallel()
		rules, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "prometheus", "imedge.rules.yml"))
		require.NoError(t, err)
		var alerts []string
		for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllStringSubmatch(string(rules), -1) {
			alerts = append(alerts, m[1])
		}
		named := regexp.MustCompile(`\bImedge[A-Z][A-Za-z]+\b`).FindAllString(doc, -1)
		require.NotEmpty(t, named)
		for _, a := range named {
			assert.Contains(t, alerts, a, "alert %s is in deploy/prometheus/imedge.rules.yml", a)
		}
		exported := admin.MetricNames()
		for _, m := range regexp.MustCompile(`\bimedge_[a-z][a-z0-9_]*\b`).FindAllString(doc, -1) {
			assert.Contains(t, exported, m, "metric %s is exported", m)
		}
	})

	t.Run("links", func(t *testing.T) {
		t.Parallel()
		for _, m := range regexp.MustCompile(`\]\(([^)\s]+)\)`).FindAllStringSubmatch(prose, -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			text := doc
			if file != "" {
				path := filepath.Join(filepath.Dir(operationsPath), file)
				fi, err := os.Stat(path)
				if !assert.NoError(t, err, "link %s", target) || fi.IsDir() {
					continue
				}
				b, err := os.ReadFile(path)
				require.NoError(t, err)
				text = string(b)
			}
			if anchor != "" {
				assert.Contains(t, headingAnchors(text), anchor, "link %s: no such heading", target)
			}
		}
	})
}

// splitFenced returns the contents of doc's shell code blocks (fenced
// with ```sh), and doc without any fenced block.
func splitFenced(doc string) (shell []string, rest string) {
	var b, r strings.Builder
	in, isShell := false, false
	for _, line := range strings.SplitAfter(doc, "\n") {
		if fence := strings.TrimSpace(line); strings.HasPrefix(fence, "```") {
			if in && isShell {
				shell = append(shell, b.String())
			}
			b.Reset()
			in, isShell = !in, fence == "```sh"
			continue
		}
		if in {
			b.WriteString(line)
		} else {
			r.WriteString(line)
		}
	}
	return shell, r.String()
}

// inlineCode returns the code spans of Markdown text, with a table's
// escaped pipes unescaped.
func inlineCode(text string) []string {
	var out []string
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(text, -1) {
		out = append(out, strings.ReplaceAll(m[1], `\|`, "|"))
	}
	return out
}

// commandSegments splits code into simple commands, as word lists: lines
// (continuations joined), then at pipes, command lists and substitutions;
// shell comments are dropped.
func commandSegments(code []string) [][]string {
	comment := regexp.MustCompile(`(^|\s)#.*$`)
	sep := regexp.MustCompile(`\|\||&&|[|;()]|\$\(`)
	var out [][]string
	for _, c := range code {
		c = strings.ReplaceAll(c, "\\\n", " ")
		for _, line := range strings.Split(c, "\n") {
			line = comment.ReplaceAllString(line, "")
			for _, part := range sep.Split(line, -1) {
				if f := strings.Fields(part); len(f) > 0 {
					out = append(out, f)
				}
			}
		}
	}
	return out
}

// imedgeInvocation finds an imedge command line in seg: the command path
// (a command, and the subcommand of certs and outbox) and the words after
// it. `sudo -u imedge imedge ...` names the user first.
func imedgeInvocation(seg []string) (path, args []string, ok bool) {
	isImedge := func(s string) bool { return s == "imedge" || strings.HasSuffix(s, "/imedge") }
	word := regexp.MustCompile(`^[a-z][a-z-]*$`)
	for i := 0; i+1 < len(seg); i++ {
		if !isImedge(seg[i]) || isImedge(seg[i+1]) || !word.MatchString(seg[i+1]) {
			continue
		}
		path, args = []string{seg[i+1]}, seg[i+2:]
		if (path[0] == "certs" || path[0] == "outbox") && len(args) > 0 && word.MatchString(args[0]) {
			path, args = append(path, args[0]), args[1:]
		}
		return path, args, true
	}
	return nil, nil, false
}

// flagNames returns the names of the --flags among words.
func flagNames(words []string) []string {
	var out []string
	for _, w := range words {
		if !strings.HasPrefix(w, "--") || w == "--" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(w, "--"), "=")
		out = append(out, strings.TrimRight(name, ".,;:"))
	}
	return out
}

// helpFlags answers which flags an imedge command takes, from its --help
// (and, for the commands that take serve's flags, from newServeFlags).
// It is safe for concurrent use.
type helpFlags struct {
	mu   sync.Mutex
	seen map[string]map[string]bool // command path -> its flags
}

func newHelpFlags(t *testing.T) *helpFlags {
	h := &helpFlags{seen: map[string]map[string]bool{}}
	for _, p := range [][]string{
		{"serve"}, {"check-config"}, {"commands"}, {"send"}, {"load"}, {"version"},
		{"certs", "ca"}, {"certs", "issue"}, {"certs", "inspect"}, {"certs", "check"}, {"certs", "crl"}, {"certs", "status"},
	} {
		_, err := h.of(t, p)
		require.NoError(t, err)
	}
	for _, sub := range outboxSubcommands() {
		_, err := h.of(t, []string{"outbox", sub})
		require.NoError(t, err)
	}
	return h
}

// of returns the flags of the command at path; an error when it is not a
// command.
func (h *helpFlags) of(t *testing.T, path []string) (map[string]bool, error) {
	key := strings.Join(path, " ")
	h.mu.Lock()
	f, ok := h.seen[key]
	h.mu.Unlock()
	if ok {
		return f, nil
	}
	stdout, _, err := runCLI(t, append(slices.Clone(path), "--help")...)
	if err != nil {
		return nil, err
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--?([a-z][a-z0-9-]*)`).FindAllStringSubmatch(stdout, -1) {
		flags[m[1]] = true
	}
	switch path[0] {
	case "serve", "check-config", "commands":
		fs, _ := newServeFlags()
		fs.VisitAll(func(f *flag.Flag) { flags[f.Name] = true })
	}
	h.mu.Lock()
	h.seen[key] = flags
	h.mu.Unlock()
	return flags, nil
}

// all returns every flag of every command seen.
func (h *helpFlags) all() map[string]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]bool{}
	for _, f := range h.seen {
		for name := range f {
			out[name] = true
		}
	}
	return out
}

// newScriptOptions reads the options each scripts/*.sh documents in its
// header (the usage its --help prints).
func newScriptOptions(t *testing.T) map[string]map[string]bool {
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "scripts", "*.sh"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	opt := regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	out := map[string]map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		header, _, _ := strings.Cut(string(b), "\nset -")
		opts := map[string]bool{}
		for _, m := range opt.FindAllStringSubmatch(header, -1) {
			opts[m[1]] = true
		}
		out[filepath.Base(f)] = opts
	}
	return out
}

// headingAnchors returns the GitHub anchors of text's headings (outside
// fenced code).
func headingAnchors(text string) []string {
	_, prose := splitFenced(text)
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^#{1,6} (.+)$`).FindAllStringSubmatch(prose, -1) {
		a := strings.ToLower(strings.TrimSpace(m[1]))
		a = drop.ReplaceAllString(a, "")
		out = append(out, strings.ReplaceAll(a, " ", "-"))
	}
	return out
}
