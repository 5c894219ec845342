package lrutable

// MaxLen is the most keys a [Table] can hold: slots are numbered by int32.
const MaxLen = 1 << 30

// minIndex is the size of the smallest index.
const minIndex = 8

// Options configures a [Table]. The zero value is valid: an empty table
// that grows on demand, hashed by [SeededHash].
type Options struct {
	// Hint is the number of keys to allocate room for up front (at most
	// Max, if Max is set). Zero means allocate on first use and grow as
	// keys are added; use it for tables with a large bound that may stay
	// nearly empty.
	Hint int
	// Max is the caller's bound on the number of keys held at once, if it
	// has one. Slot storage then doubles as it grows but never past Max, so
	// it never exceeds what a full table needs, a table filled to exactly
	// Max keys has no spare slots, and growing to Max leaves behind little
	// garbage. The table does not enforce the bound: callers evict before
	// adding (past Max, storage grows as without a bound). Zero means no
	// bound: slot storage grows like append's, by doubling and then by about
	// a quarter. Values above [MaxLen] are treated as MaxLen.
	Max int
	// Hash maps a key to a 64-bit hash whose low bits are uniformly
	// distributed. Nil means a new [SeededHash], which is right for keys an
	// attacker may choose. [DigestHash] suits keys that are already
	// unpredictable digests.
	Hash func([16]byte) uint64
}

// Table maps 16-byte keys to values of type V and keeps them in order of
// last use: [Table.Get] and [Table.Add] make a key the most recently used,
// [Table.Peek] does not, and [Table.Oldest] and [Table.RemoveOldest] reach
// the least recently used. Every operation takes expected O(1) time and,
// except when the table grows, allocates nothing.
//
// Memory: each key costs one slot (the key, the value and two int32 links)
// plus 5 to 11 bytes of index. V should hold no pointers: then the table
// holds none, and the garbage collector never scans it. Storage grows as
// keys are added (see [Options.Max]) and is never given back, so a table
// stays as large as the most keys it ever held.
//
// A *V returned by a method points into the table's storage: it is valid
// only until the next call that adds or removes a key ([Table.Add],
// [Table.Remove], [Table.RemoveOldest]); reordering by [Table.Get] does not
// move values.
//
// A Table is created with [New]; the zero value is not usable. It is not
// safe for concurrent use: callers serialise access, typically under their
// own mutex. It holds no goroutines and needs no Close.
type Table[V any] struct {
	// slots holds the entries densely in slots[:len]; a removed entry's
	// slot is filled by moving the last one into it.
	slots []slot[V]
	// index is an open-addressing hash index with linear probing: each
	// element is a slot number plus one, or zero if empty. Its length is a
	// power of two, at least four thirds of len(slots), so probes end.
	index []int32
	mask  uint64 // len(index) - 1
	// head and tail are the most and least recently used slots, -1 when
	// the table is empty.
	head, tail int32
	max        int
	hash       func([16]byte) uint64
}

// slot is one entry. prev and next link the slots in order of use: prev
// towards the most recently used (head), next towards the least (tail),
// -1 at the ends.
type slot[V any] struct {
	key        [16]byte
	val        V
	prev, next int32
}

// New returns an empty Table configured by o.
func New[V any](o Options) *Table[V] {
	t := &Table[V]{
		head: -1,
		tail: -1,
		max:  min(max(o.Max, 0), MaxLen),
		hash: o.Hash,
	}
	if t.hash == nil {
		t.hash = SeededHash()
	}
	if o.Hint > 0 {
		n := min(o.Hint, MaxLen)
		if t.max > 0 {
			n = min(n, t.max)
		}
		t.slots = make([]slot[V], 0, n)
		t.resizeIndex(indexSizeFor(n))
	}
	return t
}

// indexSizeFor returns the smallest index size, a power of two and at least
// minIndex, that holds n keys at a load of at most 3/4.
func indexSizeFor(n int) int {
	size := minIndex
	for size/4*3 < n {
		size *= 2
	}
	return size
}

// Len returns the number of keys in the table.
func (t *Table[V]) Len() int { return len(t.slots) }

// Get returns a pointer to k's value and makes k the most recently used
// key. It returns nil, false if k is absent. The pointer is valid until
// the next Add, Remove or RemoveOldest.
func (t *Table[V]) Get(k [16]byte) (*V, bool) {
	_, i := t.find(k)
	if i < 0 {
		return nil, false
	}
	if i != t.head {
		t.unlink(i)
		t.pushFront(i)
	}
	return &t.slots[i].val, true
}

// Peek is like [Table.Get] but leaves the order of use unchanged.
func (t *Table[V]) Peek(k [16]byte) (*V, bool) {
	_, i := t.find(k)
	if i < 0 {
		return nil, false
	}
	return &t.slots[i].val, true
}

// Add inserts k as the most recently used key and returns a pointer to its
// value, which is the zero V. The pointer is valid until the next Add,
// Remove or RemoveOldest. k must be absent: Add panics if k is present,
// or if the table already holds [MaxLen] keys.
func (t *Table[V]) Add(k [16]byte) *V {
	n := len(t.slots)
	if n >= MaxLen {
		panic("lrutable: Add to a table holding MaxLen keys")
	}
	if n+1 > len(t.index)/4*3 {
		t.resizeIndex(max(minIndex, 2*len(t.index)))
	}
	pos, found := t.find(k)
	if found >= 0 {
		panic("lrutable: Add of a key already present")
	}
	if n == cap(t.slots) {
		t.growSlots()
	}
	i := int32(n)
	t.slots = t.slots[:n+1]
	t.slots[i] = slot[V]{key: k}
	t.index[pos] = i + 1
	t.pushFront(i)
	return &t.slots[i].val
}

