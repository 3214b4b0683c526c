package meta

import (
	"fmt"
	"strings"
)

// Perm is the state of one access modifier.
type Perm uint8

// The states of an access modifier. What Unset means (normally: as the
// repository's default) is the sync engine's decision.
const (
	PermUnset Perm = 0
	PermAllow Perm = 1
	PermDeny  Perm = 2
)

// Access holds Escale's per-file access modifiers as set on this node.
// Read is whether escalefs may read the local file, and so push it; Write is
// whether it may write it, and so let a pulled version replace it. The cache
// only stores them.
type Access struct {
	Read  Perm
	Write Perm
}

// String returns the modifiers in Escale's notation: "r+" or "r-" for Read,
// then "w+" or "w-" for Write, each left out when unset ("" when both are).
func (a Access) String() string {
	s := ""
	for _, f := range []struct {
		c byte
		p Perm
	}{{'r', a.Read}, {'w', a.Write}} {
		switch f.p {
		case PermAllow:
			s += string(f.c) + "+"
		case PermDeny:
			s += string(f.c) + "-"
		case PermUnset:
		default:
			s += string(f.c) + "?"
		}
	}
	return s
}

// AccessUpdate is a parsed access modifier string: the modifiers it names,
// to apply over an entry's current ones with Apply.
type AccessUpdate struct {
	Read, Write       Perm
	SetRead, SetWrite bool // whether the string named r, w
}

// Apply returns a with the update's modifiers set.
func (u AccessUpdate) Apply(a Access) Access {
	if u.SetRead {
		a.Read = u.Read
	}
	if u.SetWrite {
		a.Write = u.Write
	}
	return a
}

// ParseAccess parses access modifiers in Escale's notation: groups of the
// letters r and w, each group followed by "+" (allow), "-" (deny), "?"
// (unset) or nothing (allow), written together or separated by spaces or
// commas. "r-", "w+", "r-w+", "rw" (both allowed), "rw-" (both denied),
// "r? w-" are all valid. A letter named twice with different meanings, an
// unknown character or an empty string is an error naming the input.
func ParseAccess(s string) (AccessUpdate, error) {
	var u AccessUpdate
	bad := func(why string) (AccessUpdate, error) {
		return AccessUpdate{}, fmt.Errorf("access modifiers %q: %s; expected r or w, each followed by +, - or ? (e.g. r-, w+, rw, r+w-)", s, why)
	}
	t := strings.Map(func(r rune) rune {
		if r == ' ' || r == ',' || r == '\t' {
			return -1
		}
		return r
	}, strings.ToLower(s))
	if t == "" {
		return bad("empty")
	}
	for i := 0; i < len(t); {
		var letters []byte
		for i < len(t) && (t[i] == 'r' || t[i] == 'w') {
			letters = append(letters, t[i])
			i++
		}
		if len(letters) == 0 {
			return bad(fmt.Sprintf("unexpected %q", t[i:i+1]))
		}
		p := PermAllow
		if i < len(t) {
			switch t[i] {
			case '+':
				i++
			case '-':
				p = PermDeny
				i++
			case '?':
				p = PermUnset
				i++
			}
		}
		for _, l := range letters {
			set, perm := &u.SetRead, &u.Read
			if l == 'w' {
				set, perm = &u.SetWrite, &u.Write
			}
			if *set && *perm != p {
				return bad(fmt.Sprintf("%c given twice", l))
			}
			*set, *perm = true, p
		}
	}
	return u, nil
}
