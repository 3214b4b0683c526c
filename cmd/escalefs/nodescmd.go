package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/escalefs/escalefs/cache"
	"github.com/escalefs/escalefs/crypto"
	"github.com/escalefs/escalefs/relay"
	"github.com/escalefs/escalefs/relay/all"
	escsync "github.com/escalefs/escalefs/sync"
	"github.com/escalefs/escalefs/sync/layout"
)

// nodesFlags are the options of escalefs nodes and nodes forget.
type nodesFlags struct {
	rf           relayFlags
	sf           secretFlags
	relayURL     string
	noEncryption bool
	json         bool
	lockTimeout  time.Duration
	// forget
	folder string
	wait   time.Duration
	// repo and forgetRepo are the --repo of nodes and of nodes forget.
	repo, forgetRepo repoFlag
}

func newNodesCmd(g *globals) *cobra.Command {
	f := &nodesFlags{}
	cmd := &cobra.Command{
		Use:   "nodes --relay URL (--key-file FILE | --passphrase-file FILE | --no-encryption) [flags]",
		Short: "List the nodes of a repository: how far behind each is, and which ones hold deletions back",
		Long: `Nodes lists every node registered in the repository at URL, as the relay
shows it: its name and ID, its mode, when it last wrote (a change, an
acknowledgement or a heartbeat), how many of the other nodes' records it has
not acknowledged yet, whether it counts as a puller (the other nodes keep
the data it has not pulled on the relay until it has, or until it is silent
for longer than --lock-timeout), and whether it was forgotten. The node of
this machine that syncs the repository is marked "this node".

A node that will never sync again (a retired machine) holds data back on the
relay until the lock timeout (72 hours by default). escalefs nodes forget
NODE tells every node to stop waiting for it at once.`,
		Example: "  escalefs nodes --relay ftps://me@ftp.example.org/sync --key-file ~/.config/escalefs/key\n" +
			"  escalefs nodes --relay file:///mnt/share/relay --passphrase-file ~/.config/escalefs/passphrase --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNodes(cmd.Context(), g, f)
		},
	}
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.relayURL, "relay", "", "URL of the relay holding the repository (see escalefs relay check --help)")
	fl.BoolVar(&f.noEncryption, "no-encryption", false, "the repository has no secret")
	fl.DurationVar(&f.lockTimeout, "lock-timeout", escsync.DefaultLockTimeout,
		"the nodes' --lock-timeout: a node silent for longer no longer counts as a puller (negative: forever)")
	f.sf.register(fl)
	f.rf.register(fl)
	if err := cmd.MarkPersistentFlagRequired("relay"); err != nil {
		panic(err)
	}
	cmd.Flags().BoolVar(&f.json, "json", false, "print the nodes as JSON")
	f.repo.register(cmd, g, &f.rf, -1)
	cmd.AddCommand(newNodesForgetCmd(g, f))
	return cmd
}

