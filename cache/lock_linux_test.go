package cache

import (
	"bufio"
	"strings"
	"testing"
)

func TestParseLocks(t *testing.T) {
	// dev 0xfd01 is major 0xfd, minor 0x01.
	const dev, ino = 0xfd01, 1837021
	tests := []struct {
		name, locks string
		want        int
	}{
		{"exact", "1: POSIX  ADVISORY  WRITE 10 fd:01:1837021 0 EOF\n2: FLOCK  ADVISORY  WRITE 4711 fd:01:1837021 0 EOF\n", 4711},
		{"waiter skipped", "2: -> FLOCK  ADVISORY  WRITE 99 fd:01:1837021 0 EOF\n2: FLOCK  ADVISORY  WRITE 4711 fd:01:1837021 0 EOF\n", 4711},
		{"other file", "2: FLOCK  ADVISORY  WRITE 4711 fd:01:1837022 0 EOF\n", 0},
		{"other device, unique inode", "5: FLOCK  ADVISORY  WRITE 12 00:2f:1837021 0 EOF\n", 12},
		{"other device, ambiguous inode", "5: FLOCK  ADVISORY  WRITE 12 00:2f:1837021 0 EOF\n6: FLOCK  ADVISORY  WRITE 13 00:30:1837021 0 EOF\n", 0},
		{"exact beats inode", "5: FLOCK  ADVISORY  WRITE 12 00:2f:1837021 0 EOF\n6: FLOCK  ADVISORY  WRITE 13 fd:01:1837021 0 EOF\n", 13},
		{"garbage", "nonsense\n\n1: FLOCK ADVISORY WRITE notapid fd:01:1837021 0 EOF\n", 0},
		{"empty", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseLocks(bufio.NewScanner(strings.NewReader(tt.locks)), dev, ino); got != tt.want {
				t.Errorf("parseLocks = %d, want %d", got, tt.want)
			}
		})
	}
}
