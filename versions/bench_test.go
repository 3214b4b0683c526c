package versions

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkRelease is what a node does with a file a pull let go once its
// hold is over, with versions off (it unlinks the held file) and on (it
// keeps it: a link and a metadata file, then the unlink), per file.
func BenchmarkRelease(b *testing.B) {
	for _, keep := range []bool{false, true} {
		name := "versions-off"
		if keep {
			name = "versions-on"
		}
		b.Run(name, func(b *testing.B) {
			held := b.TempDir()
			s, err := Open(filepath.Join(b.TempDir(), "versions"), Options{Clock: &benchClock{}})
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 4<<10)
			files := make([]string, b.N)
			for i := range files {
				files[i] = filepath.Join(held, strconv.Itoa(i))
				if err := os.WriteFile(files[i], data, 0o644); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				if keep {
					if _, err := s.Keep(files[i], "dir/file"+strconv.Itoa(i), PulledEdit, ""); err != nil {
						b.Fatal(err)
					}
				}
				if err := os.Remove(files[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type benchClock struct{ n int64 }

func (c *benchClock) Now() time.Time {
	c.n++
	return time.Unix(1795000000, c.n)
}
