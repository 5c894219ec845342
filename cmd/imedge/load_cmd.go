package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/imsim"
)

const loadUsage = `Usage: imedge load --addr HOST:PORT --sdkappid ID [--cert F --key F] [--cacert F]
                   [--mode keepalive|new-conn|resume] [--concurrency N]
                   [--duration D] [--requests N] [--json] [flags]

Simulates Tencent IM's callback client under load: N workers, each with one
request in flight, over keep-alive connections, a new TLS connection per
request (full handshake) or a new connection resuming a TLS session. Prints
throughput, latency percentiles and failures by kind. Exits non-zero when no
callback was answered OK. --command sends another command of the catalog
with its example body (made unique per request with --distinct-bodies);
for a before-callback every answer IM would take counts as OK, and the
answers are counted by decision (allow, deny, rewrite, drop, partial).

`

// loadSummary is the --json output of imedge load.
type loadSummary struct {
	Mode        string           `json:"mode"`
	Concurrency int              `json:"concurrency"`
	ElapsedS    float64          `json:"elapsed_s"`
	Requests    int64            `json:"requests"`
	OK          int64            `json:"ok"`
	Fresh       int64            `json:"fresh"`
	Failed      int64            `json:"failed"`
	PerSecond   float64          `json:"ok_per_s"`
	Errors      map[string]int64 `json:"errors"`
	Decisions   map[string]int64 `json:"decisions,omitempty"`
	Handshakes  int64            `json:"handshakes"`
	Resumed     int64            `json:"resumed"`
	LatencyMS   struct {
		P50  float64 `json:"p50"`
		P90  float64 `json:"p90"`
		P99  float64 `json:"p99"`
		Max  float64 `json:"max"`
		Mean float64 `json:"mean"`
	} `json:"latency_ms"`
}

func summarise(r imsim.Result) loadSummary {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	s := loadSummary{Mode: r.Mode.String(), Concurrency: r.Concurrency, ElapsedS: r.Elapsed.Seconds(),
		Requests: r.Requests, OK: r.OK, Fresh: r.Fresh, Failed: r.Failed(), PerSecond: r.Throughput(),
		Errors: r.Errors, Decisions: r.Decisions, Handshakes: r.Handshakes, Resumed: r.Resumed}
	s.LatencyMS.P50, s.LatencyMS.P90, s.LatencyMS.P99 = ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99)
	s.LatencyMS.Max, s.LatencyMS.Mean = ms(r.Latency.Max), ms(r.Latency.Mean)
	return s
}

func (s loadSummary) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode %s, concurrency %d, %.2fs: %d requests, %d OK (%.1f/s), %d failed\n",
		s.Mode, s.Concurrency, s.ElapsedS, s.Requests, s.OK, s.PerSecond, s.Failed)
	l := s.LatencyMS
	fmt.Fprintf(&b, "latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  mean %.3f\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	fmt.Fprintf(&b, "TLS: %d full handshakes, %d resumed\n", s.Handshakes, s.Resumed)
	for _, k := range slices.Sorted(maps.Keys(s.Decisions)) {
		fmt.Fprintf(&b, "decision %-30s %d\n", k, s.Decisions[k])
	}
	for _, k := range slices.Sorted(maps.Keys(s.Errors)) {
		fmt.Fprintf(&b, "failed %-32s %d\n", k, s.Errors[k])
	}
	return b.String()
}

func runLoad(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imedge load", flag.ContinueOnError)
	var sf simFlags
	sf.register(fs)
	mode := fs.String("mode", "keepalive", "keepalive, new-conn (full TLS handshake per request) or resume (TLS session resumption per request)")
	conc := fs.Int("concurrency", 64, "workers, each with one request in flight (and one connection with keepalive)")
	dur := fs.Duration("duration", 10*time.Second, "stop starting requests after this long (0: no time limit, see --requests)")
	reqs := fs.Int64("requests", 0, "stop after this many requests (0: no limit, see --duration)")
	rate := fs.Float64("rate", 0, "pace the run to at most this many requests per second overall (0: as fast as the workers go)")
	distinct := fs.Bool("distinct-bodies", true, "give every request a new body (false: all requests carry the same body)")
	dups := fs.Float64("duplicates", 0, "share of requests, 0..1, that repeat the worker's previous body (a retried callback)")
	pairs := fs.Int("pairs", 1, "friend pairs per body")
	command := fs.String("command", imsim.CommandFriendDelete, "CallbackCommand to send; another command of the catalog is sent with its example body")
	ips := fs.Int64("distinct-client-ips", 1, "number of distinct ClientIP values, used in turn (10.0.0.1 upwards)")
	runID := fs.String("run-id", "", "prefix of the account ids, so runs do not repeat each other's bodies (default: random)")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if help, err := parseFlags(fs, args, stdout, loadUsage); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("load: unexpected argument %q", fs.Arg(0))
	}
	target, token, err := sf.target(getenv)
	m, merr := imsim.ParseMode(*mode)
	err = errors.Join(err, merr)
	lo := imsim.LoadOptions{
		Target: target, AppID: sf.appID, Token: token, OptPlatform: sf.platform, Mode: m,
		Concurrency: *conc, Duration: *dur, Requests: *reqs, DistinctBodies: *distinct,
		DuplicateRatio: *dups, Pairs: *pairs, ClientIPs: *ips, RunID: *runID, Rate: *rate,
	}
	if *command != imsim.CommandFriendDelete {
		cmd, ok := catalog.New().Lookup(*command)
		if !ok {
			err = errors.Join(err, fmt.Errorf("--command %q: not in the catalog (imedge commands)", *command))
		} else {
			lo.Command, lo.Body, lo.Decisions = cmd.Name, cmd.Example(), cmd.Kind.Decides()
		}
	}
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	res, err := imsim.Load(ctx, lo)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	s := summarise(res)
	if *asJSON {
		b, _ := json.Marshal(s) // cannot fail: plain fields
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		fmt.Fprint(stdout, s.text())
	}
	if res.OK == 0 {
		return errors.New("load: no callback was answered OK")
	}
	return nil
}
