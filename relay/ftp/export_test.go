package ftp

import (
	"time"

	"github.com/escalefs/escalefs/relay"
)

// SetIdleCheck changes how long a pooled connection may idle before it is
// checked with NOOP.
func SetIdleCheck(r relay.Relay, d time.Duration) { r.(*Relay).idleCheck = d }
