package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/imedge/imedge/admin"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/receiver"
)

// destination is one delivery target: a route, or the --forward-url
// catch-all (forward.DefaultDestination), with its own client, dispatcher
// and share of the outbox.
type destination struct {
	name   string
	client *swapClient
	disp   *forward.Dispatcher
}

// swapClient is a delivery client whose URL can change while it delivers
// (SIGHUP with a route's changed URL): the dispatcher keeps one Deliverer,
// whose attempts go to the client in force when they start.
type swapClient struct {
	cur atomic.Pointer[forward.Client]
	url atomic.Pointer[string]
}

func newSwapClient(c *forward.Client, u string) *swapClient {
	s := &swapClient{}
	s.cur.Store(c)
	s.url.Store(&u)
	return s
}

func (s *swapClient) Deliver(ctx context.Context, ev forward.Event, attempt int) error {
	return s.cur.Load().Deliver(ctx, ev, attempt)
}

func (s *swapClient) DeliverBatch(ctx context.Context, evs []forward.Event, attempts []int) error {
	return s.cur.Load().DeliverBatch(ctx, evs, attempts)
}

// swap installs c for u and closes the previous client's idle connections.
func (s *swapClient) swap(c *forward.Client, u string) {
	old := s.cur.Swap(c)
	s.url.Store(&u)
	old.Close()
}

func (s *swapClient) close() { s.cur.Load().Close() }

// openOutbox opens the durable outbox, one share of its limits per
// destination: an accepted event is on disk before IM is answered.
func (s *Server) openOutbox(context.Context, io.Writer) error {
	st, d := s.cfg.State, s.cfg.Delivery
	box, err := forward.OpenOutbox(forward.OutboxOptions{
		Dir: st.spoolDir(), MaxEvents: st.MaxEvents, MaxBytes: st.MaxBytes,
		RememberFor: st.DedupeWindow, Logger: s.log,
		Destinations: d.destinations(), RetainDelivered: d.retain(),
	})
	if err != nil {
		return fmt.Errorf("opening outbox: %w", err)
	}
	s.onClose(func() { box.Close() })
	s.box = box
	return nil
}

// openDelivery builds, for each destination, the client for its URL and
// the dispatcher that drains its events into it; a destination that is
// down or slow holds up none of the others.
func (s *Server) openDelivery(context.Context, io.Writer) error {
	d := s.cfg.Delivery
	s.timer = admin.NewDeliveryHistogram()
	for _, name := range append([]string{forward.DefaultDestination}, d.destinations()...) {
		u := d.urlOf(name)
		c, err := forward.NewClient(s.cfg.Delivery.clientOptions(u))
		if err != nil {
			return fmt.Errorf("destination %s: %w", name, err)
		}
		sc := newSwapClient(c, u)
		s.onClose(sc.close)
		disp, err := forward.NewDispatcher(forward.DispatcherOptions{
			Outbox: s.box, Destination: name, Deliverer: sc, BatchSize: d.Batch, BatchWait: d.BatchWait,
			Concurrency: d.Concurrency, BackoffBase: d.RetryBase, BackoffMax: d.RetryMax,
			MaxAttempts: d.MaxAttempts, MaxAge: d.MaxAge, PermanentStatus: d.Permanent,
			OnAttempt: s.timer.Observe, Logger: s.log,
		})
		if err != nil {
			return fmt.Errorf("destination %s: %w", name, err)
		}
		s.dests = append(s.dests, &destination{name: name, client: sc, disp: disp})
	}
	return nil
}

// runDelivery runs every destination's dispatcher until ctx ends.
func (s *Server) runDelivery(ctx context.Context, wg *sync.WaitGroup) {
	for _, dst := range s.dests {
		wg.Go(func() {
			if err := dst.disp.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("delivery workers stopped", "destination", dst.name, "err", err)
			}
		})
	}
}

// dispatchers lists the dispatchers, for the admin listener.
func (s *Server) dispatchers() []admin.Dispatcher {
	out := make([]admin.Dispatcher, len(s.dests))
	for i, d := range s.dests {
		out[i] = d.disp
	}
	return out
}

// prepareRouteURLs builds the clients for the destinations whose URL in d
// differs (SIGHUP), when the destinations themselves are unchanged, and
// returns the functions that put them in service or drop them; on error
// nothing changes. Only the URL comes from d: the signing secret and the
// TLS files stay those the server started with (changing them needs a
// restart), so every destination keeps signing with the same secret.
func (s *Server) prepareRouteURLs(d deliveryConfig) (commit, abort func(), err error) {
	type change struct {
		dst *destination
		c   *forward.Client
		u   string
	}
	var changes []change
	for _, dst := range s.dests {
		u := d.urlOf(dst.name)
		if *dst.client.url.Load() == u {
			continue
		}
		c, err := forward.NewClient(d.clientOptions(u))
		if err != nil {
			for _, ch := range changes {
				ch.c.Close()
			}
			return nil, nil, fmt.Errorf("destination %s: %w", dst.name, err)
		}
		changes = append(changes, change{dst, c, u})
	}
	commit = func() {
		for _, ch := range changes {
			ch.dst.client.swap(ch.c, ch.u)
		}
	}
	abort = func() {
		for _, ch := range changes {
			ch.c.Close()
		}
	}
	return commit, abort, nil
}

// sameDestinations reports whether d has the routes' patterns s runs with,
// in the same order, so that only URLs can have changed.
func (s *Server) sameDestinations(d deliveryConfig) bool {
	return slices.Equal(s.cfg.Delivery.destinations(), d.destinations())
}

// outboxSink adapts the durable outbox to receiver.Sink: each event goes
// to the destination of the first route matching its command.
type outboxSink struct {
	box    *forward.Outbox
	routes deliveryConfig
}

func (o outboxSink) Accept(ctx context.Context, ev receiver.Event) error {
	err := o.box.Append(ctx, forward.Event{
		ID: ev.ID, AppID: ev.AppID, Command: ev.Command, ClientIP: ev.ClientIP, OptPlatform: ev.OptPlatform,
		Identity: ev.Identity, CertSHA256: ev.CertSHA256, RequestID: ev.RequestID, ReceivedAt: ev.ReceivedAt, Body: ev.Body,
		Destination: o.routes.destinationOf(ev.Command),
		BodyJSON:    true, // the receiver accepts only valid JSON (FuzzBody checks it)
	})
	if errors.Is(err, forward.ErrFull) {
		return fmt.Errorf("%w: %w", receiver.ErrSinkFull, err)
	}
	return err
}
