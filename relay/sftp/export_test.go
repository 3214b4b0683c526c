package sftp

import "github.com/escalefs/escalefs/relay"

// DropConnections closes the SSH connections of r's pool under it, as a
// server restart or a network failure would, leaving them in the pool.
func DropConnections(r relay.Relay) {
	s := r.(*Relay)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.idle {
		c.ssh.Close()
	}
}
