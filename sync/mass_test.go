package sync_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMassChangeVisible: a pull that deletes most of the folder's files is
// applied and reported (a warning and Status.MassChange); one that deletes
// a few is not.
func TestMassChangeVisible(t *testing.T) {
	c := newCluster(t, fileRelay(t))
	a := c.add("a", small)
	b := c.add("b", small)
	for i := range 120 {
		a.write(t, fmt.Sprintf("d/f%03d", i), []byte("x"))
	}
	a.write(t, "keep.txt", []byte("stays"))
	a.write(t, "few/1", []byte("1"))
	a.write(t, "few/2", []byte("2"))
	c.settle()
	if err := os.RemoveAll(filepath.Join(a.dir, "few")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if st, err := b.e.Status(); err != nil || st.MassChange != nil {
		t.Fatalf("after deleting 2 files: mass change %+v (%v)", st.MassChange, err)
	}
	if err := os.RemoveAll(filepath.Join(a.dir, "d")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if b.exists("d/f000") {
		t.Fatal("the delete was not applied on b")
	}
	st, err := b.e.Status()
	if err != nil {
		t.Fatal(err)
	}
	m := st.MassChange
	if m == nil || m.Deleted != 120 || m.Replaced != 0 || m.Files != 121 || m.Node != "a" || m.At.IsZero() {
		t.Fatalf("mass change %+v, want 120 of 121 files deleted by a", m)
	}
	if !strings.Contains(b.logs.String(), "most of the folder's files") {
		t.Error("b did not warn")
	}
}
