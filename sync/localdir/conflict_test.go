package localdir_test

import (
	"strings"
	"testing"
	"time"

	"github.com/escalefs/escalefs/sync/localdir"
)

func TestConflictName(t *testing.T) {
	at := time.Date(2024, 3, 9, 17, 5, 2, 999, time.FixedZone("CET", 3600))
	const mark = ".sync-conflict-20240309-160502-node1"
	tests := []struct{ path, node, want string }{
		{"name.ext", "node1", "name" + mark + ".ext"},
		{"dir/sub/report.pdf", "node1", "dir/sub/report" + mark + ".pdf"},
		{"archive.tar.gz", "node1", "archive.tar" + mark + ".gz"},
		{".bashrc", "node1", ".bashrc" + mark},
		{"dir/.bashrc", "node1", "dir/.bashrc" + mark},
		{".config.json", "node1", ".config" + mark + ".json"},
		{"Makefile", "node1", "Makefile" + mark},
		{"dir.d/Makefile", "node1", "dir.d/Makefile" + mark},
		{"trailing.", "node1", "trailing." + mark},
		{"a.b", "my laptop/2.0", "a.sync-conflict-20240309-160502-my_laptop_2_0.b"},
		{"a.b", "", "a.sync-conflict-20240309-160502-_.b"},
		{"x" + mark + ".txt", "node1", "x" + mark + mark + ".txt"},
	}
	for _, tc := range tests {
		got := localdir.ConflictName(tc.path, at, tc.node)
		if got != tc.want {
			t.Errorf("ConflictName(%q, %q) = %q, want %q", tc.path, tc.node, got, tc.want)
		}
		if !localdir.IsConflictName(got) {
			t.Errorf("IsConflictName(%q) = false", got)
		}
	}

	// Too long for one component: the stem is cut at a rune boundary.
	long := "dir/" + strings.Repeat("é", 200) + ".txt"
	got := localdir.ConflictName(long, at, "node1")
	base := got[strings.LastIndexByte(got, '/')+1:]
	if len(base) > 255 || !strings.HasSuffix(base, mark+".txt") || !strings.HasPrefix(got, "dir/é") {
		t.Errorf("long name: %q (%d bytes)", got, len(base))
	}
	if !strings.HasPrefix(strings.TrimSuffix(base, mark+".txt"), strings.Repeat("é", 10)) || strings.ContainsRune(base, '\uFFFD') {
		t.Errorf("long name cut badly: %q", base)
	}
}

func TestIsConflictName(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"a.sync-conflict-20240309-160502-node1.txt", true},
		{"dir/a.sync-conflict-20240309-160502-node1", true},
		{".bashrc.sync-conflict-20240309-160502-n", true},
		{"a.txt", false},
		{"a.sync-conflict-.txt", false},
		{"a.sync-conflict-20241309-160502-node1.txt", false}, // month 13
		{"a.sync-conflict-20240309-160502-.txt", false},      // no node
		{"a.sync-conflict-20240309-160502.txt", false},
		{"a.sync-conflict-20240309-160502-node1.txt/child", false},
		{"a.sync-conflict-x.sync-conflict-20240309-160502-n1", true},
	}
	for _, tc := range tests {
		if got := localdir.IsConflictName(tc.path); got != tc.want {
			t.Errorf("IsConflictName(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}
