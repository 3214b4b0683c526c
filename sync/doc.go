// Package sync is the escalefs engine: it keeps a local folder in step with
// the other nodes of a repository through a relay, following the protocol of
// docs/format.md §12.
//
// An Engine joins three things: the relay (relay.Relay, wrapped as
// relay/all does), the node's cache (cache.Store: its view of every path,
// the push queue, what it applied from each peer) and the local folder
// (Local: a plain directory for `escalefs sync`, the mount's backing store
// later). A round of the engine
//
//   - scans the folder and records what changed in the cache, queueing it;
//   - pushes the queue: content first (small files together in pack blobs,
//     large files in parts), then one sealed record of this node's log that
//     names it;
//   - pulls: lists the peers' logs, fetches the records it has not applied,
//     in order, and applies each change with sync/decide (installing files
//     atomically, never over a local edit, keeping conflict copies);
//   - acknowledges what it applied, in its next record;
//   - collects what every puller acknowledged: its blobs, then its records,
//     compacted into a snapshot for nodes that join later.
//
// Run does this continuously, woken by the folder's watcher and by a polling
// timer that speeds up after activity and slows down to Config.Refresh when
// idle. Round does it once, which is what `escalefs sync --once` and the
// tests use.
//
// Everything the engine must not forget is in the cache, committed before
// the relay is told: a record is sealed and stored in the cache's outbox in
// the same transaction that marks its changes pushed, and published (again,
// byte for byte) until the relay has it. A crash at any point therefore
// loses nothing and never publishes two different records under one name.
package sync
