package sftp

import "github.com/escalefs/escalefs/relay"

// DropConnections closes the SSH connections of r's pool under it, as a
// server restart or a network failure would, leaving them in the pool.
func DropConnections(r relay.Relay) {
	r.(*Relay).pool.EachIdle(func(c *conn) { c.ssh.Close() })
}
