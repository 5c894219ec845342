package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// idleConns is the size of the idle-connection flood, above --max-conns
// (300) of the adversarial imedge.
const idleConns = 2000

// TestAdversarial runs every attack of the adversarial suite, one after
// the other, against one real imedge process (token and client
// certificates required, tight limits), while a legitimate IM client sends
// signed callbacks alongside from another address and must keep being
// served. Each case checks the refusal (TLS failure, or HTTP status and
// FAIL JSON) and its audit record. At the end the audit log is shown to
// stay bounded, and the legitimate client's success ratio is logged.
func TestAdversarial(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("adversarial suite skipped in -short mode")
	}
	a := newArena(t)
	l := startLegit(t, a)
	l.waitOK(t, 5) // a few requests before the attacks

	good := &a.p.client
	floods := map[string]bool{}
	cases := 0
	run := func(name string, flood bool, fn func(t *testing.T)) {
		cases++
		if flood {
			floods[name] = true
		}
		l.setPhase(name)
		t.Run(name, fn)
		l.setPhase("between cases")
	}

	// --- TLS: refused at the handshake, audited with the offered certificate.
	for _, tc := range []struct {
		name, src, reason string
		cert              *tls.Certificate
		version           uint16
	}{
		{"no client certificate", "127.0.0.2", "tls_no_cert", nil, 0},
		{"rogue CA", "127.0.0.3", "tls_unknown_ca", &a.rogue, 0},
		{"expired certificate", "127.0.0.4", "tls_expired", &a.expired, 0},
		{"wrong EKU (server certificate)", "127.0.0.5", "tls_bad_eku", &a.wrongEKU, 0},
		{"revoked certificate", "127.0.0.6", "tls_revoked", &a.revoked, 0},
		{"TLS 1.0 offered", "127.0.0.7", "tls_version", good, tls.VersionTLS10},
		{"TLS 1.1 offered", "127.0.0.8", "tls_version", good, tls.VersionTLS11},
	} {
		run(tc.name, false, func(t *testing.T) {
			cfg := a.tlsConfig(tc.cert)
			if tc.version != 0 {
				cfg.MinVersion, cfg.MaxVersion = tc.version, tc.version
			}
			require.Error(t, a.handshake(tc.src, cfg), "the handshake is refused")
			want := map[string]string{"reason": tc.reason, "remote_ip": tc.src}
			if tc.cert != nil && tc.version == 0 {
				want["cert_serial"] = leafSerial(tc.cert)
			}
			if tc.version != 0 {
				want["tls_version"] = tls.VersionName(tc.version)
			}
			rec := a.waitAudit(t, want)
			assert.NotContains(t, rec, "status", "a handshake refusal has no HTTP status")
		})
	}

	run("source not on --allow-source", false, func(t *testing.T) {
		require.Error(t, a.handshake("127.0.0.200", a.tlsConfig(good)), "closed before the handshake")
		a.waitAudit(t, map[string]string{"reason": "source_denied", "remote_ip": "127.0.0.200"})
	})

	run("connections over --max-conns-per-ip", false, func(t *testing.T) {
		var conns []net.Conn
		for range 70 {
			c, err := dialer("127.0.0.30").Dial("tcp", a.im.addr)
			require.NoError(t, err)
			conns = append(conns, c)
		}
		defer closeAll(conns)
		closed := countClosed(conns, 3*time.Second)
		assert.GreaterOrEqual(t, closed, 6, "at least the 6 over the cap of 64 are closed")
		a.waitAudit(t, map[string]string{"reason": "conn_limit", "remote_ip": "127.0.0.30",
			"detail": "too many connections from this address"})
	})

	run("handshake flood", true, func(t *testing.T) {
		const perSource, workers = 100, 16
		sources := []string{"127.0.0.20", "127.0.0.21", "127.0.0.22", "127.0.0.23"}
		var wg sync.WaitGroup
		jobs := make(chan string)
		refused := make(chan bool, perSource*len(sources))
		for range workers {
			wg.Go(func() {
				for src := range jobs {
					refused <- a.handshake(src, a.tlsConfig(nil)) != nil
				}
			})
		}
		for i := range perSource * len(sources) {
			jobs <- sources[i%len(sources)]
		}
		close(jobs)
		wg.Wait()
		close(refused)
		n := 0
		for r := range refused {
			if r {
				n++
			}
		}
		assert.Equal(t, perSource*len(sources), n, "every handshake without a certificate is refused")
		for _, src := range sources {
			a.waitAudit(t, map[string]string{"reason": "tls_no_cert", "remote_ip": src})
			assert.LessOrEqual(t, a.countAudit(t, map[string]string{"reason": "tls_no_cert", "remote_ip": src}), 5,
				"at most --audit-burst records per source and window")
		}
	})

	run("thousands of idle connections", true, func(t *testing.T) {
		conns := idleFlood(t, a, idleConns, 32)
		defer closeAll(conns)
		// Every idle connection is eventually closed by imedge: evicted at
		// --max-conns or cut at --handshake-timeout.
		closed := countClosed(conns, 6*time.Second)
		assert.Equal(t, len(conns), closed, "imedge closed every idle connection")
		a.waitAudit(t, map[string]string{"reason": "tls_timeout", "remote_ip": "127.0.0.64"})
		a.waitAudit(t, map[string]string{"reason": "conn_limit",
			"detail": "connection limit reached: oldest pending handshake closed"})
	})

	run("slowloris headers", true, func(t *testing.T) {
		var wg sync.WaitGroup
		cut := make(chan time.Duration, 20)
		for range 20 {
			wg.Go(func() {
				tc, err := tls.DialWithDialer(dialer("127.0.0.31"), "tcp", a.im.addr, a.tlsConfig(good, "http/1.1"))
				if err != nil {
					return
				}
				defer tc.Close()
				began := time.Now()
				_, _ = io.WriteString(tc, "POST "+strings.TrimPrefix(a.signedURL("192.0.2.31"), "https://"+a.im.addr)+" HTTP/1.1\r\nHost: x\r\n")
				for range 50 { // at most 15s of dribbling
					if _, err := io.WriteString(tc, "X-A: b\r\n"); err != nil {
						break
					}
					time.Sleep(300 * time.Millisecond) // the attacker's pace
				}
				cut <- time.Since(began)
			})
		}
		wg.Wait()
		close(cut)
		n := 0
		for d := range cut {
			n++
			assert.Less(t, d, 8*time.Second, "cut near --read-header-timeout (1s), not left open")
		}
		assert.Equal(t, 20, n)
		a.waitAudit(t, map[string]string{"reason": "slow_request", "remote_ip": "127.0.0.31"})
	})

	run("slow body", false, func(t *testing.T) {
		tc, err := tls.DialWithDialer(dialer("127.0.0.32"), "tcp", a.im.addr, a.tlsConfig(good, "http/1.1"))
		require.NoError(t, err)
		defer tc.Close()
		began := time.Now()
		_, err = io.WriteString(tc, a.head("192.0.2.32")+"Content-Length: 200\r\n\r\n{\"Callback")
		require.NoError(t, err)
		go func() {
			for range 40 {
				if _, err := io.WriteString(tc, " "); err != nil {
					return
				}
				time.Sleep(500 * time.Millisecond) // the attacker's pace
			}
		}()
		_ = tc.SetReadDeadline(time.Now().Add(15 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		require.NoError(t, err, "the refusal is answered")
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err, "... whole")
		assert.Less(t, time.Since(began), 10*time.Second, "bounded by --read-timeout (3s)")
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.JSONEq(t, failJSON("bad_json"), string(b))
		a.waitAudit(t, map[string]string{"reason": "bad_json", "client_ip": "192.0.2.32", "detail": "body unreadable"})
	})

	run("refusal before the body is sent", false, func(t *testing.T) {
		// The head declares a body over the cap and the client waits for
		// the answer before sending it: the 413 comes at once, not at the
		// read timeout, and says the connection closes.
		began := time.Now()
		resp, body := a.exchange(t, "127.0.0.50", a.head("192.0.2.60")+"Content-Length: 100000\r\n\r\n")
		assert.Less(t, time.Since(began), 2500*time.Millisecond, "answered before --read-timeout (3s)")
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		assert.JSONEq(t, failJSON("body_too_large"), body)
		assert.True(t, resp.Close, "Connection: close")
		a.waitAudit(t, map[string]string{"reason": "body_too_large", "status": "413", "client_ip": "192.0.2.60"})
	})

	run("body over the cap, written whole before reading", false, func(t *testing.T) {
		// A client that reads only after writing its whole body: the
		// server drops the body it will not read after answering (bounded)
		// instead of resetting the connection under the client's write.
		for i := range 3 {
			resp, body, werr := a.writeThenRead(t, "127.0.0.51", fmt.Sprintf("192.0.2.%d", 61+i), 2<<20)
			assert.NoError(t, werr, "try %d: the whole body is written", i)
			assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
			assert.JSONEq(t, failJSON("body_too_large"), body)
		}
	})

	for i, proto := range []string{"--http1.1", "--http2"} {
		run("body over the cap with curl "+proto, false, func(t *testing.T) {
			// curl stops uploading at an error status; a reset racing the
			// answer's body showed in about one try of ten.
			for try := range 5 {
				version, status, body, err := a.curlPost(t, "127.0.0.52", fmt.Sprintf("192.0.2.%d", 65+i), proto, 2<<20)
				require.NoError(t, err, "try %d: curl gets the whole answer", try)
				assert.Equal(t, strings.TrimPrefix(proto, "--http"), version)
				assert.Equal(t, http.StatusRequestEntityTooLarge, status)
				assert.JSONEq(t, failJSON("body_too_large"), body)
			}
		})
	}

	// Refusals the HTTP server makes itself are audited with the status
	// it answered.
	for _, tc := range []struct {
		name, src, head string
		status          int
	}{
		{"unknown transfer coding", "127.0.0.53", "Transfer-Encoding: gzip\r\n\r\n", http.StatusNotImplemented},
		{"unknown expectation", "127.0.0.54", "Expect: 101-custom\r\nContent-Length: 2\r\n\r\n{}", http.StatusExpectationFailed},
	} {
		run(tc.name, false, func(t *testing.T) {
			resp, _ := a.exchange(t, tc.src, a.head("192.0.2.99")+tc.head)
			assert.Equal(t, tc.status, resp.StatusCode)
			a.waitAudit(t, map[string]string{"reason": "bad_request", "status": strconv.Itoa(tc.status), "remote_ip": tc.src})
		})
	}

	run("stalled keep-alive request head", false, func(t *testing.T) {
		// One callback, then the next request's head arrives in one write
		// and never completes: cut at --read-header-timeout, audited.
		tc, err := tls.DialWithDialer(dialer("127.0.0.55"), "tcp", a.im.addr, a.tlsConfig(good, "http/1.1"))
		require.NoError(t, err)
		defer tc.Close()
		b := friendDeleteBody("stall", "friend")
		_, err = io.WriteString(tc, a.head("192.0.2.55")+"Content-Type: application/json\r\nContent-Length: "+
			strconv.Itoa(len(b))+"\r\n\r\n"+b)
		require.NoError(t, err)
		_ = tc.SetReadDeadline(time.Now().Add(15 * time.Second))
		br := bufio.NewReader(tc)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		_, err = io.WriteString(tc, a.head("192.0.2.56"))
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, br)
		assert.False(t, isTimeout(err), "closed by imedge, not left open: %v", err)
		a.waitAudit(t, map[string]string{"reason": "slow_request", "remote_ip": "127.0.0.55"})
	})

	// --- HTTP: refused with the documented status and FAIL JSON.
	body := friendDeleteBody("attacker", "victim")
	for _, tc := range []struct {
		name, src, clientIP, method, url, body, reason string
		status                                         int
		hdr                                            []string
	}{
		{name: "wrong method GET", src: "127.0.0.36", method: http.MethodGet, status: 405, reason: "bad_method"},
		{name: "wrong method PUT", src: "127.0.0.37", method: http.MethodPut, status: 405, reason: "bad_method"},
		{name: "wrong path", src: "127.0.0.38", url: "/admin", status: 404, reason: "bad_path"},
		{name: "malformed JSON", clientIP: "192.0.2.41", body: `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[`, status: 400, reason: "bad_json"},
		{name: "deeply nested JSON", clientIP: "192.0.2.42",
			body:   `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `]}`,
			status: 400, reason: "bad_json"},
		{name: "PairList of non-objects", clientIP: "192.0.2.44", body: `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[1,"x",null]}`,
			status: 400, reason: "bad_pairlist"},
		{name: "invalid UTF-8 in an account", clientIP: "192.0.2.45", body: friendDeleteBody("\xff\xfe", "b"), status: 400, reason: "bad_account"},
		{name: "invalid UTF-8 elsewhere", clientIP: "192.0.2.52",
			body:   `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[],"Extra":"\xc3\x28"}`,
			status: 400, reason: "bad_json"},
		{name: "duplicate JSON keys", clientIP: "192.0.2.46",
			body:   `{"CallbackCommand":"Sns.CallbackFriendDelete","CallbackCommand":"Sns.CallbackFriendDelete","PairList":[]}`,
			status: 400, reason: "bad_json"},
		{name: "query smuggling: repeated SdkAppid", clientIP: "192.0.2.47", url: "&SdkAppid=1400009999", status: 400, reason: "bad_query"},
		{name: "stale Sign", clientIP: "192.0.2.48", url: "stale", status: 401, reason: "stale_sign"},
		{name: "forged Sign", clientIP: "192.0.2.49", url: "forged", status: 401, reason: "bad_sign"},
		{name: "missing Sign", clientIP: "192.0.2.50", url: "unsigned", status: 401, reason: "missing_sign"},
	} {
		run(tc.name, false, func(t *testing.T) {
			src, method, b := tc.src, tc.method, tc.body
			if src == "" {
				src = "127.0.0.39"
			}
			if method == "" {
				method = http.MethodPost
			}
			if b == "" {
				b = body
			}
			clientIP := tc.clientIP
			if clientIP == "" {
				clientIP = "192.0.2.99"
			}
			url := a.signedURL(clientIP)
			now := time.Now().Unix()
			switch {
			case tc.url == "stale":
				url = callbackURL(a.im.addr, clientIP) + signQuery(advToken, time.Unix(now-600, 0))
			case tc.url == "forged":
				url = callbackURL(a.im.addr, clientIP) + "&Sign=" + strings.Repeat("ab", 32) + "&RequestTime=" + strconv.FormatInt(now, 10)
			case tc.url == "unsigned":
				url = callbackURL(a.im.addr, clientIP)
			case strings.HasPrefix(tc.url, "&"):
				url += tc.url
			case strings.HasPrefix(tc.url, "/"):
				url = strings.Replace(url, a.im.addr+"/", a.im.addr+tc.url, 1)
			}
			r := a.post(t, src, method, url, b, tc.hdr...)
			assert.Equal(t, tc.status, r.status)
			assert.JSONEq(t, failJSON(tc.reason), r.body)
			want := map[string]string{"reason": tc.reason, "status": strconv.Itoa(tc.status)}
			if tc.src != "" {
				want["remote_ip"] = src
			} else {
				want["client_ip"] = clientIP
			}
			rec := a.waitAudit(t, want)
			assert.NotContains(t, rec, "body", "bodies are never audited")
		})
	}

	// Bodies over the cap: imedge answers 413 without reading the rest and
	// closes, so the attacker writes from its own goroutine (a client that
	// stops at the first write error may miss the answer).
	for _, tc := range []struct {
		name, clientIP, head string
		body                 func(w io.Writer)
	}{
		{"oversized body (Content-Length)", "192.0.2.34", "Content-Length: 1048576\r\n", func(w io.Writer) {
			_, _ = io.WriteString(w, friendDeleteBody(strings.Repeat("a", 1<<20), "b")[:1<<20])
		}},
		{"huge PairList over the body cap", "192.0.2.43", "Content-Length: " + strconv.Itoa(len(pairList(3000))) + "\r\n",
			func(w io.Writer) { _, _ = io.WriteString(w, pairList(3000)) }},
		{"chunked body over the cap", "192.0.2.35", "Transfer-Encoding: chunked\r\n", func(w io.Writer) {
			chunk := strings.Repeat(`{"From_Account":"a","To_Account":"b"},`, 100)
			for range 30 {
				if _, err := fmt.Fprintf(w, "%x\r\n%s\r\n", len(chunk), chunk); err != nil {
					return
				}
			}
			_, _ = io.WriteString(w, "0\r\n\r\n")
		}},
	} {
		run(tc.name, false, func(t *testing.T) {
			r := a.rawPost(t, "127.0.0.34", a.signedURL(tc.clientIP), tc.head, tc.body)
			assert.Equal(t, http.StatusRequestEntityTooLarge, r.status)
			assert.JSONEq(t, failJSON("body_too_large"), r.body)
			a.waitAudit(t, map[string]string{"reason": "body_too_large", "status": "413", "client_ip": tc.clientIP})
		})
	}

	run("oversized headers", false, func(t *testing.T) {
		// net/http refuses a header block over --max-header-bytes itself
		// (431, plain text, before any handler); edge audits it.
		r := a.post(t, "127.0.0.33", http.MethodPost, a.signedURL("192.0.2.33"), body, "X-Pad", strings.Repeat("a", 32<<10))
		assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, r.status)
		a.waitAudit(t, map[string]string{"reason": "bad_request", "status": "431", "remote_ip": "127.0.0.33"})
	})

	run("replayed callback within the Sign window", false, func(t *testing.T) {
		// Sign covers RequestTime only: a captured callback replayed
		// identically (by a holder of a client certificate) is answered OK
		// and forwarded once, through the dedupe window.
		url, b := a.signedURL("192.0.2.51"), friendDeleteBody("replay-from", "replay-to")
		admin := "http://" + a.im.adminAddr(t)
		dups := metric(scrapeMetrics(t, admin), "imedge_requests_total", "outcome", "duplicate")
		for range 3 {
			r := a.post(t, "127.0.0.39", http.MethodPost, url, b)
			assert.Equal(t, http.StatusOK, r.status)
		}
		assert.GreaterOrEqual(t, metric(scrapeMetrics(t, admin), "imedge_requests_total", "outcome", "duplicate"), dups+2,
			"both replays were answered as duplicates, so neither entered the outbox")
		require.Eventually(t, func() bool { return a.sink.deliveries(b) >= 1 }, 10*time.Second, 20*time.Millisecond, "the event is delivered")
		assert.Equal(t, 1, a.sink.deliveries(b), "forwarded once")
	})

	run("HTTP/2 rapid reset", true, func(t *testing.T) {
		res := rapidReset(t, a, "127.0.0.40", "192.0.2.40", 3000)
		t.Logf("rapid reset: %d HEADERS+RST_STREAM sent, %d responses, %d server resets, GOAWAY %q after %s",
			res.sent, res.responses, res.resets, res.goAway, res.took)
		assert.True(t, res.goAway != "" || res.sent == 3000, "the attacker is either stopped with GOAWAY or absorbed")
		// Handlers that started before their stream's reset refuse the
		// unreadable body; those records stay within --audit-burst.
		a.waitAudit(t, map[string]string{"client_ip": "192.0.2.40"})
		assert.LessOrEqual(t, a.countAudit(t, map[string]string{"client_ip": "192.0.2.40"}), 5*3,
			"the resets' refusals stay within --audit-burst per reason")
	})

	l.setPhase("after the attacks")
	l.waitOK(t, 5)
	l.halt()

	// The audit log stays bounded: thousands of refusals, few lines; the
	// rest is counted in summaries written at shutdown.
	a.im.stop(t)
	recs := auditRecords(t, a.auditLog)
	summaries := map[string]float64{}
	refusals := 0.0
	for _, r := range recs {
		if r["msg"] == "audit summary" {
			summaries[fmt.Sprint(r["reason"], " ", r["key"])] += r["suppressed"].(float64)
			refusals += r["suppressed"].(float64)
		} else {
			refusals++
		}
	}
	for _, src := range []string{"127.0.0.20", "127.0.0.21", "127.0.0.22", "127.0.0.23"} {
		assert.Equal(t, float64(95), summaries["tls_no_cert "+src], "100 refusals from %s: 5 records and a summary of 95", src)
	}
	assert.Less(t, len(recs), 700, "audit lines stay bounded (got %d)", len(recs))

	table, total := l.report()
	var fl phaseStats
	for name := range floods {
		st := l.snapshot(name)
		fl.sent += st.sent
		fl.ok += st.ok
		assert.Positive(t, st.sent, "the legitimate client sent during %s", name)
	}
	t.Logf("adversarial suite: %d cases; %.0f refusals audited in %d lines\nlegitimate client per phase:\n%s"+
		"legitimate client during floods: %d/%d ok (%.1f%%); overall %d/%d ok (%.1f%%)\nfirst failures: %v",
		cases, refusals, len(recs), table, fl.ok, fl.sent, pct(fl), total.ok, total.sent, pct(total), l.fails)
	assert.GreaterOrEqual(t, pct(fl), 90.0, "the legitimate client keeps being served during floods")
	assert.GreaterOrEqual(t, pct(total), 95.0, "the legitimate client keeps being served")
}

func pct(s phaseStats) float64 {
	if s.sent == 0 {
		return 0
	}
	return 100 * float64(s.ok) / float64(s.sent)
}

func pairList(n int) string {
	var b strings.Builder
	b.WriteString(`{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"From_Account":"user%05d","To_Account":"friend%05d"}`, i, i)
	}
	b.WriteString("]}")
	return b.String()
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// countClosed reads every connection until d passes and counts those the
// server closed.
func countClosed(conns []net.Conn, d time.Duration) int {
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := 0
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(deadline)
			_, err := io.Copy(io.Discard, c)
			if err == nil || !isTimeout(err) {
				mu.Lock()
				n++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return n
}

// idleFlood opens n TCP connections that never send a byte, from
// `sources` loopback addresses starting at 127.0.0.64, and samples the
// imedge process's open descriptors meanwhile.
func idleFlood(t *testing.T, a *arena, n, sources int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range jobs {
				c, err := dialer(fmt.Sprintf("127.0.0.%d", 64+i%sources)).Dial("tcp", a.im.addr)
				if err != nil {
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	maxFDs := 0
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", a.im.cmd.Process.Pid)); err == nil && len(entries) > maxFDs {
				maxFDs = len(entries)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	time.Sleep(time.Second) // the flood stays connected for a second of descriptor samples
	close(stopSampling)
	<-sampled
	require.Greater(t, len(conns), n*9/10, "the flood connected")
	t.Logf("idle flood: %d connections opened; imedge held at most %d descriptors (--max-conns 300)", len(conns), maxFDs)
	if maxFDs > 0 {
		assert.Less(t, maxFDs, 300+100, "open connections stay bounded by --max-conns")
	}
	return conns
}

// rapidResetResult is what the HTTP/2 rapid-reset attacker saw.
type rapidResetResult struct {
	sent, responses, resets int
	goAway                  string
	took                    time.Duration
}

// rapidReset opens an HTTP/2 connection with a valid client certificate and
// sends n HEADERS frames, each followed at once by RST_STREAM (CVE-2023-44487).
func rapidReset(t *testing.T, a *arena, src, clientIP string, n int) rapidResetResult {
	t.Helper()
	tc, err := tls.DialWithDialer(dialer(src), "tcp", a.im.addr, a.tlsConfig(&a.p.client, "h2"))
	require.NoError(t, err)
	defer tc.Close()
	require.Equal(t, "h2", tc.ConnectionState().NegotiatedProtocol)
	_, err = io.WriteString(tc, http2.ClientPreface)
	require.NoError(t, err)

	var wmu sync.Mutex
	fr := http2.NewFramer(tc, tc)
	write := func(f func() error) error {
		wmu.Lock()
		defer wmu.Unlock()
		return f()
	}
	require.NoError(t, write(func() error { return fr.WriteSettings() }))

	var res rapidResetResult
	var rmu sync.Mutex
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			rmu.Lock()
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = write(func() error { return fr.WriteSettingsAck() })
				}
			case *http2.HeadersFrame:
				res.responses++
			case *http2.RSTStreamFrame:
				res.resets++
			case *http2.GoAwayFrame:
				res.goAway = f.ErrCode.String()
			}
			rmu.Unlock()
		}
	}()

	path := strings.TrimPrefix(a.signedURL(clientIP), "https://"+a.im.addr)
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	began := time.Now()
	for i := range n {
		id := uint32(2*i + 1)
		hbuf.Reset()
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", a.im.addr},
			{":path", path}, {"content-type", "application/json"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		err := write(func() error {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndHeaders: true}); err != nil {
				return err
			}
			return fr.WriteRSTStream(id, http2.ErrCodeCancel)
		})
		if err != nil {
			break
		}
		res.sent++
	}
	_ = tc.SetReadDeadline(time.Now().Add(2 * time.Second))
	<-readDone
	res.took = time.Since(began)
	rmu.Lock()
	defer rmu.Unlock()
	return res
}
