package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/escalefs/escalefs/cache"
	escfs "github.com/escalefs/escalefs/fs"
	"github.com/escalefs/escalefs/internal/units"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/localdir"
	"github.com/escalefs/escalefs/versions"
)

// The status file: a running escalefs sync or mount publishes its node's
// status in its state directory, since no other process can read the cache
// it holds. It is written whole (a temporary file renamed over it) when the
// node starts, when the engine reports a change (at most once per
// statusWriteEvery, and only when something but the time of the last sync
// changed, or that time is statusSyncEvery old) and when the node stops.
const (
	statusFileName    = "status.json"
	statusFileVersion = 1
	statusWriteEvery  = time.Second
	statusSyncEvery   = time.Minute
	// statusLockTimeout is how long escalefs status waits for the cache of
	// a node: a running node holds it, and never lets go.
	statusLockTimeout = 200 * time.Millisecond
)

// statusFile is the content of status.json. Its fields only grow; a reader
// ignores what it does not know.
type statusFile struct {
	Version int    `json:"version"`
	Command string `json:"command"` // "sync" or "mount"
	Once    bool   `json:"once,omitzero"`
	PID     int    `json:"pid"`
	// Folder is the folder (sync) or mountpoint (mount) that keys the
	// state directory; Files is where a mount's files live.
	Folder   string    `json:"folder"`
	Files    string    `json:"files,omitzero"`
	Relay    string    `json:"relay"` // without credentials
	Node     string    `json:"node"`
	NodeID   string    `json:"node_id"`
	Mode     string    `json:"mode"`
	Started  time.Time `json:"started"`
	Stopped  time.Time `json:"stopped,omitzero"` // zero while it runs (or if it was killed)
	StopErr  string    `json:"stop_error,omitzero"`
	Queue    queueJSON `json:"queue"`
	LastSync time.Time `json:"last_sync,omitzero"`
	Failing  bool      `json:"failing,omitzero"`
	LastErr  string    `json:"last_error,omitzero"`
	LastErrT time.Time `json:"last_error_at,omitzero"`
	// FailingSince is when the rounds started failing; RelayState is
	// "unreachable" or "full" when the relay is so.
	FailingSince time.Time `json:"failing_since,omitzero"`
	RelayState   string    `json:"relay_state,omitzero"`
	Session      statsJSON `json:"session"` // since Started
	// RelayUsage is what the repository held on the relay at the node's
	// last listing, in bytes (absent before the first); Quota is its disk
	// quota (absent: none).
	RelayUsage *int64 `json:"relay_usage,omitempty"`
	Quota      int64  `json:"quota,omitzero"`
	// Peers are the other nodes seen, as of the node's last round.
	Peers []peerJSON `json:"peers,omitempty"`
	// Transfers are the uploads and downloads under way; Incoming is what
	// the pull under way has yet to apply.
	Transfers []transferJSON `json:"transfers,omitempty"`
	Incoming  queueJSON      `json:"incoming,omitzero"`
	// Unpushable are the files the node can never push as things stand.
	Unpushable []unpushableJSON `json:"unpushable,omitempty"`
	// NoRoom are the pulled files that wait for room on the local disk.
	NoRoom []noRoomJSON `json:"no_room,omitempty"`
	// Waiting are the files whose content the node asked its peers for.
	Waiting []waitingJSON `json:"waiting,omitempty"`
	// MassChange is the last pull of this run that replaced or deleted
	// most of the folder's files.
	MassChange *massChangeJSON `json:"mass_change,omitempty"`
}

// massChangeJSON is a pull that replaced or deleted most of the folder's
// files, in status.json and escalefs status --json.
type massChangeJSON struct {
	Node     string    `json:"node"`
	Replaced int       `json:"replaced"`
	Deleted  int       `json:"deleted"`
	Files    int       `json:"files"`
	At       time.Time `json:"at"`
}

// waitingJSON is a file whose content the node asked its peers for (the
// relay lost or damaged it), in status.json and escalefs status --json.
type waitingJSON struct {
	Path  string    `json:"path"`
	Since time.Time `json:"since,omitzero"` // when it was first asked for
}

// noRoomJSON is a pulled file that waits for room on the local disk.
type noRoomJSON struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Need int64  `json:"need"` // the free bytes its download needs
	Free int64  `json:"free"` // the free bytes when it was last tried
}

// unpushableJSON is a file that can never be pushed as things stand, in
// status.json and escalefs status --json.
type unpushableJSON struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Reason string `json:"reason"`
}

func toUnpushableJSON(us []escsync.Unpushable) []unpushableJSON {
	var out []unpushableJSON
	for _, u := range us {
		out = append(out, unpushableJSON{Path: u.Path, Size: u.Size, Reason: u.Reason})
	}
	return out
}

