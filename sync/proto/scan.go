package proto

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/escalefs/escalefs/crypto"
)

// shape describes what a JSON value may look like, as far as the checks
// that encoding/json does not make go: which member names an object may
// have. Types are left to encoding/json.
type shape struct {
	members map[string]*shape // an object with these members (nil shape: a scalar)
	anyKeys bool              // an object with arbitrary keys and scalar values
	elem    *shape            // an array of these
}

var (
	mapShape    = &shape{anyKeys: true}
	blobShape   = &shape{members: map[string]*shape{"id": nil, "size": nil, "sha256": nil}}
	packShape   = &shape{members: map[string]*shape{"blob": blobShape, "offset": nil, "length": nil}}
	chunkShape  = &shape{members: map[string]*shape{"id": nil, "length": nil, "blob": nil, "offset": nil}}
	chunksShape = &shape{members: map[string]*shape{"blobs": {elem: blobShape}, "list": {elem: chunkShape}}}

	changeShape = &shape{members: map[string]*shape{
		"op": nil, "path": nil, "from": nil, "version": mapShape, "size": nil, "mtime": nil,
		"mode": nil, "hash": nil, "target": nil, "access": nil, "pack": packShape,
		"parts": {elem: blobShape}, "chunks": chunksShape,
	}}
	requestShape = &shape{members: map[string]*shape{"path": nil, "hash": nil}}

	logShape = &shape{members: map[string]*shape{
		"version": nil, "node_name": nil, "mode": nil, "time": nil, "changes": {elem: changeShape},
		"acks": mapShape, "requests": {elem: requestShape},
	}}
	snapshotShape = &shape{members: map[string]*shape{
		"version": nil, "node_name": nil, "up_to": nil, "entries": {elem: changeShape}, "acks": mapShape,
	}}
)

// unmarshal decodes b, the plaintext of a record of kind what, into v
// after checking it against sh (see scanner).
func unmarshal(what string, sh *shape, b []byte, v any) error {
	if len(b) > crypto.MaxRecordSize {
		return malformed("%s: %d bytes, more than the %d-byte record limit", what, len(b), crypto.MaxRecordSize)
	}
	if !utf8.Valid(b) {
		return malformed("%s: not valid UTF-8", what)
	}
	if !json.Valid(b) {
		// Unmarshal says where and why.
		var x any
		err := json.Unmarshal(b, &x)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return malformed("%s: %s", what, strings.TrimPrefix(err.Error(), "json: "))
	}
	s := scanner{b: b}
	s.space()
	if s.i == len(b) || b[s.i] != '{' {
		return malformed("%s: not a JSON object", what)
	}
	if err := s.value(sh); err != nil {
		return malformed("%s: %s%v", what, s.where(), err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return malformed("%s: %s", what, strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// scanner walks valid JSON and refuses what encoding/json would let
// through: null, a member repeated in an object, a member name that is
// not written exactly as specified (encoding/json matches names
// case-insensitively) and a member the shape does not have.
type scanner struct {
	b    []byte
	i    int
	path []string // members and array indices leading to the current value
}

// where describes the current position for an error, e.g.
// "changes[3].pack: ".
func (s *scanner) where() string {
	if len(s.path) == 0 {
		return ""
	}
	return strings.Join(s.path, "") + ": "
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str skips a string starting at s.i and returns its raw contents.
func (s *scanner) str() []byte {
	start := s.i + 1
	for s.i = start; s.b[s.i] != '"'; s.i++ {
		if s.b[s.i] == '\\' {
			s.i++
		}
	}
	s.i++
	return s.b[start : s.i-1]
}

// value checks the value at s.i (valid JSON, so no bounds can be crossed
// before its end) against sh and skips it.
func (s *scanner) value(sh *shape) error {
	s.space()
	switch c := s.b[s.i]; c {
	case '{':
		if sh == nil || sh.elem != nil {
			return errors.New("unexpected object")
		}
		s.i++
		return s.object(sh)
	case '[':
		if sh == nil || sh.elem == nil {
			return errors.New("unexpected array")
		}
		s.i++
		return s.array(sh)
	case '"':
		s.str()
	case 'n':
		return errors.New("null is not allowed")
	case 't':
		s.i += len("true")
	case 'f':
		s.i += len("false")
	default: // a number
		for s.i < len(s.b) && strings.IndexByte("+-.0123456789eE", s.b[s.i]) >= 0 {
			s.i++
		}
	}
	return nil
}

// object scans the members of an object of shape sh, after its '{'.
func (s *scanner) object(sh *shape) error {
	seen := make(map[string]struct{})
	for {
		s.space()
		if s.b[s.i] == '}' {
			s.i++
			return nil
		}
		if s.b[s.i] == ',' {
			s.i++
			s.space()
		}
		key := string(s.str())
		if err := sh.checkKey(key, seen); err != nil {
			return err
		}
		s.space()
		s.i++ // ':'
		var sub *shape
		if !sh.anyKeys {
			sub = sh.members[key]
		}
		s.path = append(s.path, "."+key)
		if len(s.path) == 1 {
			s.path[0] = key
		}
		if err := s.value(sub); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
		s.space()
	}
}

// checkKey checks a member's name against sh, and that the object has it
// once (seen: the names before it).
func (sh *shape) checkKey(key string, seen map[string]struct{}) error {
	if sh.anyKeys {
		if strings.IndexByte(key, '\\') >= 0 {
			return fmt.Errorf("key %q: escapes are not allowed in keys", key)
		}
	} else if _, ok := sh.members[key]; !ok {
		return fmt.Errorf("unknown field %q", key)
	}
	if _, dup := seen[key]; dup {
		return fmt.Errorf("member %q repeated", key)
	}
	seen[key] = struct{}{}
	return nil
}

// array scans the elements of an array of shape sh, after its '['.
func (s *scanner) array(sh *shape) error {
	for n := 0; ; n++ {
		s.space()
		if s.b[s.i] == ']' {
			s.i++
			return nil
		}
		if s.b[s.i] == ',' {
			s.i++
		}
		s.path = append(s.path, "["+strconv.Itoa(n)+"]")
		if err := s.value(sh.elem); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
	}
}
