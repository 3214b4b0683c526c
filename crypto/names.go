package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Object names on the relay (docs/format.md). Every component is either
// fixed, random (node and blob IDs) or a sequence number: no path, file
// name, size, time or node name appears in a name.

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
