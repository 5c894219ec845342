package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/imedge/imedge"

// allowedDeps lists, per package of ours, which packages of ours it may
// import. The dependency direction of the style guide: tlsconf and receiver
// meet only in cmd; audit and certs are leaves, and dedupe imports only
// internal/lrutable (the pointer-free LRU table it shares with receiver).
var allowedDeps = map[string][]string{
	"":                             {}, // the module root: the embedded VERSION file; imports nothing
	"cmd/imedge":                   {"", "catalog", "tlsconf", "receiver", "forward", "dedupe", "audit", "certs", "admin", "edge", "sandbox", "imsim", "redisstate", "egress", "decide"},
	"admin":                        {"tlsconf", "receiver", "forward", "dedupe", "audit", "egress", "decide", "certs"}, // reads their Stats; imported only by cmd
	"tlsconf":                      {"certs", "audit"},
	"receiver":                     {"catalog", "certs", "audit", "internal/lrutable"},
	"catalog":                      {"audit"},                                            // the command table as data; imported by receiver (and decide)
	"decide":                       {"catalog", "receiver", "forward", "audit", "certs"}, // the decision path; implements receiver.Decider, signs with forward.Sign
	"forward":                      {"certs", "audit", "internal/uring", "forward/internal/journal", "forward/internal/store", "forward/internal/groupcommit"},
	"forward/internal/groupcommit": {},                               // group commit for the journal and bbolt transactions
	"forward/internal/journal":     {"internal/uring"},               // the outbox's write-ahead file
	"forward/internal/store":       {"forward/internal/groupcommit"}, // the outbox's bbolt file: format, codecs, queries
	"edge":                         {"audit", "certs"},               // connection-level defences before net/http; never egress (cmd hands it the list)
	"egress":                       {},                               // IM's callback egress list (GetIPList + UserSig); imports nothing of ours
	"sandbox":                      {},                               // Landlock; imported only by cmd
	"imsim":                        {},                               // IM's callback client, simulated (imedge send/load); imports nothing of ours
	"redisstate":                   {"receiver"},                     // shared dedupe and limits on Redis; imported only by cmd
	"dedupe":                       {"internal/lrutable"},
	"audit":                        {},
	"certs":                        {},
	"certs/certstest":              {"certs"},
	"internal/testkit":             {},
	"internal/benchsink":           {}, // the counting sink of scripts/bench.sh; not in the shipped binary
	"internal/lrutable":            {},
	"internal/uring":               {}, // fdatasync through io_uring, for forward's journal
	"scripts":                      {}, // bash scripts; its Go files are tests that run them
}

// restrictedThirdParty names third-party import prefixes that only the
// listed packages of ours may use.
var restrictedThirdParty = map[string][]string{
	"github.com/caddyserver/certmagic": {"tlsconf"},
	"go.uber.org/zap":                  {"tlsconf"},
	"golang.org/x/time/rate":           {"receiver"},
	"go.etcd.io/bbolt":                 {"forward/internal/store"},
	"github.com/landlock-lsm/":         {"sandbox"},
	"github.com/prometheus/":           {"admin"},
	"github.com/redis/go-redis/":       {"redisstate"},
	"github.com/pires/go-proxyproto":   {"edge"},
}

func TestDeps_ImportDirection(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		allowed, known := allowedDeps[pkg]
		if !assert.True(t, known, "package %s is not in the allow-table of deps_test.go; add it with its allowed imports", pkg) {
			continue
		}
		seen++
		for _, imp := range fields[1:] {
			rest, ok := strings.CutPrefix(imp, module+"/")
			if imp == module {
				rest, ok = "", true // the module root (VERSION)
			}
			if ok {
				assert.Contains(t, allowed, rest, "%s must not import %s", pkg, rest)
				continue
			}
			for prefix, owners := range restrictedThirdParty {
				if strings.HasPrefix(imp, prefix) {
					assert.Contains(t, owners, pkg, "only %v may import %s, not %s", owners, prefix, pkg)
				}
			}
		}
	}
	assert.GreaterOrEqual(t, seen, len(allowedDeps)-1, "go list saw the packages")
}
