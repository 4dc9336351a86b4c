package gobuild

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

const (
	// maxIdle is how long a generation may go unused before it goes.
	maxIdle = 6 * time.Hour
	// maxGenerations is how many generations the cache keeps at most.
	maxGenerations = 3
)

var gens sync.Map // generation dir -> *genOnce

type genOnce struct {
	once sync.Once
	err  error
}

// generation returns the directory of tree's generation in cacheDir,
// made and marked in use (a shared lock held until the process ends, and
// its time touched) on first use in this process, which also removes
// generations idle for maxIdle and the oldest beyond maxGenerations
// that no process is using.
func generation(cacheDir, tree string) (string, error) {
	dir := filepath.Join(cacheDir, tree)
	v, _ := gens.LoadOrStore(dir, &genOnce{})
	g := v.(*genOnce)
	g.once.Do(func() {
		if g.err = os.MkdirAll(dir, 0o755); g.err != nil {
			return
		}
		if g.err = holdShared(filepath.Join(dir, ".inuse")); g.err != nil {
			return
		}
		now := time.Now()
		g.err = os.Chtimes(dir, now, now)
		collect(cacheDir, tree, now)
	})
	return dir, g.err
}

// collect removes old generations of cacheDir (never current, never one
// that a process holds), and temporary leftovers of interrupted builds.
func collect(cacheDir, current string, now time.Time) {
	des, err := os.ReadDir(cacheDir)
	if err != nil {
		return
	}
	type gen struct {
		name string
		used time.Time
	}
	var keep []gen
	for _, de := range des {
		name := de.Name()
		if !de.IsDir() {
			continue
		}
		if strings.HasPrefix(name, ".trash-") {
			os.RemoveAll(filepath.Join(cacheDir, name))
			continue
		}
		if name == current {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		if now.Sub(fi.ModTime()) > maxIdle && remove(cacheDir, name) {
			continue
		}
		keep = append(keep, gen{name, fi.ModTime()})
	}
	// Generations that processes hold stay and count; of the others the
	// newest fill what is left of maxGenerations.
	var free []gen
	room := maxGenerations - 1 // the current one
	for _, g := range keep {
		if unlock, ok := tryExclusive(filepath.Join(cacheDir, g.name, ".inuse")); ok {
			unlock()
			free = append(free, g)
		} else {
			room--
		}
	}
	sort.Slice(free, func(i, j int) bool { return free[i].used.After(free[j].used) })
	for i, g := range free {
		if i >= room {
			remove(cacheDir, g.name)
		}
	}
	cleanTemps(filepath.Join(cacheDir, current), now)
}

// remove moves generation name out of the way and removes it, unless a
// process holds it. It reports whether it did.
func remove(cacheDir, name string) bool {
	dir := filepath.Join(cacheDir, name)
	unlock, ok := tryExclusive(filepath.Join(dir, ".inuse"))
	if !ok {
		return false
	}
	defer unlock()
	trash := filepath.Join(cacheDir, fmt.Sprintf(".trash-%s-%d", name, os.Getpid()))
	if os.Rename(dir, trash) != nil {
		return false
	}
	os.RemoveAll(trash)
	return true
}

// cleanTemps removes what builds interrupted an hour ago or more left in
// gen (a build in progress is younger).
func cleanTemps(gen string, now time.Time) {
	des, err := os.ReadDir(gen)
	if err != nil {
		return
	}
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), ".tmp-") && !strings.Contains(de.Name(), ".trash-") {
			continue
		}
		if fi, err := de.Info(); err == nil && now.Sub(fi.ModTime()) > time.Hour {
			os.RemoveAll(filepath.Join(gen, de.Name()))
		}
	}
}
