package lrutable

import (
	"container/list"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// keyOf returns a distinct key for each n.
func keyOf(n uint64) [16]byte {
	var k [16]byte
	binary.BigEndian.PutUint64(k[8:], n)
	return k
}

// model is the reference: a map for membership and values, and a list for
// the order of use (front = most recently used).
type model struct {
	vals  map[[16]byte]int64
	elems map[[16]byte]*list.Element
	order *list.List
}

func newModel() *model {
	return &model{vals: map[[16]byte]int64{}, elems: map[[16]byte]*list.Element{}, order: list.New()}
}

func (m *model) add(k [16]byte, v int64) {
	m.vals[k] = v
	m.elems[k] = m.order.PushFront(k)
}

func (m *model) remove(k [16]byte) {
	m.order.Remove(m.elems[k])
	delete(m.elems, k)
	delete(m.vals, k)
}

func (m *model) oldest() ([16]byte, bool) {
	e := m.order.Back()
	if e == nil {
		return [16]byte{}, false
	}
	return e.Value.([16]byte), true
}

// keys returns the keys from the most to the least recently used.
func (m *model) keys() [][16]byte {
	var ks [][16]byte
	for e := m.order.Front(); e != nil; e = e.Next() {
		ks = append(ks, e.Value.([16]byte))
	}
	return ks
}

// checkInvariants verifies the table's internal structure against m: the
// links walk the model's order both ways, every slot is in the index at a
// position its probe reaches, and the index holds nothing else.
func checkInvariants(t *testing.T, tab *Table[int64], m *model) {
	t.Helper()
	require.Equal(t, len(m.vals), tab.Len())

	var fwd [][16]byte
	prev := int32(-1)
	for i := tab.head; i >= 0; i = tab.slots[i].next {
		require.Equal(t, prev, tab.slots[i].prev, "prev link of slot %d", i)
		require.Less(t, len(fwd), tab.Len(), "links loop")
		fwd = append(fwd, tab.slots[i].key)
		prev = i
	}
	require.Equal(t, prev, tab.tail, "tail is the last slot walked")
	require.Equal(t, m.keys(), fwd, "order of use")

	used := 0
	for p, e := range tab.index {
		if e == 0 {
			continue
		}
		used++
		require.LessOrEqual(t, int(e), tab.Len(), "index entry %d points past the slots", p)
		// Every position from the home to p must be occupied, or a lookup
		// would stop before reaching p.
		for q := tab.hash(tab.slots[e-1].key) & tab.mask; q != uint64(p); q = (q + 1) & tab.mask {
			require.NotZero(t, tab.index[q], "hole in the probe run of slot %d", e-1)
		}
	}
	require.Equal(t, tab.Len(), used, "one index entry per key")
	if len(tab.index) > 0 {
		assert.LessOrEqual(t, tab.Len()*4, len(tab.index)*3, "load at most 3/4")
	}
	for k, v := range m.vals {
		got, ok := tab.Peek(k)
		require.True(t, ok, "key %x is found", k)
		require.Equal(t, v, *got, "value of %x", k)
	}
}

// runModel drives tab and a model with the same steps random operations on
// keys drawn from universe distinct keys, with the table kept at most bound
// keys by evicting the oldest before each Add, as the limiter does.
func runModel(t *testing.T, tab *Table[int64], rng *rand.Rand, steps, universe, bound int) {
	t.Helper()
	m := newModel()
	for step := range steps {
		k := keyOf(uint64(rng.IntN(universe)))
		_, present := m.vals[k]
		switch op := rng.IntN(100); {
		case op < 35: // Get, adding on a miss (the limiter's pattern)
			v, ok := tab.Get(k)
			require.Equal(t, present, ok, "step %d: Get membership", step)
			if ok {
				require.Equal(t, m.vals[k], *v, "step %d: Get value", step)
				m.order.MoveToFront(m.elems[k])
				*v = int64(step)
				m.vals[k] = int64(step)
				break
			}
			if tab.Len() >= bound {
				ek, ev, eok := tab.RemoveOldest()
				mk, _ := m.oldest()
				require.True(t, eok, "step %d: RemoveOldest of a full table", step)
				require.Equal(t, mk, ek, "step %d: the least recently used key is evicted", step)
				require.Equal(t, m.vals[mk], ev, "step %d: evicted value", step)
				m.remove(mk)
			}
			*tab.Add(k) = int64(step)
			m.add(k, int64(step))
		case op < 50: // Peek leaves the order alone
			v, ok := tab.Peek(k)
			require.Equal(t, present, ok, "step %d: Peek membership", step)
			if ok {
				require.Equal(t, m.vals[k], *v, "step %d: Peek value", step)
			}
		case op < 70: // Remove anywhere: head, tail or middle
			require.Equal(t, present, tab.Remove(k), "step %d: Remove", step)
			if present {
				m.remove(k)
			}
		case op < 80: // Oldest
			k, v, ok := tab.Oldest()
			mk, mok := m.oldest()
			require.Equal(t, mok, ok, "step %d: Oldest of an empty table", step)
			if ok {
				require.Equal(t, mk, k, "step %d: Oldest key", step)
				require.Equal(t, m.vals[mk], *v, "step %d: Oldest value", step)
			}
		case op < 83: // drain to empty, then carry on
			for {
				k, v, ok := tab.RemoveOldest()
				mk, mok := m.oldest()
				require.Equal(t, mok, ok, "step %d: RemoveOldest until empty", step)
				if !ok {
					break
				}
				require.Equal(t, mk, k)
				require.Equal(t, m.vals[mk], v)
				m.remove(mk)
			}
			require.Zero(t, tab.Len())
		default: // Add of an absent key without evicting (the table may grow past bound)
			if present {
				assert.Panics(t, func() { tab.Add(k) }, "step %d: Add of a present key", step)
				break
			}
			*tab.Add(k) = int64(step)
			m.add(k, int64(step))
		}
		if step%97 == 0 {
			checkInvariants(t, tab, m)
		}
	}
	checkInvariants(t, tab, m)
}

func TestTable_MatchesAModel(t *testing.T) {
	for _, tc := range []struct {
		name            string
		o               Options
		universe, bound int
	}{
		{"small seeded", Options{}, 50, 20},
		{"grows to thousands", Options{}, 5000, 4000},
		{"bounded by Max", Options{Max: 300}, 600, 300},
		{"presized", Options{Hint: 1000}, 2000, 1500},
		{"digest hash", Options{Hash: DigestHash}, 3000, 2500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 11))
			steps := 30000
			if testing.Short() {
				steps = 5000
			}
			runModel(t, New[int64](tc.o), rng, steps, tc.universe, tc.bound)
		})
	}
}

