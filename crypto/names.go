package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Object names on the relay (docs/format.md). Every component is either
// fixed, random (node and blob IDs) or a sequence number: no path, file
// name, size, time or node name appears in a name.

// LogName is the name of record seq of node's log.
func LogName(node NodeID, seq uint64) string {
	return fmt.Sprintf("nodes/%s/log/%016x", node, seq)
}

// LogDir is the directory of node's log.
func LogDir(node NodeID) string { return "nodes/" + node.String() + "/log" }

// ParseLogName returns the node and sequence number of a log record name.
func ParseLogName(name string) (NodeID, uint64, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "nodes" || parts[2] != "log" || len(parts[3]) != 16 {
		return NodeID{}, 0, fmt.Errorf("%q is not a log record name (nodes/<node>/log/<16 hex digits>)", name)
	}
	node, err := ParseNodeID(parts[1])
	if err != nil {
		return NodeID{}, 0, err
	}
	seq, err := strconv.ParseUint(parts[3], 16, 64)
	if err != nil {
		return NodeID{}, 0, fmt.Errorf("%q is not a log record name: bad sequence number", name)
	}
	// Only the spelling LogName writes: with upper-case hex, one record
	// could be listed under two names.
	if LogName(node, seq) != name {
		return NodeID{}, 0, fmt.Errorf("%q is not a log record name: expected lower-case hex", name)
	}
	return node, seq, nil
}

// BlobName is the name of a blob written by node. Every blob — a file, a
// pack or one part of a large file — has its own ID; a file's parts are
// ordered by the record that lists them.
func BlobName(node NodeID, id BlobID) string {
	return "blobs/" + node.String() + "/" + id.String()
}

// TmpDir is where node stages objects being uploaded.
func TmpDir(node NodeID) string { return "tmp/" + node.String() }

// KeyedName returns an opaque name component for data in a namespace:
// the first 128 bits of HMAC-SHA256 under the names subkey, in hex. The
// same data gives the same name on every node of the repository, and the
// relay cannot tell what it stands for. Without a secret it falls back to
// an unkeyed SHA-256, which hides nothing from someone who can guess data.
func (k *Keys) KeyedName(namespace string, data []byte) string {
	var sum []byte
	if k == nil {
		h := sha256.New()
		h.Write([]byte("escalefs/1 name\x00" + namespace + "\x00"))
		h.Write(data)
		sum = h.Sum(nil)
	} else {
		m := hmac.New(sha256.New, k.names[:])
		m.Write([]byte(namespace + "\x00"))
		m.Write(data)
		sum = m.Sum(nil)
	}
	return hex.EncodeToString(sum[:16])
}
