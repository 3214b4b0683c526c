// Package versions keeps the old versions of a node's files: the content a
// pull replaced or deleted, the loser of a conflict, and (optionally) what
// a local write replaced. The store lives in the node's state directory,
// is never synced and never reaches the relay. A retention policy, as
// Syncthing's staggered versioning or Time Machine's, decides which
// versions stay.
package versions

import (
	"fmt"
	"slices"
	"time"
)

// Kind names a retention policy.
type Kind string

// The policies.
const (
	// Staggered keeps every version for an hour, then one per hour for a
	// day, one per day for 30 days and one per week up to MaxAge.
	Staggered Kind = "staggered"
	// Simple keeps the Keep newest versions of each file (and none older
	// than MaxAge, when it is set).
	Simple Kind = "simple"
	// Off keeps none.
	Off Kind = "off"
)

// Policy is a retention policy.
type Policy struct {
	Kind Kind
	// Keep is how many versions of each file Simple keeps.
	Keep int
	// MaxAge drops versions older than this (0: Staggered's default of
	// DefaultMaxAge; for Simple, no limit).
	MaxAge time.Duration
	// MaxSize caps the store's size in bytes: the oldest versions, of any
	// file, go first (0: no cap).
	MaxSize int64
}

// DefaultMaxAge is how long Staggered keeps versions unless told.
const DefaultMaxAge = 30 * 24 * time.Hour

// ParseKind checks a policy name.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case Staggered, Simple, Off:
		return k, nil
	}
	return "", fmt.Errorf("versions %q: expected staggered, simple or off", s)
}

// The steps of Staggered: versions younger than Until are kept one per
// Every (0: all of them).
var staggered = []struct{ Until, Every time.Duration }{
	{time.Hour, 0},
	{24 * time.Hour, time.Hour},
	{30 * 24 * time.Hour, 24 * time.Hour},
}

// Select decides, for the versions of one file, which to keep at now by
// the policy's age rules (MaxSize is the Store's, across files). It
// returns the versions to drop.
func (p Policy) Select(vs []Version, now time.Time) (drop []Version) {
	oldest := slices.SortedStableFunc(slices.Values(vs), func(a, b Version) int { return a.Time.Compare(b.Time) })
	maxAge := p.MaxAge
	if p.Kind == Staggered && maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	switch p.Kind {
	case Off:
		return oldest
	case Simple:
		for i, v := range oldest {
			newer := len(oldest) - 1 - i
			if (p.Keep > 0 && newer >= p.Keep) || (maxAge > 0 && now.Sub(v.Time) > maxAge) {
				drop = append(drop, v)
			}
		}
		return drop
	}
	// Staggered: each version falls into a bucket by its age; one version
	// is kept per bucket, the oldest of it, so that a bucket's version
	// stays as it ages into the next step.
	kept := make(map[int64]bool)
	for _, v := range oldest {
		age := now.Sub(v.Time)
		if age > maxAge {
			drop = append(drop, v)
			continue
		}
		every := 7 * 24 * time.Hour
		step := len(staggered)
		for i, s := range staggered {
			if age < s.Until {
				every, step = s.Every, i
				break
			}
		}
		if every == 0 {
			continue // the first hour: all of them
		}
		bucket := int64(step)<<56 | v.Time.UnixNano()/int64(every)
		if kept[bucket] {
			drop = append(drop, v)
			continue
		}
		kept[bucket] = true
	}
	return drop
}