// transferJSON is a transfer under way in status.json.
type transferJSON struct {
	Up   bool   `json:"up"`
	What string `json:"what"`
	Done int64  `json:"done"`
	Size int64  `json:"size"`
}

func toTransfersJSON(trs []escsync.Transfer) []transferJSON {
	var out []transferJSON
	for _, t := range trs {
		out = append(out, transferJSON{Up: t.Up, What: t.What, Done: t.Done, Size: t.Size})
	}
	return out
}

// peerJSON is a peer in status.json and in escalefs status --json.
type peerJSON struct {
	ID       string    `json:"id"`
	Name     string    `json:"name,omitzero"`
	Mode     string    `json:"mode,omitzero"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	Behind   int       `json:"behind"` // this node's records it has not acknowledged
}

func toPeersJSON(peers []escsync.Peer) []peerJSON {
	var out []peerJSON
	for _, p := range peers {
		out = append(out, peerJSON{ID: p.ID, Name: p.Name, Mode: string(p.Mode), LastSeen: p.LastSeen, Behind: p.Behind})
	}
	return out
}

type queueJSON struct {
	Files   int   `json:"files"`
	Bytes   int64 `json:"bytes"`
	Records int   `json:"records,omitzero"`
}

type statsJSON struct {
	FilesPushed int   `json:"files_pushed"`
	BytesPushed int64 `json:"bytes_pushed"`
	FilesPulled int   `json:"files_pulled"`
	BytesPulled int64 `json:"bytes_pulled"`
	Conflicts   int   `json:"conflicts"`
}

func toQueueJSON(q escsync.Queue) queueJSON {
	return queueJSON{Files: q.Files, Bytes: q.Bytes, Records: q.Records}
}

func (q queueJSON) queue() escsync.Queue {
	return escsync.Queue{Files: q.Files, Bytes: q.Bytes, Records: q.Records}
}

// statusSource is what the publisher reads the status from: the engine.
type statusSource interface {
	Status() (escsync.Status, error)
}

// statusPublisher keeps a node's status.json up to date.
type statusPublisher struct {
	path string
	log  *slog.Logger
	kick chan struct{}
	quit chan struct{}
	done chan struct{}

	mu      sync.Mutex // serializes publish
	src     statusSource
	base    statusFile // the fields fixed at start
	written statusFile // as last written
	failed  bool       // a write failed (logged once)
}

func newStatusPublisher(state string, log *slog.Logger) *statusPublisher {
	return &statusPublisher{
		path: filepath.Join(state, statusFileName),
		log:  log,
		kick: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
}

// notify tells the publisher that the status may have changed; it never
// blocks (escsync.Config.OnStatus).
func (p *statusPublisher) notify() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// start writes the first status and keeps it up to date until stop.
func (p *statusPublisher) start(src statusSource, base statusFile) {
	base.Version = statusFileVersion
	base.PID = os.Getpid()
	base.Started = time.Now()
	p.src, p.base = src, base
	p.publish(false, nil)
	go p.loop()
}

func (p *statusPublisher) loop() {
	defer close(p.done)
	for {
		select {
		case <-p.quit:
			return
		case <-p.kick:
		}
		p.publish(false, nil)
		// Throttle: the kicks of the next interval make one write.
		t := time.NewTimer(statusWriteEvery)
		select {
		case <-p.quit:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// stop writes the final status, with the error the node stops on (nil: a
// clean stop; the engine's own fatal error is added if it had one).
func (p *statusPublisher) stop(err error) {
	close(p.quit)
	<-p.done
	p.publish(true, err)
}

func (p *statusPublisher) publish(final bool, stopErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.base
	st, err := p.src.Status()
	if err != nil {
		p.log.Debug("reading the node's status", "err", err)
		st.Queue = p.written.Queue.queue() // the queue as last known
	}
	f.Queue = toQueueJSON(st.Queue)
	f.LastSync = st.LastSync
	f.Failing = st.Failing
	if st.LastError != nil {
		f.LastErr, f.LastErrT = st.LastError.Error(), st.LastErrorAt
	}
	if st.RelayUsage >= 0 {
		u := st.RelayUsage
		f.RelayUsage = &u
	} else if p.written.RelayUsage != nil {
		f.RelayUsage = p.written.RelayUsage
	}
	f.Quota = st.Quota
	f.Unpushable = toUnpushableJSON(st.Unpushable)
	f.NoRoom = nil
	for _, n := range st.NoRoom {
		f.NoRoom = append(f.NoRoom, noRoomJSON{Path: n.Path, Size: n.Size, Need: n.Need, Free: n.Free})
	}
	f.Waiting = nil
	for _, w := range st.Waiting {
		f.Waiting = append(f.Waiting, waitingJSON{Path: w.Path, Since: w.Since})
	}
	if m := st.MassChange; m != nil {
		f.MassChange = &massChangeJSON{Node: m.Node, Replaced: m.Replaced, Deleted: m.Deleted, Files: m.Files, At: m.At}
	}
	f.FailingSince, f.RelayState = st.FailingSince, string(st.Relay)
	if !final {
		f.Transfers, f.Incoming = toTransfersJSON(st.Transfers), toQueueJSON(st.Incoming)
	}
	if err == nil {
		f.Peers = toPeersJSON(st.Peers)
	} else {
		f.Peers = p.written.Peers
	}
	s := st.Stats
	f.Session = statsJSON{FilesPushed: s.FilesPushed, BytesPushed: s.BytesPushed, FilesPulled: s.FilesPulled,
		BytesPulled: s.BytesPulled, Conflicts: s.Conflicts}
	if final {
		f.Stopped = time.Now()
		if stopErr == nil {
			stopErr = st.Stopped
		}
		if stopErr != nil {
			f.StopErr = stopErr.Error()
		}
	} else if p.written.Version != 0 {
		same := f
		same.LastSync = p.written.LastSync
		if sameUsage(f.RelayUsage, p.written.RelayUsage) {
			same.RelayUsage = p.written.RelayUsage
		}
		if reflect.DeepEqual(same, p.written) && f.LastSync.Sub(p.written.LastSync) < statusSyncEvery {
			return
		}
	}
	if err := writeStatusFile(p.path, f); err != nil {
		if !p.failed {
			p.failed = true
			p.log.Warn("writing the node's status file; escalefs status may show old information", "err", err)
		}
		return
	}
	p.written = f
}

// writeStatusFile replaces path with f, atomically.
func writeStatusFile(path string, f statusFile) error { return writeJSONFile(path, f) }

// writeJSONFile replaces path with v as indented JSON (mode 0600),
// atomically: readers see the old file or the new one, never a part. It
// does not sync: losing the files it writes to a crash costs a status
// shown late or a move's copy made again, which skips what is there.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// readStatusFile reads the status file of the state directory state; it
// returns nil, nil if there is none.
func readStatusFile(state string) (*statusFile, error) {
	b, err := os.ReadFile(filepath.Join(state, statusFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f statusFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(state, statusFileName), err)
	}
	return &f, nil
}

// sameUsage reports whether two relay usages are equal (both unknown, or
// the same number of bytes).
func sameUsage(a, b *int64) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [PATH...]",
		Short: "Show what the nodes of this machine are doing and what they have yet to push",
		Long: `Status shows, for the folder or mountpoint PATH (or a path inside one), or for
every node of this machine when no PATH is given: whether escalefs sync or
mount runs for it (with its process ID) and whether it is mounted, the
node's name and relay, what waits to be pushed (files and bytes), when it
last synchronized and what went wrong last.

What waits to be pushed is kept on disk, in the node's state directory
($XDG_STATE_HOME/escalefs, by default ~/.local/state/escalefs): a node that
stopped before it could push, because the relay failed or its --stop-grace
ran out, pushes it when it starts again.`,
		Example: "  escalefs status\n  escalefs status ~/Sync\n  escalefs status --json | jq '.[].queue'",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatus(cmd.Context(), g, args, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array with one object per node")
	return cmd
}

// nodeReport is what escalefs status found out about one node.
type nodeReport struct {
	State   string
	File    *statusFile // nil if the node never wrote one
	FileErr error       // why status.json could not be read
	Running bool
	PID     int  // of the running process, 0 if unknown
	Mounted bool // a FUSE filesystem is mounted on the folder
	// Queue is what waits to be pushed: from the cache when no process
	// runs, else as the process last published it. QueueFrom says which.
	Queue     *escsync.Queue
	QueueFrom string
	CacheErr  error // why the cache could not be read
	NodeID    string
	// Conflicts are the conflict copies in the node's folder, as paths
	// from its root (at most maxConflictsListed); ConflictCount counts
	// them all.
	Conflicts     []string
	ConflictCount int
	// Peers are the other nodes seen: from the cache when no process
	// runs, else as last published.
	Peers []peerJSON
	// Versions is what the node's version store holds; nil when it has
	// none.
	Versions *versionsJSON
}

// versionsJSON is what a node's version store holds, in escalefs status
// --json.
type versionsJSON struct {
	Count  int       `json:"count"`
	Bytes  int64     `json:"bytes"`
	Oldest time.Time `json:"oldest,omitzero"`
}

// problem says why the node is not well, for the exit status of escalefs
// status: it is running and its rounds fail, it stopped on an error, or it
// holds files it can never push; "" when none of these is so.
func (r *nodeReport) problem() string {
	f := r.File
	switch {
	case f == nil:
		return ""
	case r.current() && f.Failing:
		return "failing: " + f.LastErr
	case !r.Running && f.StopErr != "":
		return "stopped on an error: " + f.StopErr
	case len(f.NoRoom) == 1:
		return "1 pulled file waits for room on the local disk: " + f.NoRoom[0].Path
	case len(f.NoRoom) > 1:
		return fmt.Sprintf("%d pulled files wait for room on the local disk", len(f.NoRoom))
	case len(f.Unpushable) == 1:
		return "1 file can never be pushed: " + f.Unpushable[0].Path
	case len(f.Unpushable) > 1:
		return fmt.Sprintf("%d files can never be pushed", len(f.Unpushable))
	}
	return ""
}

// maxConflictsListed bounds the conflict copies status names.
const maxConflictsListed = 20

// folder returns the node's folder or mountpoint, or "" if unknown.
func (r *nodeReport) folder() string {
	if r.File != nil {
		return r.File.Folder
	}
	return ""
}

// current reports whether the status file is that of the running process.
func (r *nodeReport) current() bool {
	return r.File != nil && r.Running && r.File.Stopped.IsZero() && (r.PID == 0 || r.PID == r.File.PID)
}

func runStatus(ctx context.Context, g *globals, paths []string, asJSON bool) error {
	root, err := stateRoot()
	if err != nil {
		return err
	}
	var states []string
	if len(paths) == 0 {
		if states, err = allStateDirs(root); err != nil {
			return err
		}
		if len(states) == 0 && asJSON {
			fmt.Fprintln(g.stdout, "[]")
			return nil
		}
		if len(states) == 0 {
			fmt.Fprintf(g.stdout, "no escalefs node on this machine (nothing in %s): start one with "+
				"escalefs sync --relay URL --key-file FILE DIR, or escalefs mount with the same flags and a MOUNTPOINT\n", root)
			return nil
		}
	}
	for _, p := range paths {
		found, err := pathStateDirs(root, p)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			abs := resolvePath(p)
			return fmt.Errorf("no escalefs node keeps %s in step (no state directory for it or a folder above it in %s): "+
				"start one with escalefs sync --relay URL --key-file FILE %s, or mount one there with escalefs mount "+
				"--relay URL --key-file FILE %s", abs, root, abs, abs)
		}
		for _, s := range found {
			if !slices.Contains(states, s) {
				states = append(states, s)
			}
		}
	}
	mounts := fuseMounts()
	reports := make([]*nodeReport, 0, len(states))
	for _, s := range states {
		reports = append(reports, inspectNode(s, mounts))
	}
	if len(paths) == 0 {
		slices.SortStableFunc(reports, func(a, b *nodeReport) int { return strings.Compare(a.folder(), b.folder()) })
	}
	now := time.Now()
	if asJSON {
		if err := printJSON(g, reports); err != nil {
			return err
		}
		return statusExit(reports)
	}
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(g.stdout)
		}
		printReport(g, r, now)
	}
	if f, ok := g.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		showTransfers(ctx, f, reports)
	}
	return statusExit(reports)
}

// statusExit is the outcome of escalefs status: exitUnsynced when a node
// has a problem (nodeReport.problem), nil otherwise.
func statusExit(reports []*nodeReport) error {
	for _, r := range reports {
		if r.problem() != "" {
			return &exitError{code: exitUnsynced}
		}
	}
	return nil
}

// stateDirName matches the name of a node's state directory:
// <repository ID>-<folder key>.
var stateDirName = regexp.MustCompile(`^[0-9a-zA-Z]+-[0-9a-f]{8}$`)

// allStateDirs lists the state directories of the nodes under root.
func allStateDirs(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, d := range ents {
		if !d.IsDir() || !stateDirName.MatchString(d.Name()) {
			continue
		}
		p := filepath.Join(root, d.Name())
		for _, f := range []string{"cache.db", statusFileName} {
			if _, err := os.Stat(filepath.Join(p, f)); err == nil {
				dirs = append(dirs, p)
				break
			}
		}
	}
	return dirs, nil
}

// pathStateDirs finds the state directories of the nodes whose folder or
// mountpoint is p or, if none, the nearest folder above p that has one
// whose status file names it (the key is a short hash: a match above p is
// taken only when confirmed).
func pathStateDirs(root, p string) ([]string, error) {
	abs := resolvePath(p)
	for d := abs; ; {
		states, err := folderStateDirs(root, d)
		if err != nil {
			return nil, err
		}
		if d != abs {
			states = slices.DeleteFunc(states, func(s string) bool {
				f, err := readStatusFile(s)
				return err != nil || f == nil || f.Folder != d
			})
		}
		if len(states) > 0 {
			return states, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return nil, nil
		}
		d = parent
	}
}

// inspectNode finds out what state says about its node. Whether a process
// runs for it is told by the cache's lock, which a running node holds:
// a pid in a file may be stale.
func inspectNode(state string, mounts map[string]bool) *nodeReport {
	r := &nodeReport{State: state}
	r.File, r.FileErr = readStatusFile(state)
	store, err := cache.Open(filepath.Join(state, "cache.db"), cache.Options{ReadOnly: true, Timeout: statusLockTimeout})
	switch {
	case errors.Is(err, cache.ErrInUse):
		r.Running = true
		var iu *cache.InUseError
		if errors.As(err, &iu) {
			r.PID = iu.PID
		}
		if r.PID == 0 && r.File != nil && r.File.Stopped.IsZero() && processAlive(r.File.PID) {
			r.PID = r.File.PID
		}
	case errors.Is(err, fs.ErrNotExist):
		// The node stopped before it made its cache.
	case err != nil:
		r.CacheErr = err
	default:
		q, err := escsync.ReadQueue(store)
		if err != nil {
			r.CacheErr = err
		} else {
			r.Queue, r.QueueFrom = &q, "cache"
		}
		if peers, err := escsync.ReadPeers(store); err == nil {
			r.Peers = toPeersJSON(peers)
		}
		_ = store.View(func(tx *cache.Tx) error {
			if b, ok, err := tx.Meta(cache.MetaNodeID); err == nil && ok {
				r.NodeID = string(b)
			}
			return nil
		})
		store.Close()
	}
	if r.Queue == nil && r.File != nil {
		q := r.File.Queue.queue()
		r.Queue, r.QueueFrom = &q, "file"
	}
	if r.NodeID == "" && r.File != nil {
		r.NodeID = r.File.NodeID
	}
	if r.Peers == nil && r.File != nil {
		r.Peers = r.File.Peers
	}
	if f := r.folder(); f != "" {
		r.Mounted = mounts[f]
	}
	r.findConflicts()
	r.readVersions()
	return r
}

// readVersions sums the node's version store, if it has one.
func (r *nodeReport) readVersions() {
	s, err := versions.Open(filepath.Join(r.State, "versions"), versions.Options{Shared: true})
	if err != nil {
		return // none
	}
	if u, err := s.Usage(); err == nil {
		r.Versions = &versionsJSON{Count: u.Versions, Bytes: u.Bytes, Oldest: u.Oldest}
	}
}

// findConflicts lists the conflict copies in the node's files: its folder,
// or a mount's files directory.
func (r *nodeReport) findConflicts() {
	f := r.File
	if f == nil {
		return
	}
	root := f.Folder
	if f.Files != "" {
		root = f.Files
	}
	if root == "" {
		return
	}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable or gone: not ours to report here
		}
		if !localdir.IsConflictName(d.Name()) {
			return nil
		}
		r.ConflictCount++
		if len(r.Conflicts) < maxConflictsListed {
			rel, _ := filepath.Rel(root, p)
			r.Conflicts = append(r.Conflicts, filepath.ToSlash(rel))
		}
		if d.IsDir() {
			return fs.SkipDir
		}
		return nil
	})
}

// processAlive reports whether a process with ID pid exists.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// fuseMounts returns the mountpoints of the FUSE filesystems mounted on
// this machine; none where there is none.
func fuseMounts() map[string]bool {
	mounts := make(map[string]bool)
	for mnt, fstype := range escfs.Mounts() {
		if fstype == "fuse" || strings.HasPrefix(fstype, "fuse.") {
			mounts[mnt] = true
		}
	}
	return mounts
}

func printReport(g *globals, r *nodeReport, now time.Time) {
	p := &reportPrinter{w: g.stdout, r: r, f: r.File, now: now}
	p.status()
	p.identity()
	p.queue()
	p.lastRun()
	p.peers()
	p.work()
	p.attention()
	p.line("state", "%s", r.State)
}

// reportPrinter prints one node's report, one labelled line per fact.
type reportPrinter struct {
	w   io.Writer
	r   *nodeReport
	f   *statusFile // nil for a node that never wrote one
	now time.Time
}

// line prints a labelled value; a value of several lines (errors joined)
// is indented under the first.
func (p *reportPrinter) line(label, format string, args ...any) {
	v := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "\n"+strings.Repeat(" ", 14))
	fmt.Fprintf(p.w, "  %-11s %s\n", label+":", v)
}

// status prints the folder and whether the node runs.
func (p *reportPrinter) status() {
	r, f, now := p.r, p.f, p.now
	if folder := r.folder(); folder != "" {
		fmt.Fprintln(p.w, folder)
	} else {
		fmt.Fprintf(p.w, "%s (folder unknown: the node has not run since escalefs wrote status files)\n", r.State)
	}
	command := "command unknown" // a node that never wrote a status file
	if f != nil {
		command = f.Command
		if f.Once {
			command += " --once"
		}
	}
	if r.Running {
		p.line("status", "%s", p.running(command))
		return
	}
	s := "not running"
	if f != nil {
		switch {
		case !f.Stopped.IsZero():
			s += fmt.Sprintf(" (last ran as %s, pid %d, stopped %s)", command, f.PID, when(f.Stopped, now))
		default:
			s += fmt.Sprintf(" (last ran as %s, pid %d, which ended without stopping cleanly)", command, f.PID)
		}
	}
	p.line("status", "%s", s)
	if r.Mounted {
		p.line("mount", "still mounted, but no process serves it: unmount it with fusermount -u %s", r.folder())
	}
}

// running says how a running node runs.
func (p *reportPrinter) running(command string) string {
	r, f := p.r, p.f
	pid := "pid unknown"
	if r.PID > 0 {
		pid = "pid " + strconv.Itoa(r.PID)
	}
	s := fmt.Sprintf("running (%s, %s)", command, pid)
	if f != nil && f.Command == "mount" {
		if r.Mounted {
			s += ", mounted"
		} else {
			s += ", not mounted"
		}
	}
	if r.current() {
		s += relayStateString(f, r.Queue, p.now)
	}
	return s
}

// identity prints the node, its relay and its files.
func (p *reportPrinter) identity() {
	r, f := p.r, p.f
	if f != nil {
		p.line("node", "%s (id %s, mode %s)", f.Node, r.NodeID, f.Mode)
		p.line("relay", "%s", f.Relay)
		if f.Files != "" {
			p.line("files", "%s", f.Files)
		}
	} else if r.NodeID != "" {
		p.line("node", "id %s", r.NodeID)
	}
}

// queue prints what the node has yet to push.
func (p *reportPrinter) queue() {
	r, f, now := p.r, p.f, p.now
	switch {
	case r.Queue == nil && r.CacheErr != nil:
		p.line("queue", "unknown: %v", r.CacheErr)
		return
	case r.Queue == nil && r.Running:
		p.line("queue", "unknown: the node has not published its status yet")
		return
	case r.Queue == nil:
		p.line("queue", "nothing to push")
		return
	}
	s := queueString(*r.Queue)
	switch {
	case r.QueueFrom != "file" || r.current():
	case f.Stopped.IsZero():
		s += " (as last published)"
	default:
		s += " (as of " + when(f.Stopped, now) + ")"
	}
	if !r.Queue.Empty() && !r.Running {
		s += "; pushed when the node starts again"
	}
	p.line("queue", "%s", s)
}

// lastRun prints the last sync, the last error and the relay's use.
func (p *reportPrinter) lastRun() {
	r, f, now := p.r, p.f, p.now
	if f == nil {
		return
	}
	switch {
	case f.LastSync.IsZero() && r.current():
		p.line("last sync", "none yet")
	case f.LastSync.IsZero():
		p.line("last sync", "none in its last run")
	default:
		p.line("last sync", "%s", when(f.LastSync, now))
	}
	if f.LastErr != "" {
		s := when(f.LastErrT, now) + ": " + f.LastErr
		if f.Failing && r.current() {
			s += " (still failing, retrying)"
		}
		p.line("last error", "%s", s)
	}
	if f.StopErr != "" {
		p.line("stopped on", "%s", f.StopErr)
	}
	if f.RelayUsage != nil {
		s := byteString(*f.RelayUsage) + " on the relay"
		if f.Quota > 0 {
			s += fmt.Sprintf(" of a %s quota (%.0f%%)", byteString(f.Quota), 100*float64(*f.RelayUsage)/float64(f.Quota))
		}
		p.line("relay use", "%s", s)
	}
}

// peers prints the other nodes, as this one last saw them.
func (p *reportPrinter) peers() {
	if len(p.r.Peers) == 0 {
		return
	}
	var ps []string
	for _, peer := range p.r.Peers {
		name := peer.Name
		if name == "" {
			name = peer.ID
		}
		seen := "not seen writing yet"
		if !peer.LastSeen.IsZero() {
			seen = "last wrote " + when(peer.LastSeen, p.now)
		}
		behind := "up to date"
		if peer.Behind > 0 {
			behind = plural(peer.Behind, "record") + " behind"
		}
		ps = append(ps, fmt.Sprintf("%s (%s; %s)", name, seen, behind))
	}
	p.line("peers", "%s", strings.Join(ps, "\n"))
}

// work prints the transfers under way, what waits, and this run's figures.
func (p *reportPrinter) work() {
	r, f, now := p.r, p.f, p.now
	if f == nil {
		return
	}
	if r.current() {
		for _, t := range f.Transfers {
			p.line(transferVerb(t), "%s", transferString(t))
		}
		if in := f.Incoming.queue(); !in.Empty() {
			p.line("to apply", "%s from the pull under way", strings.TrimSuffix(queueString(in), " to push"))
		}
	}
	for _, u := range f.Unpushable {
		p.line("never pushed", "%s (%s): %s", u.Path, byteString(u.Size), u.Reason)
	}
	for _, n := range f.NoRoom {
		p.line("no room", "%s (%s) waits for room on the local disk: its download needs %s free, there were %s",
			n.Path, units.FormatSize(n.Size), units.FormatSize(n.Need), units.FormatSize(n.Free))
	}
	for _, w := range f.Waiting {
		since := ""
		if !w.Since.IsZero() {
			since = ", asked " + when(w.Since, now)
		}
		p.line("waiting", "%s: its content is missing or damaged on the relay; a peer that has it uploads it again%s", w.Path, since)
	}
	if ss := f.Session; ss != (statsJSON{}) {
		p.line("this run", "pushed %s (%s), pulled %s (%s), %s", plural(ss.FilesPushed, "file"), units.FormatSize(ss.BytesPushed),
			plural(ss.FilesPulled, "file"), units.FormatSize(ss.BytesPulled), plural(ss.Conflicts, "conflict"))
	}
}

// attention prints what the user may want to act on: a problem, conflict
// copies, a mass change, old versions, warnings.
func (p *reportPrinter) attention() {
	r, f, now := p.r, p.f, p.now
	if problem := r.problem(); problem != "" {
		p.line("problem", "%s", problem)
	}
	if r.ConflictCount > 0 {
		s := "1 conflict copy"
		if r.ConflictCount > 1 {
			s = strconv.Itoa(r.ConflictCount) + " conflict copies"
		}
		s += " to look at: " + strings.Join(r.Conflicts, ", ")
		if r.ConflictCount > len(r.Conflicts) {
			s += ", …"
		}
		p.line("conflicts", "%s", s)
	}
	if f != nil && f.MassChange != nil {
		m := f.MassChange
		p.line("mass change", "%s replaced %d and deleted %d of the %d files at %s; to undo it: escalefs versions restore %s --at %q",
			m.Node, m.Replaced, m.Deleted, m.Files, m.At.Local().Format("2006-01-02 15:04:05"), r.folder(),
			m.At.Add(-time.Second).Local().Format("2006-01-02 15:04:05"))
	}
	if v := r.Versions; v != nil && v.Count > 0 {
		p.line("versions", "%s kept (%s), the oldest replaced %s; escalefs versions lists them",
			plural(v.Count, "old version"), units.FormatSize(v.Bytes), when(v.Oldest, now))
	}
	if r.FileErr != nil {
		p.line("warning", "%v", r.FileErr)
	}
	if r.CacheErr != nil && r.Queue != nil {
		p.line("warning", "reading the cache: %v", r.CacheErr)
	}
}

// relayStateString says, after a running node's status, what keeps its
// relay from working: "; relay unreachable since 10:02 (retrying; 14 files
// queued)". It is "" while the relay works.
func relayStateString(f *statusFile, q *escsync.Queue, now time.Time) string {
	queued := "nothing queued"
	if q != nil && !q.Empty() {
		queued = plural(q.Files, "file") + " queued"
	}
	switch f.RelayState {
	case string(escsync.RelayUnreachable):
		return fmt.Sprintf("; relay unreachable since %s (retrying; %s)", clockTime(f.FailingSince, now), queued)
	case string(escsync.RelayFull):
		return fmt.Sprintf("; relay full: pushes wait for pullers to make room (%s)", queued)
	}
	return ""
}

// clockTime writes t as a time of day, with its date unless it is today.
func clockTime(t, now time.Time) string {
	t, now = t.Local(), now.Local()
	if t.YearDay() == now.YearDay() && t.Year() == now.Year() {
		return t.Format("15:04")
	}
	return t.Format("2006-01-02 15:04")
}

// queueString says what waits to be pushed.
func queueString(q escsync.Queue) string {
	if q.Empty() {
		return "nothing to push"
	}
	var parts []string
	if q.Files > 0 {
		parts = append(parts, fmt.Sprintf("%s, %s to push", plural(q.Files, "file"), byteString(q.Bytes)))
	}
	if q.Records > 0 {
		parts = append(parts, fmt.Sprintf("%s to publish", plural(q.Records, "record")))
	}
	return strings.Join(parts, "; ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// byteString writes n bytes exactly, with a binary unit beside when large.
func byteString(n int64) string {
	s := strconv.FormatInt(n, 10) + " bytes"
	if n == 1 {
		s = "1 byte"
	}
	if n < 1024 {
		return s
	}
	return s + " (" + units.FormatSize(n) + ")"
}

// when writes t in local time, with how long ago it was.
func when(t, now time.Time) string {
	s := t.Local().Format("2006-01-02 15:04:05")
	if d := now.Sub(t).Round(time.Second); d >= 0 {
		s += " (" + d.String() + " ago)"
	}
	return s
}

// nodeJSON is one node in the output of escalefs status --json.
type nodeJSON struct {
	State         string     `json:"state"`
	Folder        string     `json:"folder,omitzero"`
	Files         string     `json:"files,omitzero"`
	Running       bool       `json:"running"`
	PID           int        `json:"pid,omitzero"`
	Command       string     `json:"command,omitzero"`
	Mounted       bool       `json:"mounted"`
	Node          string     `json:"node,omitzero"`
	NodeID        string     `json:"node_id,omitzero"`
	Mode          string     `json:"mode,omitzero"`
	Relay         string     `json:"relay,omitzero"`
	Queue         *queueJSON `json:"queue,omitempty"`
	QueueFrom     string     `json:"queue_from,omitzero"` // "cache" or "file"
	LastSync      time.Time  `json:"last_sync,omitzero"`
	Failing       bool       `json:"failing,omitzero"`
	FailingSince  time.Time  `json:"failing_since,omitzero"`
	RelayState    string     `json:"relay_state,omitzero"`
	LastError     string     `json:"last_error,omitzero"`
	LastErrorAt   time.Time  `json:"last_error_at,omitzero"`
	Stopped       time.Time  `json:"stopped,omitzero"`
	StopError     string     `json:"stop_error,omitzero"`
	RelayUsage    *int64     `json:"relay_usage,omitempty"`
	Quota         int64      `json:"quota,omitzero"`
	Peers         []peerJSON `json:"peers,omitempty"`
	Conflicts     []string   `json:"conflicts,omitempty"`
	ConflictCount int        `json:"conflict_count"`
	// Transfers and Incoming are those of the running process.
	Transfers  []transferJSON   `json:"transfers,omitempty"`
	Incoming   *queueJSON       `json:"incoming,omitempty"`
	Session    *statsJSON       `json:"session,omitempty"`
	Unpushable []unpushableJSON `json:"unpushable,omitempty"`
	NoRoom     []noRoomJSON     `json:"no_room,omitempty"`
	Waiting    []waitingJSON    `json:"waiting,omitempty"`
	Versions   *versionsJSON    `json:"versions,omitempty"`
	MassChange *massChangeJSON  `json:"mass_change,omitempty"`
	// Problem is why escalefs status exits with a non-zero status for
	// this node: it fails, stopped on an error, or holds files it can
	// never push; absent when all is well.
	Problem  string   `json:"problem,omitzero"`
	Warnings []string `json:"warnings,omitempty"`
}

func printJSON(g *globals, reports []*nodeReport) error {
	out := make([]nodeJSON, 0, len(reports))
	for _, r := range reports {
		n := nodeJSON{State: r.State, Folder: r.folder(), Running: r.Running, PID: r.PID, Mounted: r.Mounted,
			NodeID: r.NodeID, QueueFrom: r.QueueFrom, Conflicts: r.Conflicts, ConflictCount: r.ConflictCount, Versions: r.Versions}
		if r.Queue != nil {
			q := toQueueJSON(*r.Queue)
			n.Queue = &q
		}
		if f := r.File; f != nil {
			n.Files, n.Command, n.Node, n.Mode, n.Relay = f.Files, f.Command, f.Node, f.Mode, f.Relay
			n.LastSync, n.Failing, n.LastError, n.LastErrorAt = f.LastSync, f.Failing && r.current(), f.LastErr, f.LastErrT
			n.Stopped, n.StopError, n.RelayUsage, n.Quota = f.Stopped, f.StopErr, f.RelayUsage, f.Quota
			n.Unpushable, n.NoRoom, n.Waiting, n.MassChange = f.Unpushable, f.NoRoom, f.Waiting, f.MassChange
			session := f.Session
			n.Session = &session
			if r.current() {
				n.FailingSince, n.RelayState = f.FailingSince, f.RelayState
				n.Transfers = f.Transfers
				if in := f.Incoming; in != (queueJSON{}) {
					n.Incoming = &in
				}
			}
		}
		n.Problem = r.problem()
		n.Peers = r.Peers
		if r.FileErr != nil {
			n.Warnings = append(n.Warnings, r.FileErr.Error())
		}
		if r.CacheErr != nil {
			n.Warnings = append(n.Warnings, "reading the cache: "+r.CacheErr.Error())
		}
		out = append(out, n)
	}
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
