package proto

import (
	"time"

	"github.com/escalefs/escalefs/crypto"
)

// Forget is the plaintext of a record of kind "forget" (docs/format.md
// §12.13): its writer no longer waits for Node's acknowledgements, nor asks
// its peers to, as long as Node's log goes no further than UpTo.
type Forget struct {
	Version int           // MinFormatVersion to FormatVersion
	Node    crypto.NodeID // the node forgotten
	// UpTo is the highest sequence number of Node's log (records and
	// snapshots) the writer saw when it forgot Node: a record after it
	// means that Node is back.
	UpTo uint64
	Time time.Time // the writer's clock when writing; informational only
}

type wireForget struct {
	Version int    `json:"version"`
	Node    string `json:"node"`
	UpTo    uint64 `json:"up_to"`
	Time    *int64 `json:"time,omitempty"`
}

var forgetShape = &shape{members: map[string]*shape{"version": nil, "node": nil, "up_to": nil, "time": nil}}

// EncodeForget returns the plaintext of f.
func EncodeForget(f Forget) ([]byte, error) {
	if err := checkVersion("forget", f.Version); err != nil {
		return nil, err
	}
	if !validTime(f.Time) {
		return nil, malformed("forget: time out of the range of int64 nanoseconds")
	}
	return marshal(wireForget{Version: f.Version, Node: f.Node.String(), UpTo: f.UpTo, Time: timeOut(f.Time)})
}

// DecodeForget parses and validates the plaintext of a forget record, with
// the rules of a log's (docs/format.md §11.2).
func DecodeForget(b []byte) (Forget, error) {
	var w wireForget
	if err := unmarshal("forget", forgetShape, b, &w); err != nil {
		return Forget{}, err
	}
	if err := checkVersion("forget", w.Version); err != nil {
		return Forget{}, err
	}
	if why := checkNodeHex(w.Node); why != "" {
		return Forget{}, malformed("forget: %s", why)
	}
	node, err := crypto.ParseNodeID(w.Node)
	if err != nil {
		return Forget{}, malformed("forget: %v", err)
	}
	return Forget{Version: w.Version, Node: node, UpTo: w.UpTo, Time: timeIn(w.Time)}, nil
}
