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
	// KDF of a new passphrase repository; zero means crypto.DefaultKDF.
	KDF crypto.KDFParams
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
		if data, err = createConfig(ctx, r, secret, opts); err != nil {
			return nil, err
		}
		created = true
	} else if err != nil {
		return nil, fmt.Errorf("reading %s: %w", crypto.ConfigName, err)
	}
	cfg, err := crypto.ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", crypto.ConfigName, err)
	}
	keys, err := cfg.Unlock(secret)
	if err != nil {
		return nil, err
	}
	return &Repository{Config: cfg, Keys: keys, ID: cfg.Repository, Hash: sha256.Sum256(data), Created: created}, nil
}

func readConfig(ctx context.Context, r Getter) ([]byte, error) {
	var data []byte
	err := r.Get(ctx, crypto.ConfigName, 0, maxConfig+1, func(rd io.Reader) error {
		var err error
		data, err = io.ReadAll(rd)
		return err
	})
	if err == nil && len(data) > maxConfig {
		return nil, fmt.Errorf("%s is larger than %d bytes", crypto.ConfigName, maxConfig)
	}
	return data, err
}

// createConfig writes a new escale.json and reads it back: should another
// node have created the repository at the same moment, the one the relay
// kept is the repository, for both.
func createConfig(ctx context.Context, r relay.Relay, secret crypto.Secret, opts RepoOptions) ([]byte, error) {
	enc := opts.Encryption
	if enc == "" {
		enc = crypto.EncryptionAge
		if secret.Kind() == crypto.SecretNone {
			enc = crypto.EncryptionOff
		}
	}
	kdf := opts.KDF
	if kdf == (crypto.KDFParams{}) {
		kdf = crypto.DefaultKDF
	}
	cfg, _, err := crypto.NewConfig(rand.Reader, secret, enc, kdf)
	if err != nil {
		return nil, fmt.Errorf("creating the repository: %w", err)
	}
	data := cfg.Marshal()
	if err := r.Put(ctx, crypto.ConfigName, relay.BytesPayload(data)); err != nil {
		return nil, fmt.Errorf("writing %s: %w", crypto.ConfigName, err)
	}
	back, err := readConfig(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("reading back %s: %w", crypto.ConfigName, err)
	}
	if !bytes.Equal(back, data) {
		return back, nil
	}
	return data, nil
}
