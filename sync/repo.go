package sync

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
)

// Repository is an unlocked repository: its public configuration and keys.
type Repository struct {
	Config *crypto.Config
	// Keys is nil for a repository without a secret.
	Keys *crypto.Keys
	ID   crypto.RepoID
	// Hash is the SHA-256 of escale.json as read; a node's cache is bound to
	// it.
	Hash [32]byte
	// Raw is escale.json as read, byte for byte; a node keeps it in its
	// cache so that a lost relay can be given back the same file (Fix).
	Raw []byte
	// Created is set when OpenRepository created the repository.
	Created bool
}

// RepoOptions configure OpenRepository.
type RepoOptions struct {
	// Create makes a new repository when the relay has none.
	Create bool
	// Encryption of a new repository; empty means age with a secret, off
	// without one.
	Encryption crypto.Encryption
	// KDF of a new passphrase repository; zero means crypto.DefaultKDF().
	KDF crypto.KDFParams
	// Check, if set, is given the relay's escale.json, parsed but not yet
	// unlocked: an error refuses the repository before any key is derived
	// (a node that joined a repository checks that it is still the one,
	// so that a relay cannot swap in another or make it run a costly key
	// derivation).
	Check func(cfg *crypto.Config, raw []byte) error
	// Rand is the randomness of a new repository (its ID, a passphrase's
	// salt); nil means crypto/rand. Tests give a fixed stream, for the
	// places where content is cut depend on the repository's ID.
	Rand io.Reader
}

// ErrNoRepository means the relay holds no escale.json.
var ErrNoRepository = errors.New("no escalefs repository on the relay")

// maxConfig bounds what is read of escale.json.
const maxConfig = 64 << 10

// Getter is what OpenRepository reads with.
type Getter interface {
	Get(ctx context.Context, name string, offset, length int64, fn func(io.Reader) error) error
}

// OpenRepository reads the relay's escale.json and unlocks it with secret.
// If there is none and opts.Create is set, it creates a repository first.
// A wrong passphrase or key fails with an error wrapping
// crypto.ErrWrongSecret.
func OpenRepository(ctx context.Context, r relay.Relay, secret crypto.Secret, opts RepoOptions) (*Repository, error) {
	data, err := readConfig(ctx, r)
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		if !opts.Create {
			return nil, fmt.Errorf("%s not found: %w", crypto.ConfigName, ErrNoRepository)
		}
		if data, created, err = createConfig(ctx, r, secret, opts); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("reading %s: %w", crypto.ConfigName, err)
	}
	cfg, err := crypto.ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", crypto.ConfigName, err)
	}
	if opts.Check != nil {
		if err := opts.Check(cfg, data); err != nil {
			return nil, err
		}
	}
	keys, err := cfg.Unlock(secret)
	if err != nil {
		return nil, err
	}
	return &Repository{Config: cfg, Keys: keys, ID: cfg.Repository, Hash: sha256.Sum256(data), Raw: data, Created: created}, nil
}

// ErrOtherRepository means the relay holds another repository than the one
// a node joined.
var ErrOtherRepository = errors.New("the relay holds another repository than the one this node joined")

// KeptConfig returns the copy of escale.json that the node's cache kept
// (see KeptRepository), without unlocking it.
func KeptConfig(store *cache.Store) ([]byte, error) {
	raw, _, err := keptConfig(store)
	return raw, err
}

// keptConfig returns the kept escale.json and the SHA-256 the cache is
// bound to.
func keptConfig(store *cache.Store) (raw, hash []byte, err error) {
	err = store.View(func(tx *cache.Tx) error {
		var ok bool
		var err error
		if raw, ok, err = tx.Meta(metaConfig); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("%s: %w", store.Path(), ErrNoKeptConfig)
		}
		hash, _, err = tx.Meta(cache.MetaConfigHash)
		return err
	})
	return raw, hash, err
}

func readConfig(ctx context.Context, r Getter) ([]byte, error) {
	data, err := relay.ReadAll(ctx, r.Get, crypto.ConfigName, maxConfig)
	if err == nil && len(data) > maxConfig {
		return nil, fmt.Errorf("%s is larger than %d bytes", crypto.ConfigName, maxConfig)
	}
	return data, err
}

