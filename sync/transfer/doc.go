// Package transfer moves file content to and from the relay as blobs
// (docs/format.md §8): small files together in one pack blob, large files
// split into parts. It holds no engine logic: it neither scans nor installs
// files, and it never decides which files go where.
//
// # Naming
//
// Every blob, a pack or a part, gets its own fresh random BlobID and is
// stored under layout.BlobName(writer, id), that is blobs/<node>/<id>
// without a part suffix. The order of a large file's parts is the order of
// proto.Change.Parts, and a crypto.BlobRef (which carries only the ID) is
// all a reader needs to find each part: the ".n" suffix of BlobName is not
// used by this package.
//
// # Memory and temporary files
//
// Uploads stream the plaintext through crypto.NewBlobWriter into a
// temporary file in the scratch directory and Put that file, so memory use
// does not grow with the content and a retried Put can send it again. The
// temporary file is removed whether the upload succeeds or not.
//
// # Downloads
//
// Downloads stream each blob once through crypto.OpenBlob, which checks its
// size and SHA-256 (and, when encrypted, every chunk). Content reaches the
// caller's writers before the blob's end has been checked, so a caller
// must write to temporary files and install them only when the download
// returned nil. When the relay calls back again after a broken connection,
// the blob is read from its start and the bytes already delivered are
// checked against what was delivered before, not delivered twice.
package transfer
