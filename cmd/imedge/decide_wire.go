package main

import (
	"context"
	"io"

	"github.com/imedge/imedge/decide"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/receiver"
)

// decidePath is the decision path the receiver hands before-callbacks to:
// the decision services and the before-callbacks' own limiter.
type decidePath struct {
	svc   *decide.Service
	limit receiver.Limiter // nil when --decide-rate is 0
}

// openDecide builds the decision path. Every before-callback is served: by
// its --decide service, or in observe mode with its fallback.
func (s *Server) openDecide(context.Context, io.Writer) error {
	d := s.cfg.Decide
	o, errs := d.options(s.cfg)
	if len(errs) > 0 { // Validate refused them already
		return errs[0]
	}
	o.Catalog, o.Logger = s.catalog, s.log
	// Observe mode stores a before-callback only for a --route that names
	// it, never for the catch-all --forward-url: those answered callbacks
	// are not events its service expects. SIGHUP changes no route pattern.
	routes := s.cfg.Delivery
	o.Observe = func(command string) bool { return routes.destinationOf(command) != forward.DefaultDestination }
	svc, err := decide.New(o)
	if err != nil {
		return err
	}
	s.onClose(svc.Close)
	s.decide.svc = svc
	if d.Rate > 0 {
		l, err := receiver.NewClientLimiter(d.limiterOptions(s.cfg.Limits))
		if err != nil {
			return err
		}
		s.decide.limit = l
	}
	return nil
}
