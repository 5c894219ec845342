package admin

import (
	"fmt"
	"time"
)

// readiness is the /readyz reply: ready only when every check is OK.
type readiness struct {
	Ready  bool    `json:"ready"`
	Checks []check `json:"checks"`
}

// check is one readiness condition.
type check struct {
	Name  string `json:"name"`            // "tls", "outbox", "draining" or "im_egress"
	OK    bool   `json:"ok"`              // the condition holds
	Error string `json:"error,omitempty"` // why not
}

func (s *Server) readiness() readiness {
	now := s.o.Now()
	rd := readiness{Ready: true, Checks: []check{s.checkTLS(now), s.checkOutbox(now), s.checkDraining()}}
	if s.o.Egress != nil {
		rd.Checks = append(rd.Checks, s.checkEgress())
	}
	for _, c := range rd.Checks {
		rd.Ready = rd.Ready && c.OK
	}
	return rd
}

// checkTLS: a server certificate is loaded and not expired, and when client
// certificates are required, the client-CA bundle is not empty.
func (s *Server) checkTLS(now time.Time) check {
	c := check{Name: "tls"}
	st := s.o.TLS.Status()
	switch {
	case st.ServerCert.SHA256 == "":
		c.Error = "no server certificate loaded"
	case !now.Before(st.ServerCert.NotAfter):
		c.Error = fmt.Sprintf("server certificate %s expired at %s", st.ServerCert.SHA256, st.ServerCert.NotAfter.Format(time.RFC3339))
	case st.ClientAuth == "require" && len(st.ClientCAs) == 0:
		c.Error = "client certificates are required but no client CA is loaded"
	default:
		c.OK = true
	}
	return c
}

// checkOutbox: the outbox answers and takes writes (see forward's
// Outbox.Writable). The write probe's result is reused for ProbeEvery.
func (s *Server) checkOutbox(now time.Time) check {
	c := check{Name: "outbox"}
	if _, err := s.o.Outbox.Stats(); err != nil {
		c.Error = err.Error()
		return c
	}
	s.probeMu.Lock()
	if s.o.ProbeEvery < 0 || s.probeAt.IsZero() || now.Sub(s.probeAt) >= s.o.ProbeEvery || now.Before(s.probeAt) {
		s.probeErr = s.o.Outbox.Writable()
		s.probeAt = now
	}
	err := s.probeErr
	s.probeMu.Unlock()
	if err != nil {
		c.Error = err.Error()
		return c
	}
	c.OK = true
	return c
}

func (s *Server) checkDraining() check {
	if s.draining.Load() {
		return check{Name: "draining", Error: "shutting down: finishing requests in flight"}
	}
	return check{Name: "draining", OK: true}
}