// createConfig writes a new escale.json and reads it back: should another
// node have created the repository at the same moment, the one the relay
// kept is the repository, for both. Where the relay can create exclusively
// (relay.Creator), the second creation fails and its node joins the
// first's; elsewhere (FTP, Google Drive) the two may each read back their
// own, and the node that finds its escale.json replaced joins the other's
// at its first listing (see Engine's ErrRepoChanged).
func createConfig(ctx context.Context, r relay.Relay, secret crypto.Secret, opts RepoOptions) (_ []byte, created bool, err error) {
	enc := opts.Encryption
	if enc == "" {
		enc = crypto.EncryptionAge
		if secret.Kind() == crypto.SecretNone {
			enc = crypto.EncryptionOff
		}
	}
	kdf := opts.KDF
	if kdf == (crypto.KDFParams{}) {
		kdf = crypto.DefaultKDF()
	}
	random := opts.Rand
	if random == nil {
		random = rand.Reader
	}
	cfg, _, err := crypto.NewConfig(random, secret, enc, kdf)
	if err != nil {
		return nil, false, fmt.Errorf("creating the repository: %w", err)
	}
	data := cfg.Marshal()
	err = relay.ErrUnsupported
	if c, ok := relay.As[relay.Creator](r); ok {
		err = c.Create(ctx, crypto.ConfigName, relay.BytesPayload(data))
	}
	switch {
	case errors.Is(err, relay.ErrUnsupported):
		if err := r.Put(ctx, crypto.ConfigName, relay.BytesPayload(data)); err != nil {
			return nil, false, fmt.Errorf("writing %s: %w", crypto.ConfigName, err)
		}
	case errors.Is(err, fs.ErrExist):
		// Another node created the repository first: it is this one.
	case err != nil:
		return nil, false, fmt.Errorf("writing %s: %w", crypto.ConfigName, err)
	}
	back, err := readConfig(ctx, r)
	if err != nil {
		return nil, false, fmt.Errorf("reading back %s: %w", crypto.ConfigName, err)
	}
	return back, bytes.Equal(back, data), nil
}

// metaConfig is the cache's meta key of escale.json's bytes, as the node
// joined it (Repository.Raw).
const metaConfig = "sync/escale.json"

// keepConfig stores escale.json's bytes in the cache, once, so that the
// node can restore the file should the relay lose it.
func keepConfig(tx *cache.Tx, repo *Repository) error {
	if len(repo.Raw) == 0 || sha256.Sum256(repo.Raw) != repo.Hash {
		return nil
	}
	b, ok, err := tx.Meta(metaConfig)
	if err != nil || (ok && bytes.Equal(b, repo.Raw)) {
		return err
	}
	return tx.SetMeta(metaConfig, repo.Raw)
}

// ErrNoKeptConfig means a node's cache holds no copy of escale.json: the
// node last ran with a version that did not keep one.
var ErrNoKeptConfig = errors.New("the cache holds no copy of " + crypto.ConfigName)

// KeptRepository opens the repository whose escale.json the node's cache
// kept, with secret, without reading the relay: what `escalefs fix` restores
// a lost relay from. The copy must be the file the node joined (its
// SHA-256 is the one the cache is bound to).
func KeptRepository(store *cache.Store, secret crypto.Secret) (*Repository, error) {
	raw, hash, err := keptConfig(store)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	if !bytes.Equal(hash, sum[:]) {
		return nil, fmt.Errorf("the copy of %s in %s is not the one the node joined: %w", crypto.ConfigName, store.Path(), cache.ErrCorrupt)
	}
	cfg, err := crypto.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("the copy of %s in %s: %w", crypto.ConfigName, store.Path(), err)
	}
	keys, err := cfg.Unlock(secret)
	if err != nil {
		return nil, err
	}
	return &Repository{Config: cfg, Keys: keys, ID: cfg.Repository, Hash: sum, Raw: raw}, nil
}
