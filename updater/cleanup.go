package updater

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"go.uber.org/zap"
)

// Cleanup removes installed versions other than the current, the previous,
// any trial version, one staged for the in-flight order and every version
// a running workload's files come from (state/workloads.json), and cache
// files of anything but the in-flight order. It needs active.json and a
// readable state/workloads.json: without them nothing is known to be in
// use and nothing is removed. The workloads' data directory data/ is
// outside versions/ and cache/ and never touched. Files
// that cannot be removed (a running .exe on Windows) are reported in the
// error; everything else is still removed. removed lists home-relative
// paths.
func (u *Updater) Cleanup() (removed []string, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	unlock, err := u.lockHome()
	if err != nil {
		return nil, err
	}
	defer unlock()
	a, err := u.home.ReadActive()
	if err != nil {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	keep := map[string]bool{a.Current: true}
	if a.Previous != "" {
		keep[a.Previous] = true
	}
	if a.Trial != nil {
		keep[a.Trial.Version] = true
	}
	// A workload that a release did not change keeps running from an
	// older version's directory: removing it would pull its files from
	// under it.
	inUse, err := u.home.VersionsInUse()
	if err != nil {
		return nil, fmt.Errorf("cleanup: which versions workloads run from: %w", err)
	}
	for _, v := range inUse {
		keep[v] = true
	}
	st, err := u.loadState()
	if err != nil {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	inflight := ""
	switch st.Phase {
	case PhasePreflight, PhaseDownloading, PhaseVerified, PhaseStaged:
		inflight = st.Version
	case PhaseFailed:
		if !st.Refused {
			inflight = st.Version
		}
	}
	if inflight != "" {
		keep[inflight] = true
	}

	var errs []error
	remove := func(rel string) {
		if err := removeAll(filepath.Join(u.home.Dir, rel)); err != nil {
			errs = append(errs, err)
			return
		}
		removed = append(removed, rel)
	}
	versions, err := os.ReadDir(u.home.VersionsDir())
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	for _, e := range versions {
		name := e.Name()
		if keep[name] || (inflight != "" && name == "."+inflight+".staging") {
			continue
		}
		remove(filepath.Join("versions", name))
	}
	cache, err := os.ReadDir(u.home.CacheDir())
	if err != nil && !os.IsNotExist(err) {
		return removed, fmt.Errorf("cleanup: %w", err)
	}
	for _, e := range cache {
		if inflight != "" && e.Name() == inflight {
			continue
		}
		remove(filepath.Join("cache", e.Name()))
	}
	slices.Sort(removed)
	if len(removed) > 0 {
		u.log.Info("cleanup", zap.Strings("removed", removed))
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("cleanup: %w", errors.Join(errs...))
	}
	return removed, nil
}
