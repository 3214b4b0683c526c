// Package localdir connects the sync engine to a plain local directory, the
// folder of the headless `escalefs sync DIR` mode. It finds what changed on
// disk (Scan), notices when something may have changed (Watch), and puts
// what other nodes changed into the folder without ever clobbering a local
// edit (Install, Mkdir, SetMeta, Remove, Rename). It never writes to the
// cache: it compares the disk with the cache's view and reports, and the
// engine decides.
//
// # Paths
//
// Every path given to or returned by this package is relative to the
// folder's root and slash-separated, and is a valid cache path
// (cache.ValidPath). Names on disk that would not make a valid cache path
// are skipped with a logged warning. The root itself has no path.
//
// # Symbolic links
//
// Symbolic links are never followed: a symlink is reported (and installed)
// as a symlink with its target, and a path whose ancestor is a symlink is
// treated as not existing. Directories are opened one component at a time
// (os.Root with an identity check), so a directory swapped for a symlink
// while a scan runs is noticed, not followed.
//
// # Temporary files
//
// Install writes into a temporary file beside its target whose name starts
// with TempPrefix, then renames it into place. Scan, Watch and the
// cache-facing parts of this package ignore such names; CleanTemp removes
// the ones a crash left behind.
//
// # Concurrency
//
// A Dir is safe for concurrent use, but the engine should not run two
// operations on the same path at once: the "changed since" guards protect
// against the user's edits, not against the engine racing itself.
package localdir