func newNodesForgetCmd(g *globals, f *nodesFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "forget --relay URL (--key-file FILE | --passphrase-file FILE | --no-encryption) [flags] NODE",
		Short: "Stop waiting for a retired node before deleting data from the relay",
		Long: `Forget tells every node of the repository that NODE (a node's name, or the
start of its ID, as escalefs nodes lists them) is retired: the other nodes
no longer wait for it to pull before they delete data from the relay, as if
it had been silent for longer than the lock timeout. Each node takes this
into account at its next sync round. Nothing of NODE is deleted by this: its
records and data stay until the other nodes' usual clean-up after the lock
timeout. Should NODE sync again, it counts again from then on, and asks for
what was deleted while it was forgotten.

The node of this machine that syncs the repository publishes the forget
(a node of the repository must have synced here; give --folder when several
did). When escalefs sync or mount runs for it, the request is handed to it
and published at its next round; escalefs nodes forget waits for that
(--wait). A node cannot forget itself.`,
		Example: "  escalefs nodes forget --relay ftps://me@ftp.example.org/sync --key-file ~/.config/escalefs/key old-laptop\n" +
			"  escalefs nodes forget --relay file:///mnt/share/relay --key-file ~/key --folder ~/Sync 3fa2c1",
		Args: func(_ *cobra.Command, args []string) error {
			switch len(args) {
			case 0:
				return errors.New("missing NODE: give the name or the start of the ID of the node to forget, as escalefs nodes lists them")
			case 1:
				return nil
			}
			return fmt.Errorf("%d nodes given (%s): escalefs nodes forget takes exactly one NODE", len(args), strings.Join(args, " "))
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.wait <= 0 {
				return fmt.Errorf("--wait %s: expected a positive duration, such as 30s", f.wait)
			}
			return runNodesForget(cmd.Context(), g, f, args[0])
		},
	}
	cmd.Flags().StringVar(&f.folder, "folder", "", "the folder (or mountpoint) of the node of this machine that publishes the forget, when several sync the repository")
	cmd.Flags().DurationVar(&f.wait, "wait", 30*time.Second, "how long to wait for a running escalefs sync or mount to publish the forget (it stays queued after that)")
	f.forgetRepo.register(cmd, g, &f.rf, -1)
	return cmd
}

// openRepo opens the relay and the repository of the flags; close releases
// the relay.
func (f *nodesFlags) openRepo(ctx context.Context, g *globals) (relay.Relay, *escsync.Repository, error) {
	sf := syncFlags{sf: f.sf, noEncryption: f.noEncryption}
	secret, err := sf.secret()
	if err != nil {
		return nil, nil, err
	}
	if f.lockTimeout == 0 {
		return nil, nil, fmt.Errorf("--lock-timeout %s: expected a positive duration, such as 72h, or a negative one for forever", f.lockTimeout)
	}
	r, err := all.Open(ctx, f.relayURL, f.rf.options(g))
	if err != nil {
		return nil, nil, err
	}
	loc := r.Properties().Location
	repo, err := escsync.OpenRepository(ctx, r, secret, escsync.RepoOptions{})
	if err != nil {
		r.Close()
		if errors.Is(err, escsync.ErrNoRepository) {
			return nil, nil, fmt.Errorf("the relay %s holds no repository: check --relay", loc)
		}
		return nil, nil, fmt.Errorf("opening the repository at %s: %w", loc, err)
	}
	return r, repo, nil
}

// localNode is a node of this machine: its state directory and what it
// says of the node.
type localNode struct {
	state  string
	folder string // from its status file; "" if unknown
	id     string // the node's ID; "" if unknown
}

// localNodes lists the nodes of this machine that sync repository repo.
func localNodes(repo crypto.RepoID) ([]localNode, error) {
	root, err := stateRoot()
	if err != nil {
		return nil, err
	}
	states, err := allStateDirs(root)
	if err != nil {
		return nil, err
	}
	var out []localNode
	for _, s := range states {
		if !strings.HasPrefix(filepath.Base(s), repo.String()+"-") {
			continue
		}
		n := localNode{state: s}
		if f, err := readStatusFile(s); err == nil && f != nil {
			n.folder, n.id = f.Folder, f.NodeID
		}
		store, err := cache.Open(filepath.Join(s, "cache.db"), cache.Options{ReadOnly: true, Timeout: statusLockTimeout})
		if err == nil {
			_ = store.View(func(tx *cache.Tx) error {
				if b, ok, err := tx.Meta(cache.MetaNodeID); err == nil && ok {
					n.id = string(b)
				}
				return nil
			})
			store.Close()
		}
		if n.id != "" {
			out = append(out, n)
		}
	}
	return out, nil
}

