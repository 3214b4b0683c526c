package meta_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/escalefs/escalefs/cache/meta"
)

type vv = meta.VersionVector

func TestCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b vv
		want meta.Order
	}{
		{"both nil", nil, nil, meta.Equal},
		{"nil and empty", nil, vv{}, meta.Equal},
		{"zero counter is missing", vv{"a": 0}, nil, meta.Equal},
		{"zero counter both sides", vv{"a": 0}, vv{"b": 0}, meta.Equal},
		{"same", vv{"a": 1, "b": 2}, vv{"b": 2, "a": 1}, meta.Equal},
		{"nil before", nil, vv{"a": 1}, meta.Before},
		{"nil after", vv{"a": 1}, nil, meta.After},
		{"one counter behind", vv{"a": 1, "b": 2}, vv{"a": 2, "b": 2}, meta.Before},
		{"one counter ahead", vv{"a": 3, "b": 2}, vv{"a": 2, "b": 2}, meta.After},
		{"missing key behind", vv{"a": 1}, vv{"a": 1, "b": 1}, meta.Before},
		{"extra key ahead", vv{"a": 1, "b": 1}, vv{"a": 1}, meta.After},
		{"disjoint keys", vv{"a": 1}, vv{"b": 1}, meta.Concurrent},
		{"crossed counters", vv{"a": 2, "b": 1}, vv{"a": 1, "b": 2}, meta.Concurrent},
		{"ahead and missing", vv{"a": 2}, vv{"a": 1, "b": 1}, meta.Concurrent},
		{"explicit zero vs one", vv{"a": 0, "b": 1}, vv{"a": 1}, meta.Concurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Errorf("%v.Compare(%v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestBumpMergeClone(t *testing.T) {
	var nilV vv
	b := nilV.Bump("n1")
	if want := (vv{"n1": 1}); !maps.Equal(b, want) {
		t.Errorf("nil.Bump = %v, want %v", b, want)
	}
	if nilV != nil {
		t.Errorf("Bump changed its nil receiver")
	}
	orig := vv{"n1": 4, "n2": 1}
	b2 := orig.Bump("n2")
	if want := (vv{"n1": 4, "n2": 2}); !maps.Equal(b2, want) {
		t.Errorf("Bump = %v, want %v", b2, want)
	}
	if orig["n2"] != 1 {
		t.Errorf("Bump changed its receiver: %v", orig)
	}
	if got := b2.Compare(orig); got != meta.After {
		t.Errorf("bumped.Compare(orig) = %v, want after", got)
	}

	m := vv{"a": 3, "b": 1}.Merge(vv{"b": 5, "c": 2})
	if want := (vv{"a": 3, "b": 5, "c": 2}); !maps.Equal(m, want) {
		t.Errorf("Merge = %v, want %v", m, want)
	}

	c := vv{"a": 1, "z": 0}.Clone()
	if want := (vv{"a": 1}); !maps.Equal(c, want) {
		t.Errorf("Clone = %v, want %v (zero counters dropped)", c, want)
	}
	if got := (vv{"z": 0}).Clone(); got != nil {
		t.Errorf("Clone of all-zero vector = %v, want nil", got)
	}
	src := vv{"a": 1}
	c = src.Clone()
	c["a"] = 9
	if src["a"] != 1 {
		t.Errorf("Clone shares storage with its source")
	}
}

func TestVersionString(t *testing.T) {
	for _, tt := range []struct {
		v    vv
		want string
	}{
		{nil, "{}"},
		{vv{"x": 0}, "{}"},
		{vv{"b": 2, "a": 10}, "a:10,b:2"},
	} {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("String(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	for o, want := range map[meta.Order]string{meta.Equal: "equal", meta.Before: "before",
		meta.After: "after", meta.Concurrent: "concurrent", 9: "Order(9)"} {
		if got := o.String(); got != want {
			t.Errorf("Order(%d).String() = %q, want %q", int(o), got, want)
		}
	}
}

// randomVV draws a small vector over few nodes, so that equal, ordered and
// concurrent pairs all occur, with occasional explicit zero counters.
func randomVV(r *rand.Rand) vv {
	if r.IntN(8) == 0 {
		return nil
	}
	v := vv{}
	for i := range 4 {
		if r.IntN(2) == 0 {
			v[fmt.Sprintf("n%d", i)] = uint64(r.IntN(3))
		}
	}
	return v
}

// leq reports whether a has seen nothing b has not.
func leq(a, b vv) bool {
	o := a.Compare(b)
	return o == meta.Before || o == meta.Equal
}

func TestVersionProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[meta.Order]int{}
	for i := range 5000 {
		a, b, c := randomVV(r), randomVV(r), randomVV(r)
		ab, ba := a.Merge(b), b.Merge(a)
		ord := a.Compare(b)
		seen[ord]++
		mirror := map[meta.Order]meta.Order{meta.Equal: meta.Equal, meta.Before: meta.After,
			meta.After: meta.Before, meta.Concurrent: meta.Concurrent}
		switch {
		case ab.Compare(ba) != meta.Equal:
			t.Fatalf("#%d: Merge not commutative: %v, %v", i, ab, ba)
		case a.Merge(a).Compare(a) != meta.Equal:
			t.Fatalf("#%d: Merge not idempotent on %v", i, a)
		case ab.Merge(b).Compare(ab) != meta.Equal:
			t.Fatalf("#%d: merging again changed %v", i, ab)
		case ab.Merge(c).Compare(a.Merge(b.Merge(c))) != meta.Equal:
			t.Fatalf("#%d: Merge not associative on %v %v %v", i, a, b, c)
		case !leq(a, ab) || !leq(b, ab):
			t.Fatalf("#%d: %v and %v not both ≤ their merge %v", i, a, b, ab)
		case b.Compare(a) != mirror[ord]:
			t.Fatalf("#%d: %v.Compare(%v) = %v but reverse = %v", i, a, b, ord, b.Compare(a))
		case (ord == meta.Before || ord == meta.Equal) && ab.Compare(b) != meta.Equal:
			t.Fatalf("#%d: a ≤ b but Merge(a, b) = %v ≠ b = %v", i, ab, b)
		case a.Bump("n1").Compare(a) != meta.After:
			t.Fatalf("#%d: Bump of %v is not after it", i, a)
		case ord == meta.Concurrent && (ab.Compare(a) != meta.After || ab.Compare(b) != meta.After):
			t.Fatalf("#%d: merge %v of concurrent %v, %v is not after both", i, ab, a, b)
		}
	}
	for _, o := range []meta.Order{meta.Equal, meta.Before, meta.After, meta.Concurrent} {
		if seen[o] == 0 {
			t.Errorf("random vectors never produced %v pairs", o)
		}
	}
}
