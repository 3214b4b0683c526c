// Package layout is the layout of an escalefs repository on its relay
// (docs/format.md §1), as restic's backend layout is for its repositories:
// the name of every object, and Parse, which tells what a listed name is.
// Every component of a name is fixed, random (node and blob IDs) or a
// sequence number: no path, file name, size, time or node name appears in
// one. Only the spelling these functions write is accepted, so that one
// object cannot be listed under two names.
package layout

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/escalefs/escalefs/crypto"
)

// Fixed names and directories.
const (
	// ConfigName is the repository's configuration, escale.json (§5).
	ConfigName = crypto.ConfigName
	// MovedName is the marker a migration leaves on the old relay (§12.14).
	MovedName = "moved"
	// NodesDir holds each node's records, BlobsDir each node's blobs.
	NodesDir = "nodes"
	BlobsDir = "blobs"
)

// NodeDir is the directory of node's records: nodes/<node>.
func NodeDir(node crypto.NodeID) string { return NodesDir + "/" + node.String() }

// LogDir is the directory of node's log: nodes/<node>/log.
func LogDir(node crypto.NodeID) string { return NodeDir(node) + "/log" }

// LogName is the name of record seq of node's log:
// nodes/<node>/log/<seq, 16 hex digits>.
func LogName(node crypto.NodeID, seq uint64) string {
	return fmt.Sprintf("%s/%016x", LogDir(node), seq)
}

// SnapshotName is the name of node's snapshot covering its log up to seq:
// nodes/<node>/snap/<seq, 16 hex digits>.
func SnapshotName(node crypto.NodeID, seq uint64) string {
	return fmt.Sprintf("%s/snap/%016x", NodeDir(node), seq)
}

// ForgetName is the name of writer's forget record about node:
// nodes/<writer>/forget/<node>.
func ForgetName(writer, node crypto.NodeID) string {
	return NodeDir(writer) + "/forget/" + node.String()
}

// BlobDir is the directory of node's blobs: blobs/<node>.
func BlobDir(node crypto.NodeID) string { return BlobsDir + "/" + node.String() }

// BlobName is the name of a blob written by node: blobs/<node>/<id>. Every
// blob (a pack, a part of a large file, a chunk blob) has its own ID.
func BlobName(node crypto.NodeID, id crypto.BlobID) string {
	return BlobDir(node) + "/" + id.String()
}

// Kind is what an object of the relay is.
type Kind uint8

// The kinds of object.
const (
	// Unknown: a name outside the layout, or not spelled as this package
	// writes it.
	Unknown Kind = iota
	Config
	Moved
	Log
	Snapshot
	Forget
	Blob
)

// String returns the kind's name, as log lines and errors give it.
func (k Kind) String() string {
	switch k {
	case Config:
		return "configuration"
	case Moved:
		return "moved marker"
	case Log:
		return "log record"
	case Snapshot:
		return "snapshot"
	case Forget:
		return "forget record"
	case Blob:
		return "blob"
	}
	return "unknown object"
}

// Object is what a name says of its object.
type Object struct {
	Kind Kind
	// Node wrote the object: a log record, a snapshot, a forget record or
	// a blob.
	Node crypto.NodeID
	// Seq is the sequence number of a log record or snapshot.
	Seq uint64
	// Forgotten is the node a forget record is about.
	Forgotten crypto.NodeID
	// Blob is a blob's ID.
	Blob crypto.BlobID
}

// Parse tells what the object name is; its Kind is Unknown for a name
// outside the layout or spelled otherwise than this package writes it.
func Parse(name string) Object {
	switch name {
	case ConfigName:
		return Object{Kind: Config}
	case MovedName:
		return Object{Kind: Moved}
	}
	parts := strings.Split(name, "/")
	var o Object
	switch {
	case len(parts) == 3 && parts[0] == BlobsDir:
		o = parseBlob(parts)
	case len(parts) == 4 && parts[0] == NodesDir:
		o = parseRecord(parts)
	}
	if o.Kind != Unknown && o.name() != name {
		return Object{} // upper-case hex, or a number with leading zeros
	}
	return o
}

func parseBlob(parts []string) Object {
	node, err1 := crypto.ParseNodeID(parts[1])
	id, err2 := crypto.ParseBlobID(parts[2])
	if err1 != nil || err2 != nil {
		return Object{}
	}
	return Object{Kind: Blob, Node: node, Blob: id}
}

func parseRecord(parts []string) Object {
	node, err := crypto.ParseNodeID(parts[1])
	if err != nil {
		return Object{}
	}
	switch parts[2] {
	case "log", "snap":
		seq, err := strconv.ParseUint(parts[3], 16, 64)
		if err != nil || len(parts[3]) != 16 {
			return Object{}
		}
		kind := Log
		if parts[2] == "snap" {
			kind = Snapshot
		}
		return Object{Kind: kind, Node: node, Seq: seq}
	case "forget":
		forgotten, err := crypto.ParseNodeID(parts[3])
		if err != nil {
			return Object{}
		}
		return Object{Kind: Forget, Node: node, Forgotten: forgotten}
	}
	return Object{}
}

// name is the name of o, as the functions above write it.
func (o Object) name() string {
	switch o.Kind {
	case Config:
		return ConfigName
	case Moved:
		return MovedName
	case Log:
		return LogName(o.Node, o.Seq)
	case Snapshot:
		return SnapshotName(o.Node, o.Seq)
	case Forget:
		return ForgetName(o.Node, o.Forgotten)
	case Blob:
		return BlobName(o.Node, o.Blob)
	}
	return ""
}