// TestTable_ManyCollisions uses hashes with very few distinct values, so
// every key lands in a few long probe runs that wrap around the end of the
// index; removals from the middle of a run must keep the rest reachable.
func TestTable_ManyCollisions(t *testing.T) {
	for _, tc := range []struct {
		name string
		hash func([16]byte) uint64
	}{
		{"constant", func([16]byte) uint64 { return 0 }},
		{"constant at the end of the index", func([16]byte) uint64 { return ^uint64(0) }},
		{"three values", func(k [16]byte) uint64 { return uint64(k[15]%3) * 5 }},
		{"two values near the wrap", func(k [16]byte) uint64 { return ^uint64(0) - uint64(k[15]%2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 5))
			runModel(t, New[int64](Options{Hash: tc.hash}), rng, 6000, 400, 300)
		})
	}
}

// TestTable_RemoveFromEveryPosition fills a table whose keys all collide,
// then removes keys from the head, the tail and the middle of both the
// order of use and the probe run, checking the structure after each.
func TestTable_RemoveFromEveryPosition(t *testing.T) {
	tab := New[int64](Options{Hash: func([16]byte) uint64 { return 6 }})
	m := newModel()
	const n = 40
	for i := range uint64(n) {
		*tab.Add(keyOf(i)) = int64(i)
		m.add(keyOf(i), int64(i))
	}
	checkInvariants(t, tab, m)
	for _, i := range []uint64{n - 1, 0, 20, 21, 19, 1, n - 2, 10} { // head, tail, middle…
		require.True(t, tab.Remove(keyOf(i)), "remove %d", i)
		m.remove(keyOf(i))
		checkInvariants(t, tab, m)
		assert.False(t, tab.Remove(keyOf(i)), "second remove of %d", i)
	}
	for _, i := range []uint64{20, 0, n - 1} { // re-add
		*tab.Add(keyOf(i)) = int64(100 + i)
		m.add(keyOf(i), int64(100+i))
		checkInvariants(t, tab, m)
	}
	for tab.Len() > 0 {
		k, v, ok := tab.RemoveOldest()
		require.True(t, ok)
		mk, _ := m.oldest()
		require.Equal(t, mk, k)
		require.Equal(t, m.vals[mk], v)
		m.remove(mk)
		checkInvariants(t, tab, m)
	}
	_, _, ok := tab.RemoveOldest()
	assert.False(t, ok, "RemoveOldest of an empty table")
	_, v, ok := tab.Oldest()
	assert.False(t, ok, "Oldest of an empty table")
	assert.Nil(t, v)
}

func TestTable_GetMakesMostRecentPeekDoesNot(t *testing.T) {
	tab := New[int64](Options{})
	for i := range 3 {
		*tab.Add(keyOf(uint64(i))) = int64(i)
	}
	_, ok := tab.Peek(keyOf(0))
	require.True(t, ok)
	k, _, _ := tab.Oldest()
	assert.Equal(t, keyOf(0), k, "Peek does not refresh")

	v, ok := tab.Get(keyOf(0))
	require.True(t, ok)
	*v = 42
	k, _, _ = tab.Oldest()
	assert.Equal(t, keyOf(1), k, "Get refreshes")
	got, _ := tab.Peek(keyOf(0))
	assert.Equal(t, int64(42), *got, "a write through Get's pointer sticks")

	_, ok = tab.Get(keyOf(9))
	assert.False(t, ok)
}

