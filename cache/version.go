package cache

import "github.com/escalefs/escalefs/cache/meta"

// Version vectors are plain values of package meta.
type (
	VersionVector = meta.VersionVector
	Order         = meta.Order
)

// How two version vectors relate (meta.Order).
const (
	Equal      = meta.Equal
	Before     = meta.Before
	After      = meta.After
	Concurrent = meta.Concurrent
)