func runNodes(ctx context.Context, g *globals, f *nodesFlags) error {
	r, repo, err := f.openRepo(ctx, g)
	if err != nil {
		return err
	}
	defer r.Close()
	list, err := escsync.ListNodes(ctx, r, repo, escsync.ListOptions{LockTimeout: f.lockTimeout})
	if err != nil {
		return fmt.Errorf("%s: %w", r.Properties().Location, err)
	}
	locals, err := localNodes(repo.ID)
	if err != nil {
		return err
	}
	this := make(map[string]bool)
	for _, l := range locals {
		this[l.id] = true
	}
	if f.json {
		return printNodesJSON(g, r.Properties().Location, repo, list, this)
	}
	printNodes(g, list, this, time.Now())
	return nil
}

func shortID(id crypto.NodeID) string { return id.String()[:8] }

// nodeName names a node for messages: its name and short ID.
func nodeName(n escsync.NodeInfo) string {
	if n.Name == "" {
		return "node " + shortID(n.ID)
	}
	return fmt.Sprintf("%s (id %s)", n.Name, shortID(n.ID))
}

// behindString says how far behind n is.
func behindString(n escsync.NodeInfo) string {
	switch {
	case n.Acks == nil:
		return "unknown"
	case n.BehindTotal == 0:
		return "up to date"
	case n.BehindTotal == 1:
		return "1 record behind"
	}
	return strconv.FormatUint(n.BehindTotal, 10) + " records behind"
}

// ago writes how long before now t was: 5s ago, 3m ago, 2h ago, 4d ago.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

func printNodes(g *globals, list []escsync.NodeInfo, this map[string]bool, now time.Time) {
	if len(list) == 0 {
		fmt.Fprintln(g.stdout, "no node has synced this repository yet")
		return
	}
	names := make(map[crypto.NodeID]string, len(list))
	for _, n := range list {
		names[n.ID] = n.Name
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tMODE\tLAST ACTIVITY\tBEHIND\tPULLER\tNOTE")
	for _, n := range list {
		mode := string(n.Mode)
		if mode == "" {
			mode = "unknown"
		}
		puller := "yes"
		if !n.Puller {
			puller = "no (" + n.NotPuller + ")"
		}
		var notes []string
		if this[n.ID.String()] {
			notes = append(notes, "this node")
		}
		if n.Forgotten() {
			var by []string
			for _, w := range n.ForgottenBy {
				if names[w] != "" {
					by = append(by, names[w])
				} else {
					by = append(by, shortID(w))
				}
			}
			notes = append(notes, fmt.Sprintf("forgotten by %s as of record %d", strings.Join(by, ", "), n.ForgottenUpTo))
		}
		if n.Err != nil {
			notes = append(notes, "unreadable: "+strings.ReplaceAll(n.Err.Error(), "\n", "; "))
		}
		name := n.Name
		if name == "" {
			name = "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, shortID(n.ID), mode, ago(n.LastActivity, now),
			behindString(n), puller, strings.Join(notes, "; "))
	}
	tw.Flush()
}

// nodeListJSON is the output of escalefs nodes --json.
type nodeListJSON struct {
	Relay      string          `json:"relay"`
	Repository string          `json:"repository"`
	Nodes      []nodeListEntry `json:"nodes"`
}

type nodeListEntry struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	Mode string `json:"mode,omitzero"` // "" when unknown
	// NewestSeq is the highest sequence number of its log on the relay.
	NewestSeq    uint64    `json:"newest_seq"`
	LastActivity time.Time `json:"last_activity,omitzero"`
	// Behind is how many records of the other nodes it has not
	// acknowledged; BehindBy, per node ID. Absent when unknown.
	Behind        *uint64           `json:"behind,omitempty"`
	BehindBy      map[string]uint64 `json:"behind_by,omitempty"`
	Puller        bool              `json:"puller"`
	NotPuller     string            `json:"not_puller,omitzero"`
	Forgotten     bool              `json:"forgotten"`
	ForgottenBy   []string          `json:"forgotten_by,omitempty"`
	ForgottenUpTo *uint64           `json:"forgotten_up_to,omitempty"`
	This          bool              `json:"this"`
	Error         string            `json:"error,omitzero"`
}