func TestTable_AddOfPresentKeyPanics(t *testing.T) {
	tab := New[int64](Options{})
	tab.Add(keyOf(1))
	assert.PanicsWithValue(t, "lrutable: Add of a key already present", func() { tab.Add(keyOf(1)) })
	assert.Equal(t, 1, tab.Len())
}

func TestTable_AddReturnsZeroValueInReusedSlot(t *testing.T) {
	tab := New[int64](Options{Max: 2})
	*tab.Add(keyOf(1)) = 7
	*tab.Add(keyOf(2)) = 8
	tab.RemoveOldest()
	assert.Zero(t, *tab.Add(keyOf(3)), "a reused slot starts from the zero value")
}

func TestTable_MemoryGrowsOnDemand(t *testing.T) {
	t.Run("large Max, few keys", func(t *testing.T) {
		tab := New[[2]int64](Options{Max: 1 << 20})
		assert.Zero(t, cap(tab.slots), "nothing allocated before the first Add")
		assert.Zero(t, len(tab.index))
		for i := range 10 {
			tab.Add(keyOf(uint64(i)))
		}
		assert.LessOrEqual(t, cap(tab.slots), 16)
		assert.LessOrEqual(t, len(tab.index), 16)
	})
	t.Run("filled to Max has no spare slots", func(t *testing.T) {
		const bound = 90_000 // 3/4 of 1<<17 is 98 304
		tab := New[[2]int64](Options{Max: bound})
		for i := range bound {
			tab.Add(keyOf(uint64(i)))
		}
		assert.Equal(t, bound, cap(tab.slots))
		assert.Equal(t, 1<<17, len(tab.index), "smallest power of two at load <= 3/4")
		tab.RemoveOldest()
		tab.Add(keyOf(bound))
		assert.Equal(t, bound, cap(tab.slots), "churn at the bound allocates nothing")
	})
	t.Run("past Max grows as usual", func(t *testing.T) {
		tab := New[int64](Options{Max: 10})
		for i := range 11 {
			tab.Add(keyOf(uint64(i)))
		}
		assert.Equal(t, 11, tab.Len())
		assert.Greater(t, cap(tab.slots), 10)
	})
	t.Run("Hint presizes up to Max", func(t *testing.T) {
		tab := New[int64](Options{Hint: 1000, Max: 500})
		assert.Equal(t, 500, cap(tab.slots))
		assert.Equal(t, 1024, len(tab.index))
	})
}

func TestTable_NoAllocations(t *testing.T) {
	const n = 1000
	tab := New[[2]int64](Options{Max: n})
	for i := range n {
		tab.Add(keyOf(uint64(i)))
	}
	i := uint64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		tab.Get(keyOf(i % n))
		tab.Peek(keyOf(i % 7))
		i++
	})
	assert.Zero(t, allocs, "Get and Peek")
	next := uint64(n)
	allocs = testing.AllocsPerRun(1000, func() {
		tab.RemoveOldest()
		tab.Add(keyOf(next))
		next++
	})
	assert.Zero(t, allocs, "Add and RemoveOldest at capacity")
}

func TestSeededHash_SeedsDiffer(t *testing.T) {
	h1, h2 := SeededHash(), SeededHash()
	k := keyOf(1)
	assert.Equal(t, h1(k), h1(k), "a function is deterministic")
	assert.NotEqual(t, h1(k), h2(k), "each function has its own seed")
}

func TestDigestHash_IsFirstEightBytes(t *testing.T) {
	k := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}
	assert.Equal(t, uint64(0x0807060504030201), DigestHash(k))
}

// FuzzTable interprets the input as a program of operations on a small key
// space and checks the table against the model after each.
func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 3, 1, 2, 2, 0, 3, 0})
	f.Add([]byte{0, 9, 0, 17, 0, 25, 2, 17, 0, 33, 4, 0, 4, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		// A 3-bit hash makes collisions and wrap-around common.
		tab := New[int64](Options{Hash: func(k [16]byte) uint64 { return uint64(k[15]) & 7 }})
		m := newModel()
		for step := 0; step+1 < len(prog); step += 2 {
			k := keyOf(uint64(prog[step+1] % 64))
			_, present := m.vals[k]
			switch prog[step] % 5 {
			case 0:
				if !present {
					*tab.Add(k) = int64(step)
					m.add(k, int64(step))
				}
			case 1:
				v, ok := tab.Get(k)
				require.Equal(t, present, ok)
				if ok {
					require.Equal(t, m.vals[k], *v)
					m.order.MoveToFront(m.elems[k])
				}
			case 2:
				require.Equal(t, present, tab.Remove(k))
				if present {
					m.remove(k)
				}
			case 3:
				k, v, ok := tab.RemoveOldest()
				mk, mok := m.oldest()
				require.Equal(t, mok, ok)
				if ok {
					require.Equal(t, mk, k)
					require.Equal(t, m.vals[mk], v)
					m.remove(mk)
				}
			case 4:
				_, ok := tab.Peek(k)
				require.Equal(t, present, ok)
			}
			checkInvariants(t, tab, m)
		}
	})
}
