package cache

import (
	"fmt"
	"strings"
)

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
