package dedupe_test

import (
	"context"
	"fmt"
	"time"

	"github.com/imedge/imedge/dedupe"
)

func ExampleSet() {
	s, err := dedupe.New(dedupe.Options{TTL: 10 * time.Minute})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	const id = "5d41402abc4b2a76b9719d911017c592" // normally the event's SHA-256

	// handle is what the receiver does with each authenticated callback.
	handle := func(store func() error) string {
		isNew, err := s.Claim(ctx, id)
		if err != nil {
			return "503: try again"
		}
		if !isNew {
			return "200: duplicate, not forwarded"
		}
		err = store()
		s.Settle(id, err == nil)
		if err != nil {
			return "503: not stored"
		}
		return "200: accepted"
	}

	fmt.Println(handle(func() error { return fmt.Errorf("outbox full") }))
	fmt.Println(handle(func() error { return nil })) // IM's retry
	fmt.Println(handle(func() error { return nil })) // a second retry
	fmt.Printf("%+v\n", s.Stats())
	// Output:
	// 503: not stored
	// 200: accepted
	// 200: duplicate, not forwarded
	// {Len:1 InFlight:0 Hits:1 Evictions:0}
}
