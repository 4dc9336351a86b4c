package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// tailer copies new lines of the processes' log files to the terminal,
// each prefixed with where it came from (--verbose). Files that appear
// later (an agent version's log) are picked up by their pattern.
type tailer struct {
	out      io.Writer
	mu       *sync.Mutex // shared with the story's own printing
	patterns map[string]string
	offsets  map[string]int64
	partial  map[string][]byte
}

func newTailer(out io.Writer, mu *sync.Mutex) *tailer {
	return &tailer{out: out, mu: mu, patterns: map[string]string{}, offsets: map[string]int64{}, partial: map[string][]byte{}}
}

// watch adds files matching the glob, printed as "[label/file] line".
func (t *tailer) watch(label, glob string) {
	t.mu.Lock()
	t.patterns[glob] = label
	t.mu.Unlock()
}

// Run polls the files until ctx ends, then prints what is left.
func (t *tailer) Run(ctx context.Context) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		t.poll()
		select {
		case <-ctx.Done():
			t.poll()
			return nil
		case <-tick.C:
		}
	}
}

func (t *tailer) poll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	globs := make([]string, 0, len(t.patterns))
	for g := range t.patterns {
		globs = append(globs, g)
	}
	sort.Strings(globs)
	for _, g := range globs {
		files, _ := filepath.Glob(g)
		for _, f := range files {
			t.copyNew(t.patterns[g]+"/"+filepath.Base(f), f)
		}
	}
}

// copyNew prints the complete lines added to path since the last poll, at
// most 1 MiB a poll so one chatty process cannot stall the others.
func (t *tailer) copyNew(label, path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	off := t.offsets[path]
	if fi, err := f.Stat(); err == nil && fi.Size() < off {
		off = 0 // rotated
	}
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, off, 1<<62), 1<<20))
	if err != nil || len(b) == 0 {
		return
	}
	t.offsets[path] = off + int64(len(b))
	b = append(t.partial[path], b...)
	last := bytes.LastIndexByte(b, '\n')
	if last < 0 {
		t.partial[path] = b
		return
	}
	t.partial[path] = append([]byte(nil), b[last+1:]...)
	for _, line := range strings.Split(string(b[:last]), "\n") {
		fmt.Fprintf(t.out, "    [%s] %s\n", label, line)
	}
}
