package meta

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// VersionVector is the causal version of one path: for each node ID, how
// many changes of that node the version includes. A missing node counts as
// zero, so nil is the empty vector (no change seen) and a zero counter is the
// same as an absent one; the cache does not store zero counters.
//
// The methods never modify their receiver or argument: Bump, Merge and Clone
// return new vectors, so a vector taken from an Entry can be shared.
type VersionVector map[string]uint64

// Order is how two version vectors relate.
type Order int

// The four possible relations of a to b in a.Compare(b).
const (
	// Equal: a and b have seen exactly the same changes.
	Equal Order = iota
	// Before: b has seen every change a has, and more; b supersedes a.
	Before
	// After: a has seen every change b has, and more; a supersedes b.
	After
	// Concurrent: each has seen a change the other has not; a conflict,
	// which the sync engine settles.
	Concurrent
)

// String returns "equal", "before", "after" or "concurrent".
func (o Order) String() string {
	switch o {
	case Equal:
		return "equal"
	case Before:
		return "before"
	case After:
		return "after"
	case Concurrent:
		return "concurrent"
	}
	return "Order(" + strconv.Itoa(int(o)) + ")"
}

// Compare returns how v relates to o, counting missing nodes as zero.
func (v VersionVector) Compare(o VersionVector) Order {
	less, greater := false, false // some counter of v is below / above o's
	for n, c := range v {
		switch oc := o[n]; {
		case c < oc:
			less = true
		case c > oc:
			greater = true
		}
	}
	for n, oc := range o {
		if _, ok := v[n]; !ok && oc > 0 {
			less = true
		}
	}
	switch {
	case less && greater:
		return Concurrent
	case less:
		return Before
	case greater:
		return After
	}
	return Equal
}

// Merge returns the smallest vector that has seen everything v and o have:
// the larger counter of each node. It is commutative, associative and
// idempotent, and both v and o compare Before or Equal to the result.
func (v VersionVector) Merge(o VersionVector) VersionVector {
	m := make(VersionVector, max(len(v), len(o)))
	for n, c := range v {
		if c > 0 {
			m[n] = c
		}
	}
	for n, c := range o {
		if c > m[n] {
			m[n] = c
		}
	}
	return m
}

// Bump returns a copy of v with node's counter incremented: the version of a
// change that node makes on top of v. The result compares After v.
func (v VersionVector) Bump(node string) VersionVector {
	m := v.Clone()
	if m == nil {
		m = make(VersionVector, 1)
	}
	m[node]++
	return m
}

// Clone returns a copy of v without zero counters; nil for an empty v.
func (v VersionVector) Clone() VersionVector {
	var m VersionVector
	for n, c := range v {
		if c == 0 {
			continue
		}
		if m == nil {
			m = make(VersionVector, len(v))
		}
		m[n] = c
	}
	return m
}

// String returns the non-zero counters as "node:count" pairs sorted by node,
// e.g. "a1:3,b2:1", for logs; "{}" for the empty vector.
func (v VersionVector) String() string {
	nodes := slices.Sorted(maps.Keys(v))
	var b strings.Builder
	for _, n := range nodes {
		if v[n] == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(v[n], 10))
	}
	if b.Len() == 0 {
		return "{}"
	}
	return b.String()
}
