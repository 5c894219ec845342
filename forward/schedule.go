package forward

import (
	"container/heap"
	"time"
)

// schedule is the in-memory delivery index of the pending events: which are
// due (ordered by sequence, so oldest first), which wait for a backoff to
// end (ordered by time), and which are in flight. It holds one small item per
// pending event, so its size is bounded by the outbox's event limit. It is
// not safe for concurrent use; the Outbox guards it with its mutex.
type schedule struct {
	ready    seqHeap
	waiting  waitHeap
	waitIdx  map[uint64]*waitItem
	inflight map[uint64]struct{}
}

func newSchedule() schedule {
	return schedule{waitIdx: make(map[uint64]*waitItem), inflight: make(map[uint64]struct{})}
}

// add places a pending event: due now when at is zero or not after now.
func (s *schedule) add(seq uint64, at time.Time) {
	if at.IsZero() {
		s.ready.push(seq)
		return
	}
	it := &waitItem{seq: seq, at: at}
	heap.Push(&s.waiting, it)
	s.waitIdx[seq] = it
}

// take returns the oldest due event and marks it in flight. When none is
// due, wait is how long until the next one is (negative: nothing scheduled).
func (s *schedule) take(now time.Time) (seq uint64, wait time.Duration, ok bool) {
	for len(s.waiting) > 0 && !s.waiting[0].at.After(now) {
		it := heap.Pop(&s.waiting).(*waitItem)
		delete(s.waitIdx, it.seq)
		s.ready.push(it.seq)
	}
	if len(s.ready) > 0 {
		seq = s.ready.pop()
		s.inflight[seq] = struct{}{}
		return seq, 0, true
	}
	if len(s.waiting) > 0 {
		return 0, s.waiting[0].at.Sub(now), false
	}
	return 0, -1, false
}

// promote makes a waiting event due now. It reports whether seq was waiting.
func (s *schedule) promote(seq uint64) bool {
	it, ok := s.waitIdx[seq]
	if !ok {
		return false
	}
	heap.Remove(&s.waiting, it.idx)
	delete(s.waitIdx, seq)
	s.ready.push(seq)
	return true
}

// finish ends the flight of seq; with requeue it is scheduled again at at.
func (s *schedule) finish(seq uint64, requeue bool, at time.Time) {
	if _, ok := s.inflight[seq]; !ok {
		return
	}
	delete(s.inflight, seq)
	if requeue {
		s.add(seq, at)
	}
}

// drop forgets seq wherever it is (used when it left the pending bucket).
func (s *schedule) drop(seq uint64) {
	delete(s.inflight, seq)
	if it, ok := s.waitIdx[seq]; ok {
		heap.Remove(&s.waiting, it.idx)
		delete(s.waitIdx, seq)
	}
	for i, v := range s.ready {
		if v == seq {
			s.ready.remove(i)
			return
		}
	}
}

func (s *schedule) inFlight() int { return len(s.inflight) }

// seqHeap is a min-heap of sequence numbers. Its own methods instead of
// container/heap's: boxing each uint64 into an interface for Push and out
// of Pop allocated on the way in and out of the heap.
type seqHeap []uint64

func (h *seqHeap) push(v uint64) {
	*h = append(*h, v)
	h.up(len(*h) - 1)
}

// pop removes and returns the smallest; h must not be empty.
func (h *seqHeap) pop() uint64 {
	return h.remove(0)
}

// remove removes and returns the element at i.
func (h *seqHeap) remove(i int) uint64 {
	a := *h
	v, last := a[i], len(a)-1
	a[i] = a[last]
	*h = a[:last]
	if i < last {
		h.down(i)
		h.up(i)
	}
	return v
}

func (h seqHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (h seqHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r] < h[l] {
			m = r
		}
		if h[i] <= h[m] {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

type waitItem struct {
	seq uint64
	at  time.Time
	idx int
}

type waitHeap []*waitItem

func (h waitHeap) Len() int { return len(h) }
func (h waitHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *waitHeap) Push(x any) {
	it := x.(*waitItem)
	it.idx = len(*h)
	*h = append(*h, it)
}
func (h *waitHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.idx = -1
	return it
}
