package sync

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/sync/layout"
)

// Moving a repository (docs/format.md §12.14): escalefs migrate copies every
// object of the repository to another relay and then leaves on the old one
// a sealed marker, layout.MovedName, that tells every node where the repository
// went. A node that lists the marker stops pulling from the old relay and
// follows it, or stops with an error naming the new relay.

// KindMoved is the kind the marker is sealed under, with the all-zero node
// ID and sequence number 0.
const KindMoved = "moved"

// maxMoved bounds what is read of the marker.
const maxMoved = 64 << 10

// Moved is the content of the marker: where the repository went.
type Moved struct {
	// URL is the new relay's URL: a user name but never a password.
	URL string
	// Time is the migrating node's clock when it wrote the marker.
	Time time.Time
	// Node is the migrating node.
	Node crypto.NodeID
	// Options are what a node needs, besides the URL and its own
	// credentials, to reach the new relay: the keys of MovedOptionKeys.
	// None is secret.
	Options map[string]string
}

// MovedOptionKeys are the relay options a marker may carry, under their
// configuration key names: where an S3 store is and which region it signs
// for, and the SSH host key the migrating node trusted. They are part of
// where the repository is, not secrets, and the seal makes them as
// trustworthy as the URL.
var MovedOptionKeys = []string{"s3-endpoint", "s3-region", "host-key-sha256"}

// maxMovedOption bounds an option's value.
const maxMovedOption = 1024

var (
	// ErrMoved means the repository moved to another relay. Errors
	// wrapping it are *MovedError, and also wrap ErrRepoChanged: a node
	// stops on them.
	ErrMoved = errors.New("the repository moved to another relay")
	// ErrBadMoved means the relay holds a marker that fails to open or
	// decode: forged, damaged or of another repository. It is not followed.
	ErrBadMoved = errors.New("the relay's moved marker is not valid")
)

// MovedError tells that the repository moved, and where.
type MovedError struct {
	Moved Moved
	// Hash is the SHA-256 of the marker's bytes on the relay.
	Hash [32]byte
}

func (e *MovedError) Error() string {
	return fmt.Sprintf("the repository moved to %s (escalefs migrate, run by node %s at %s)",
		e.Moved.URL, e.Moved.Node, e.Moved.Time.UTC().Format(time.RFC3339))
}

// Unwrap makes a MovedError both ErrMoved and ErrRepoChanged.
func (e *MovedError) Unwrap() []error { return []error{ErrMoved, ErrRepoChanged} }

// movedJSON is the marker's plaintext, members in this order.
type movedJSON struct {
	Version int               `json:"version"`
	URL     string            `json:"url"`
	Time    int64             `json:"time"`
	Node    string            `json:"node"`
	Options map[string]string `json:"options,omitempty"`
}

// movedVersion is the version of the marker's plaintext.
const movedVersion = 1

// movedContext is where the marker is sealed.
var movedContext = crypto.RecordContext{Kind: KindMoved}

// checkMovedOptions reports why o cannot be a marker's options: only the
// keys of MovedOptionKeys, each with a value of 1 to maxMovedOption bytes.
func checkMovedOptions(o map[string]string) error {
	for k, v := range o {
		if !slices.Contains(MovedOptionKeys, k) {
			return fmt.Errorf("option %q: expected one of %s", k, strings.Join(MovedOptionKeys, ", "))
		}
		if v == "" || len(v) > maxMovedOption {
			return fmt.Errorf("option %q: expected a value of 1 to %d bytes, not %d", k, maxMovedOption, len(v))
		}
	}
	return nil
}

// CheckMovedURL reports why u cannot be written in a marker: it must parse
// as a relay URL and hold no password.
func CheckMovedURL(u string) error {
	pu, err := relay.ParseURL(u)
	if err != nil {
		return err
	}
	if _, ok := pu.User.Password(); ok {
		return errors.New("the URL holds a password")
	}
	return nil
}

// SealMoved returns the bytes of a marker saying that repo moved to m.URL.
func SealMoved(repo *Repository, m Moved) ([]byte, error) {
	if err := CheckMovedURL(m.URL); err != nil {
		return nil, fmt.Errorf("moved marker: %w", err)
	}
	if err := checkMovedOptions(m.Options); err != nil {
		return nil, fmt.Errorf("moved marker: %w", err)
	}
	plain, err := json.Marshal(movedJSON{Version: movedVersion, URL: m.URL, Time: m.Time.UnixNano(), Node: m.Node.String(),
		Options: m.Options})
	if err != nil {
		return nil, err
	}
	plain = append(plain, '\n')
	return crypto.NewRecordSealer(repo.Keys, repo.ID, rand.Reader).Seal(movedContext, plain)
}

// OpenMoved opens the marker's bytes.
func OpenMoved(repo *Repository, sealed []byte) (Moved, error) {
	if len(sealed) > maxMoved {
		return Moved{}, fmt.Errorf("%w: larger than %d bytes", ErrBadMoved, maxMoved)
	}
	plain, err := crypto.NewRecordSealer(repo.Keys, repo.ID, rand.Reader).Open(movedContext, sealed)
	if err != nil {
		return Moved{}, fmt.Errorf("%w: %w", ErrBadMoved, err)
	}
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	var mj movedJSON
	if err := dec.Decode(&mj); err != nil {
		return Moved{}, fmt.Errorf("%w: %v", ErrBadMoved, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Moved{}, fmt.Errorf("%w: data after the JSON object", ErrBadMoved)
	}
	if mj.Version != movedVersion {
		return Moved{}, fmt.Errorf("%w: version %d (this escalefs reads version %d; upgrade escalefs)", ErrBadMoved, mj.Version, movedVersion)
	}
	node, err := crypto.ParseNodeID(mj.Node)
	if err != nil {
		return Moved{}, fmt.Errorf("%w: node: %v", ErrBadMoved, err)
	}
	if err := CheckMovedURL(mj.URL); err != nil {
		return Moved{}, fmt.Errorf("%w: url: %v", ErrBadMoved, err)
	}
	if err := checkMovedOptions(mj.Options); err != nil {
		return Moved{}, fmt.Errorf("%w: %v", ErrBadMoved, err)
	}
	return Moved{URL: mj.URL, Time: time.Unix(0, mj.Time), Node: node, Options: mj.Options}, nil
}

// ReadMoved reads and opens the relay's marker. A relay without one yields
// an error wrapping fs.ErrNotExist; a marker that fails to open, one
// wrapping ErrBadMoved.
func ReadMoved(ctx context.Context, r Getter, repo *Repository) (*MovedError, error) {
	data, err := relay.ReadAll(ctx, r.Get, layout.MovedName, maxMoved)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", layout.MovedName, err)
	}
	m, err := OpenMoved(repo, data)
	if err != nil {
		return nil, err
	}
	return &MovedError{Moved: m, Hash: sha256.Sum256(data)}, nil
}

// checkMoved reads the marker the listing showed, if any: a valid one stops
// the node (a *MovedError); one that is not valid is reported at every
// round and not followed.
func (e *Engine) checkMoved(ctx context.Context, oi *relay.ObjectInfo) error {
	if oi == nil {
		return nil
	}
	me, err := ReadMoved(ctx, e.r, e.cfg.Repo)
	switch {
	case errors.Is(err, ErrBadMoved):
		return fmt.Errorf("%w (forged by the relay, damaged, or of another repository): not followed; "+
			"syncing goes on here; if the repository did move, give this node the new relay with --relay", err)
	case err != nil:
		return err
	}
	e.log.Warn(me.Error())
	return me
}
