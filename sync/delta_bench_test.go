package sync_test

import (
	"bytes"
	"flag"
	"testing"
	"time"

	"github.com/escalefs/escalefs/internal/pseudo"
	escsync "github.com/escalefs/escalefs/sync"
)

var deltaSize = flag.Int64("delta-size", 1<<30, "the size of BenchmarkDelta's file")

// BenchmarkDelta moves a large file (-delta-size, 1 GiB by default) from
// node a to node b through a file relay, then a copy of it, 1 MiB changed
// in its middle and 1 MiB inserted at its start: with chunks (delta sync)
// and, in the same process, with whole files in parts as before. Each step
// reports the bytes of blobs put and got, and the time from a's round to
// b's copy in place.
func BenchmarkDelta(b *testing.B) {
	for _, chunks := range []bool{true, false} {
		name := map[bool]string{true: "chunks", false: "parts"}[chunks]
		b.Run(name, func(b *testing.B) {
			for range b.N {
				benchDelta(b, chunks)
			}
		})
	}
}

func benchDelta(b *testing.B, chunks bool) {
	bc := &byteCounter{Relay: fileRelay(b)}
	c := chunkedCluster(b, bc)
	opt := func(cfg *escsync.Config) { cfg.Chunks = chunks }
	a := c.add("a", opt)
	p := c.add("b", opt)
	data := pseudo.Bytes("delta", int(*deltaSize))
	step := func(what, path string, content []byte, write func()) {
		bc.reset()
		write()
		start := time.Now()
		c.settle()
		d := time.Since(start)
		if !bytes.Equal(p.read(b, path), content) {
			b.Fatalf("%s: b's %s differs", what, path)
		}
		b.ReportMetric(d.Seconds(), what+"-s")
		b.ReportMetric(float64(bc.put.Load())/(1<<20), what+"-put-MiB")
		b.ReportMetric(float64(bc.got.Load())/(1<<20), what+"-got-MiB")
	}
	step("new", "big.bin", data, func() { a.write(b, "big.bin", data) })
	step("copy", "copy.bin", data, func() { a.write(b, "copy.bin", data) })
	mid := bytes.Clone(data)
	copy(mid[len(mid)/2:], pseudo.Bytes("mid", 1<<20))
	step("edit", "big.bin", mid, func() { a.write(b, "big.bin", mid) })
	ins := append(pseudo.Bytes("ins", 1<<20), mid...)
	step("insert", "big.bin", ins, func() { a.write(b, "big.bin", ins) })
	b.ReportMetric(0, "ns/op")
}
