package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"

	"github.com/spf13/cobra"
)

// profiles writes Go's CPU and heap profiles of a run, for `go tool
// pprof`, and its execution trace, for `go tool trace`: --cpuprofile
// FILE, --memprofile FILE and --trace FILE, hidden flags for whoever
// measures where a transfer spends its time.
type profiles struct {
	cpu, mem, trace   string
	cpuFile, traceOut *os.File
}

// register adds the flags to root, and starts the CPU profile before
// root's PersistentPreRunE (registered before) runs.
func (p *profiles) register(root *cobra.Command) {
	pre := root.PersistentPreRunE
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if err := p.start(); err != nil {
			return err
		}
		if pre == nil {
			return nil
		}
		return pre(cmd, args)
	}
	f := root.PersistentFlags()
	f.StringVar(&p.cpu, "cpuprofile", "", "write a CPU profile of the run to `FILE`")
	f.StringVar(&p.mem, "memprofile", "", "write a heap profile at the end of the run to `FILE`")
	f.StringVar(&p.trace, "trace", "", "write an execution trace of the run to `FILE`")
	for _, name := range []string{"cpuprofile", "memprofile", "trace"} {
		_ = f.MarkHidden(name)
	}
}

// start begins the CPU profile and the trace that were asked for.
func (p *profiles) start() error {
	if err := startTo(&p.traceOut, "trace", p.trace, trace.Start); err != nil {
		return err
	}
	return startTo(&p.cpuFile, "cpuprofile", p.cpu, pprof.StartCPUProfile)
}

// startTo creates path, unless it is empty or *out is open already, and
// starts writing to it.
func startTo(out **os.File, flag, path string, start func(io.Writer) error) error {
	if path == "" || *out != nil {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--%s: %w", flag, err)
	}
	if err := start(f); err != nil {
		f.Close()
		return fmt.Errorf("--%s %s: %w", flag, path, err)
	}
	*out = f
	return nil
}

// stop ends the CPU profile and writes the heap profile; what fails is
// reported on stderr, as the run's own outcome stands.
func (p *profiles) stop(stderr *os.File) {
	if p.traceOut != nil {
		trace.Stop()
		if err := p.traceOut.Close(); err != nil {
			fmt.Fprintln(stderr, "escalefs: --trace:", err)
		}
		p.traceOut = nil
	}
	if p.cpuFile != nil {
		pprof.StopCPUProfile()
		if err := p.cpuFile.Close(); err != nil {
			fmt.Fprintln(stderr, "escalefs: --cpuprofile:", err)
		}
		p.cpuFile = nil
	}
	if p.mem == "" {
		return
	}
	f, err := os.Create(p.mem)
	if err == nil {
		runtime.GC()
		err = pprof.WriteHeapProfile(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "escalefs: --memprofile:", err)
	}
}