func printNodesJSON(g *globals, loc string, repo *escsync.Repository, list []escsync.NodeInfo, this map[string]bool) error {
	out := nodeListJSON{Relay: loc, Repository: repo.ID.String(), Nodes: []nodeListEntry{}}
	for _, n := range list {
		j := nodeListEntry{Name: n.Name, ID: n.ID.String(), Mode: string(n.Mode), NewestSeq: n.Newest,
			LastActivity: n.LastActivity, Puller: n.Puller, NotPuller: n.NotPuller, Forgotten: n.Forgotten(),
			This: this[n.ID.String()]}
		if !j.LastActivity.IsZero() {
			j.LastActivity = j.LastActivity.UTC()
		}
		if n.Acks != nil {
			total := n.BehindTotal
			j.Behind = &total
			j.BehindBy = make(map[string]uint64, len(n.Behind))
			for id, b := range n.Behind {
				j.BehindBy[id.String()] = b
			}
		}
		if n.Forgotten() {
			upTo := n.ForgottenUpTo
			j.ForgottenUpTo = &upTo
			for _, w := range n.ForgottenBy {
				j.ForgottenBy = append(j.ForgottenBy, w.String())
			}
		}
		if n.Err != nil {
			j.Error = n.Err.Error()
		}
		out.Nodes = append(out.Nodes, j)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(g.stdout, "%s\n", b)
	return err
}

// resolveNode finds the node arg names: its whole ID, its name, or the start
// of its ID, in this order.
func resolveNode(list []escsync.NodeInfo, arg string) (escsync.NodeInfo, error) {
	describe := func(ns []escsync.NodeInfo) string {
		var s []string
		for _, n := range ns {
			s = append(s, fmt.Sprintf("%s (id %s)", n.Name, n.ID))
		}
		return strings.Join(s, ", ")
	}
	for _, match := range []func(escsync.NodeInfo) bool{
		func(n escsync.NodeInfo) bool { return n.ID.String() == strings.ToLower(arg) },
		func(n escsync.NodeInfo) bool { return n.Name == arg },
		func(n escsync.NodeInfo) bool {
			_, err := hex.DecodeString(arg + strings.Repeat("0", len(arg)%2))
			return err == nil && strings.HasPrefix(n.ID.String(), strings.ToLower(arg))
		},
	} {
		var found []escsync.NodeInfo
		for _, n := range list {
			if match(n) {
				found = append(found, n)
			}
		}
		switch {
		case len(found) == 1:
			return found[0], nil
		case len(found) > 1:
			return escsync.NodeInfo{}, fmt.Errorf("%q is ambiguous: it names %d nodes: %s; give more of the node's ID",
				arg, len(found), describe(found))
		}
	}
	if len(list) == 0 {
		return escsync.NodeInfo{}, fmt.Errorf("no node %q: no node has synced this repository yet", arg)
	}
	return escsync.NodeInfo{}, fmt.Errorf("no node named %q or with an ID starting with it; the nodes are: %s", arg, describe(list))
}

func runNodesForget(ctx context.Context, g *globals, f *nodesFlags, arg string) error {
	r, repo, err := f.openRepo(ctx, g)
	if err != nil {
		return err
	}
	defer r.Close()
	loc := r.Properties().Location
	list, err := escsync.ListNodes(ctx, r, repo, escsync.ListOptions{LockTimeout: f.lockTimeout})
	if err != nil {
		return fmt.Errorf("%s: %w", loc, err)
	}
	target, err := resolveNode(list, arg)
	if err != nil {
		return err
	}
	self, err := publishingNode(repo, f.folder)
	if err != nil {
		return err
	}
	if target.ID.String() == self.id {
		return fmt.Errorf("%s is this node (state %s): a node cannot forget itself; run escalefs nodes forget on another node of the repository",
			nodeName(target), self.state)
	}
	if target.Forgotten() {
		fmt.Fprintf(g.stdout, "%s is already forgotten (as of its record %d): no node waits for it\n", nodeName(target), target.ForgottenUpTo)
		return nil
	}
	done := fmt.Sprintf("forgot %s as of its record %d: the other nodes no longer wait for it before deleting data from the relay "+
		"(each from its next sync round); nothing of it was deleted, and should it sync again, it counts again\n",
		nodeName(target), target.Newest)
	if !target.Puller && target.NotPuller == escsync.NotPullerUpload {
		done = strings.TrimSuffix(done, "\n") + " (in upload mode, it held nothing back anyway)\n"
	}

	store, err := cache.Open(filepath.Join(self.state, "cache.db"), cache.Options{Logger: g.logger(), Timeout: accessCacheTimeout})
	switch {
	case errors.Is(err, cache.ErrInUse):
		pid := cacheHolder(err)
		return requestForget(ctx, g, f, r, self, target, pid, done)
	case err != nil:
		return engineFailed(err, self.state)
	}
	defer store.Close()
	if err := escsync.PublishForget(ctx, r, repo, store, target.ID, target.Newest, time.Now()); err != nil {
		return engineFailed(err, self.state)
	}
	fmt.Fprint(g.stdout, done)
	return nil
}

// publishingNode is the node of this machine that publishes a forget: the
// one of folder, or the only one.
func publishingNode(repo *escsync.Repository, folder string) (localNode, error) {
	locals, err := localNodes(repo.ID)
	if err != nil {
		return localNode{}, err
	}
	if folder != "" {
		root, err := stateRoot()
		if err != nil {
			return localNode{}, err
		}
		state := nodeStateDir(root, repo.ID, resolvePath(folder))
		for _, l := range locals {
			if l.state == state {
				return l, nil
			}
		}
		return localNode{}, fmt.Errorf("no node of repository %s syncs %s on this machine (no state directory %s)", repo.ID, folder, state)
	}
	switch len(locals) {
	case 0:
		return localNode{}, fmt.Errorf("no node of repository %s syncs on this machine: a forget is published by a node of the repository; "+
			"run escalefs nodes forget where one runs (or has run) escalefs sync or mount", repo.ID)
	case 1:
		return locals[0], nil
	}
	var where []string
	for _, l := range locals {
		if l.folder != "" {
			where = append(where, l.folder)
		} else {
			where = append(where, l.state)
		}
	}
	slices.Sort(where)
	return localNode{}, fmt.Errorf("%d nodes of repository %s sync on this machine (%s): give --folder with the one to publish the forget",
		len(locals), repo.ID, strings.Join(where, ", "))
}

// requestForget hands the forget to the running node through its control
// directory and waits until it is published.
func requestForget(ctx context.Context, g *globals, f *nodesFlags, r relay.Relay, self localNode, target escsync.NodeInfo,
	pid, done string) error {
	req, err := writeControlRequest(self.state, escsync.ForgetRequestsDir, escsync.ForgetRequest{Node: target.ID.String(), UpTo: target.Newest})
	if err != nil {
		return fmt.Errorf("handing the forget to the running escalefs (%s): %w", pid, err)
	}
	selfID, err := crypto.ParseNodeID(self.id)
	if err != nil {
		return err
	}
	queued := fmt.Sprintf("forgetting %s is queued: the running escalefs (%s) publishes it at its next round", nodeName(target), pid)
	if taken, err := waitTaken(ctx, req, f.wait); err != nil {
		return fmt.Errorf("interrupted; %s", queued)
	} else if !taken {
		fmt.Fprintln(g.stdout, queued)
		return nil
	}
	if _, err := r.Stat(ctx, layout.ForgetName(selfID, target.ID)); err != nil {
		return fmt.Errorf("the running escalefs (%s) took the request but did not publish the forget (%v): see its log", pid, err)
	}
	fmt.Fprint(g.stdout, done)
	return nil
}
