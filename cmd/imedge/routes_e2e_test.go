package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/catalog"
)

// commandURL is the callback URL IM uses for cmd: ClientIP and OptPlatform
// only where the command carries them.
func commandURL(addr string, cmd *catalog.Command, clientIP string) string {
	q := url.Values{"SdkAppid": {appID}, "CallbackCommand": {cmd.Name}, "contenttype": {"json"}}
	if cmd.ClientIP {
		q.Set("ClientIP", clientIP)
	}
	if cmd.OptPlatform {
		q.Set("OptPlatform", "iOS")
	}
	return "https://" + addr + "/?" + q.Encode()
}

// bodiesOf returns every body s received, as strings.
func (s *sink) bodiesOf() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for _, bs := range s.bodies {
		for _, b := range bs {
			out[string(b)] = true
		}
	}
	return out
}

// Every after-callback of the catalog is accepted and arrives byte for
// byte at its route's internal service: Group.* and C2C.* at their own,
// everything else at --forward-url; the headers name the command.
func TestRoutes_E2E_EveryCommandReachesItsRoute(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	groups, c2c, rest := newSink(t), newSink(t), newSink(t)
	dir := t.TempDir()
	im := start(t, append(baseArgs(p, rest.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
		"--route", "Group.*="+groups.srv.URL, "--route", "C2C.*="+c2c.srv.URL, "--rate", "0")...)
	c := p.httpsClient()
	want := map[*sink]map[string]bool{groups: {}, c2c: {}, rest: {}}
	for _, cmd := range catalog.New().Commands() {
		if cmd.Kind != catalog.After {
			continue
		}
		body := string(cmd.Example())
		code := postCallback(t, c, commandURL(im.addr, &cmd, "198.51.100.1"), body)
		require.Equal(t, http.StatusOK, code, "%s accepted", cmd.Name)
		dst := rest
		switch cmd.Family {
		case "Group":
			dst = groups
		case "C2C":
			dst = c2c
		}
		want[dst][body] = true
	}
	require.Eventually(t, func() bool {
		return len(groups.bodiesOf()) == len(want[groups]) && len(c2c.bodiesOf()) == len(want[c2c]) && len(rest.bodiesOf()) == len(want[rest])
	}, 20*time.Second, 50*time.Millisecond, "every event reaches a destination")
	for s, bodies := range want {
		assert.Equal(t, bodies, s.bodiesOf(), "byte for byte, at the right route")
	}
	for id, h := range groups.hdrs {
		assert.True(t, strings.HasPrefix(h.Get("X-Imedge-Command"), "Group."), "event %s of %s", id, h.Get("X-Imedge-Command"))
	}
	status := adminStatusRaw(t, im)
	var dests []string
	for _, d := range status["delivery"].([]any) {
		dests = append(dests, d.(map[string]any)["destination"].(string))
	}
	assert.ElementsMatch(t, []string{"default", "Group.*", "C2C.*"}, dests, "/status names each destination")
	im.stop(t)
}

// One route's service stopped does not hold up another's: its events wait
// (and, once its share of the outbox is full, only its commands are
// refused 503), the other route's events keep arriving; when the service
// comes back, its events arrive.
func TestRoutes_E2E_ADownRouteHoldsUpNoOther(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	c2c, rest := newSink(t), newSink(t)
	// The Group.* service: stopped, then started again on the same address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	dir := t.TempDir()
	im := start(t, append(baseArgs(p, rest.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
		"--route", "Group.*=http://"+addr, "--route", "C2C.*="+c2c.srv.URL, "--rate", "0",
		"--outbox-max-events", "60")...) // three destinations: 20 events each
	c := p.httpsClient()
	cat := catalog.New()
	group, _ := cat.Lookup("Group.CallbackAfterGroupInfoChanged")
	send, _ := cat.Lookup("C2C.CallbackAfterSendMsg")
	body := func(cmd *catalog.Command, i int) string {
		// A distinct body per event (dedupe is by body): an extra field.
		b := string(cmd.Example())
		return b[:len(b)-1] + fmt.Sprintf(`,"Seq_Test":%d}`, i)
	}

	accepted, refused := 0, 0
	for i := range 25 {
		switch code := postCallback(t, c, commandURL(im.addr, group, "198.51.100.2"), body(group, i)); code {
		case http.StatusOK:
			accepted++
		case http.StatusServiceUnavailable:
			refused++
		default:
			t.Fatalf("Group event %d: status %d", i, code)
		}
		if i < 15 { // fewer than C2C's share, whatever its service has taken yet
			require.Equal(t, http.StatusOK, postCallback(t, c, commandURL(im.addr, send, "198.51.100.3"), body(send, i)),
				"C2C events are accepted while Group's share is full")
		}
	}
	assert.Equal(t, 20, accepted, "Group's share of the outbox: 20 events")
	assert.Equal(t, 5, refused, "then only Group's commands are refused")
	require.Eventually(t, func() bool { return c2c.count() == 15 }, 20*time.Second, 20*time.Millisecond,
		"C2C events arrive while the Group service is down")
	recs := auditRecords(t, filepath.Join(dir, "audit.log"))
	full := 0
	for _, r := range recs {
		if r["reason"] == "outbox_full" {
			assert.Equal(t, group.Name, r["command"])
			full++
		}
	}
	assert.Equal(t, 5, full, "each refusal audited")

	// The Group service comes back: its waiting events arrive.
	back, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	groups := newSinkOn(t, back)
	require.Eventually(t, func() bool { return groups.count() == 20 }, 30*time.Second, 50*time.Millisecond,
		"the Group events waiting in the outbox arrive once the service is back")
	im.stop(t)
}

// adminStatusRaw fetches im's /status as a generic document.
func adminStatusRaw(t *testing.T, im *proc) map[string]any {
	t.Helper()
	var st map[string]any
	code, b := adminGet(t, http.DefaultClient, "http://"+im.adminAddr(t)+"/status")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal(b, &st))
	return st
}

// With --forward-batch, delivery attempts are timed too: the histogram
// used to wrap single deliveries only and recorded nothing for batches.
func TestDelivery_E2E_BatchedAttemptsAreTimed(t *testing.T) {
	t.Parallel()
	p, s, dir := newPKI(t), newSink(t), t.TempDir()
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
		"--forward-batch", "16")...)
	c := p.httpsClient()
	for i := range 3 {
		require.Equal(t, http.StatusOK, postCallback(t, c, callbackURL(im.addr, "198.51.100.9"), friendDeleteBody("a", fmt.Sprint("b", i))))
	}
	base := "http://" + im.adminAddr(t)
	require.Eventually(t, func() bool {
		return metric(scrapeMetrics(t, base), "imedge_delivery_duration_seconds", "destination", "default", "result", "success") >= 1
	}, 10*time.Second, 50*time.Millisecond, "batched attempts are observed")
	im.stop(t)
}