// Remove removes k and reports whether it was present.
func (t *Table[V]) Remove(k [16]byte) bool {
	pos, i := t.find(k)
	if i < 0 {
		return false
	}
	t.removeAt(pos, i)
	return true
}

// Oldest returns the least recently used key and a pointer to its value,
// without changing the order of use. ok is false if the table is empty. The
// pointer is valid until the next Add, Remove or RemoveOldest.
func (t *Table[V]) Oldest() (k [16]byte, v *V, ok bool) {
	if t.tail < 0 {
		return k, nil, false
	}
	s := &t.slots[t.tail]
	return s.key, &s.val, true
}

// RemoveOldest removes the least recently used key and returns it with a
// copy of its value. ok is false if the table is empty.
func (t *Table[V]) RemoveOldest() (k [16]byte, v V, ok bool) {
	i := t.tail
	if i < 0 {
		return k, v, false
	}
	k, v = t.slots[i].key, t.slots[i].val
	t.removeAt(t.posOf(i), i)
	return k, v, true
}

// find returns the index position holding k and k's slot, or, if k is
// absent, the empty position where k would go and -1.
func (t *Table[V]) find(k [16]byte) (pos uint64, i int32) {
	if len(t.index) == 0 {
		return 0, -1
	}
	for p := t.hash(k) & t.mask; ; p = (p + 1) & t.mask {
		e := t.index[p]
		if e == 0 {
			return p, -1
		}
		if t.slots[e-1].key == k {
			return p, e - 1
		}
	}
}

// posOf returns the index position that holds slot i. Comparing slot
// numbers instead of keys keeps the probe cheap.
func (t *Table[V]) posOf(i int32) uint64 {
	for p := t.hash(t.slots[i].key) & t.mask; ; p = (p + 1) & t.mask {
		switch t.index[p] {
		case i + 1:
			return p
		case 0:
			panic("lrutable: slot missing from the index")
		}
	}
}

// removeAt removes slot i, found at index position pos.
func (t *Table[V]) removeAt(pos uint64, i int32) {
	t.deleteAt(pos)
	t.unlink(i)
	last := int32(len(t.slots) - 1)
	if i != last {
		t.index[t.posOf(last)] = i + 1
		s := t.slots[last]
		t.slots[i] = s
		if s.prev >= 0 {
			t.slots[s.prev].next = i
		} else {
			t.head = i
		}
		if s.next >= 0 {
			t.slots[s.next].prev = i
		} else {
			t.tail = i
		}
	}
	t.slots[last] = slot[V]{} // drop anything V refers to
	t.slots = t.slots[:last]
}

// deleteAt empties index position pos by backward shift: each later entry
// of the probe run that may move to the hole (its home position is not
// between the hole and itself) does, and the hole moves to where it was.
// The run stays contiguous, so no tombstones are needed and lookups never
// slow down as keys come and go.
func (t *Table[V]) deleteAt(pos uint64) {
	hole := pos
	for p := (pos + 1) & t.mask; ; p = (p + 1) & t.mask {
		e := t.index[p]
		if e == 0 {
			break
		}
		home := t.hash(t.slots[e-1].key) & t.mask
		if (p-home)&t.mask >= (p-hole)&t.mask {
			t.index[hole] = e
			hole = p
		}
	}
	t.index[hole] = 0
}

// resizeIndex replaces the index with one of size elements (a power of two
// larger than four thirds of the number of keys) and re-inserts every slot.
func (t *Table[V]) resizeIndex(size int) {
	index := make([]int32, size)
	mask := uint64(size - 1)
	for i := range t.slots {
		p := t.hash(t.slots[i].key) & mask
		for index[p] != 0 {
			p = (p + 1) & mask
		}
		index[p] = int32(i + 1)
	}
	t.index, t.mask = index, mask
}

// growSlots enlarges the slot storage. Below a bound it doubles, clamped
// to the bound: the storage never exceeds that of a full table, and the
// arrays left behind add up to less than one full table. Without a bound
// (or past it) it grows as append does: doubling while small, then by
// about a quarter, to waste less.
func (t *Table[V]) growSlots() {
	c := cap(t.slots)
	next := max(2*c, 8)
	switch {
	case t.max > c:
		next = min(next, t.max)
	case c >= 256:
		next = c + (c+3*256)/4
	}
	next = min(next, MaxLen)
	s := make([]slot[V], len(t.slots), next)
	copy(s, t.slots)
	t.slots = s
}

// unlink takes slot i out of the order of use.
func (t *Table[V]) unlink(i int32) {
	s := &t.slots[i]
	if s.prev >= 0 {
		t.slots[s.prev].next = s.next
	} else {
		t.head = s.next
	}
	if s.next >= 0 {
		t.slots[s.next].prev = s.prev
	} else {
		t.tail = s.prev
	}
	s.prev, s.next = -1, -1
}

// pushFront makes slot i, which is unlinked, the most recently used.
func (t *Table[V]) pushFront(i int32) {
	s := &t.slots[i]
	s.prev, s.next = -1, t.head
	if t.head >= 0 {
		t.slots[t.head].prev = i
	} else {
		t.tail = i
	}
	t.head = i
}
