package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/updater/pack"
)

// Prepare fetches, verifies and stages the order's version without
// touching the active one. It is idempotent: after a crash or a failure,
// calling it again with the same order continues where it stopped; for an
// order already staged or switched it returns nil at once. A new order
// replaces an unswitched older one. Refusals wrap the package's sentinels
// (see IsRefusal); the refused version's cache is removed. Its errors
// begin "prepare <version>: ", once: callers add no version of their own.
func (u *Updater) Prepare(ctx context.Context, o Order) error {
	if err := o.check(); err != nil {
		return err
	}
	if err := u.locked(func() error { return u.prepareLocked(ctx, o) }); err != nil {
		return fmt.Errorf("prepare %s: %w", o.Version, err)
	}
	return nil
}

func (u *Updater) prepareLocked(ctx context.Context, o Order) error {
	st, err := u.loadState()
	if err != nil {
		return err
	}
	if st.Order == o.ID && st.Version == o.Version {
		switch st.Phase {
		case PhaseStaged, PhaseSwitched, PhaseDone:
			if st.Phase != PhaseStaged || u.home.IsValid(st.Version) {
				return nil
			}
		case PhaseAborted:
			return fmt.Errorf("order %s: aborted", o.ID)
		}
	} else {
		if st.Version != "" && st.Version != o.Version && pack.ValidVersion(st.Version) && st.Phase != PhaseSwitched {
			// The older order is replaced; its partial files are of no use.
			_ = removeAll(u.cacheDir(st.Version))
		}
		st = UpgradeState{Order: o.ID, Version: o.Version, Source: o.Source, Platform: u.platform, Started: u.now().UTC()}
	}
	st.Source = o.Source
	st.Phase, st.Error, st.Refused = PhasePreflight, "", false
	if err := u.saveState(&st); err != nil {
		return err
	}
	log := u.log.With(zap.String("order", o.ID), zap.String("target", o.Version), zap.String("source", o.Source.String()))
	log.Info("upgrade prepare")

	err = u.prepare(ctx, log, &st)
	if err == nil {
		log.Info("upgrade staged", zap.String("dir", u.home.VersionDir(o.Version)))
		return nil
	}
	if ctx.Err() != nil {
		// Stopped by the caller (the agent is shutting down): keep the
		// phase so the next Prepare resumes.
		st.Error = "interrupted: " + err.Error()
		_ = u.saveState(&st)
		return err
	}
	st.Phase, st.Error, st.Refused = PhaseFailed, err.Error(), IsRefusal(err)
	if st.Refused {
		_ = removeAll(u.cacheDir(o.Version))
		_ = removeAll(u.stagingDir(o.Version))
		for _, f := range st.Files {
			f.Done, f.Verified, f.ETag, f.LastModified = 0, false, "", ""
		}
	}
	log.Warn("upgrade prepare failed", zap.Error(err), zap.Bool("refused", st.Refused))
	if serr := u.saveState(&st); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

func (u *Updater) prepare(ctx context.Context, log *zap.Logger, st *UpgradeState) error {
	src, err := u.openSource(st.Source)
	if err != nil {
		return err
	}
	defer src.Close()

	mb, sb, err := src.manifest(ctx)
	if err != nil {
		return err
	}
	m, err := pack.VerifyManifest(mb, sb, u.keys)
	if err != nil {
		return err
	}
	if err := src.verified(m); err != nil {
		return err
	}
	u.checkpoint("manifest-verified")
	if m.Version != st.Version {
		return fmt.Errorf("%w: the order names %s, the signed manifest %s", ErrVersionMismatch, st.Version, m.Version)
	}
	items, ws, err := u.items(m)
	if err != nil {
		return err
	}
	if err := u.checkFloor(m); err != nil {
		return err
	}
	if a, err := u.home.ReadActive(); err == nil && a.Current == st.Version {
		return fmt.Errorf("%w: %s", ErrAlreadyRunning, st.Version)
	} else if err != nil && !errors.Is(err, home.ErrNoActive) {
		return err
	}

	if st.Files == nil {
		st.Files = map[string]*FileState{}
	}
	named := make(map[string]bool, len(items))
	for _, it := range items {
		named[it.key] = true
		f := st.Files[it.key]
		if f == nil || f.SHA256 != it.a.SHA256 || f.Size != it.a.Size {
			// A new manifest (or the first): the validators of older
			// bytes mean nothing for these.
			f = &FileState{}
			st.Files[it.key] = f
		}
		f.Size, f.SHA256 = it.a.Size, it.a.SHA256
		// A workload's file is found again from the manifest; only the
		// binaries keep their URL in upgrade.json, which must stay small
		// for a tree of thousands of files.
		f.URL = ""
		if !it.workload() {
			f.URL = src.location(it.a)
		}
	}
	for key := range st.Files {
		if !named[key] && !strings.HasPrefix(key, patchKey) {
			delete(st.Files, key)
		}
	}
	_, overHTTP := src.(*httpSource)
	u.planPatches(st, m, items, overHTTP)

	if done, err := u.alreadyStaged(st, items, ws); err != nil || done {
		if err == nil {
			st.Phase = PhaseStaged
			err = u.saveState(st)
		}
		return err
	}
	if err := u.recover(st, items); err != nil {
		return err
	}
	if err := u.checkSpace(st); err != nil {
		return err
	}
	st.Phase = PhaseDownloading
	if err := u.saveState(st); err != nil {
		return err
	}
	// Each file's fsync runs while the next one downloads: the disk
	// writes back one file while the network fills the other. A tree of
	// small files has several fsyncs in flight at once, bounded.
	var syncs errgroup.Group
	syncs.SetLimit(maxSyncs)
	fail := func(key string, err error) error {
		_ = syncs.Wait()
		if platform.IsNoSpace(err) {
			err = fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return fmt.Errorf("%s: %w", key, err)
	}
	var small []item
	for _, it := range items {
		if it.workload() && it.a.Size < saveValidatorAbove {
			small = append(small, it)
			continue
		}
		if err := u.fetch(ctx, log, st, src, it, &syncs); err != nil {
			return fail(it.key, err)
		}
		u.checkpoint("downloaded-" + it.key)
	}
	if key, err := u.fetchSmall(ctx, log, st, src, small, &syncs); err != nil {
		return fail(key, err)
	}
	if err := syncs.Wait(); err != nil {
		if platform.IsNoSpace(err) {
			err = fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return err
	}
	for _, it := range items {
		st.Files[it.key].Verified, st.Files[it.key].Done = true, it.a.Size
	}
	st.Phase = PhaseVerified
	if err := u.saveState(st); err != nil {
		return err
	}
	u.checkpoint("verified")
	faults.Point("agent/after-download")
	if err := u.stage(st, items, ws); err != nil {
		if platform.IsNoSpace(err) {
			err = fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return fmt.Errorf("stage: %w", err)
	}
	st.Phase = PhaseStaged
	return u.saveState(st)
}

// maxSyncs bounds the fsyncs in flight while the next files download.
const maxSyncs = 8

// fetchWorkers is how many small files of a workload's tree are fetched
// at once.
const fetchWorkers = 4

// fetchSmall fetches the small files of the workloads' trees fetchWorkers
// at a time: over a network each request costs a round trip, which
// thousands of files would otherwise pay one after another. While they
// run nothing writes upgrade.json (a small file's validator is not saved
// on its own, see remember) and each touches only its own FileState, so
// they share st. It returns the key of the file that failed first.
func (u *Updater) fetchSmall(ctx context.Context, log *zap.Logger, st *UpgradeState, src source, its []item, syncs *errgroup.Group) (string, error) {
	if len(its) == 0 {
		return "", nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu     sync.Mutex
		failed string
		first  error
		wg     sync.WaitGroup
	)
	next := make(chan item)
	for range min(fetchWorkers, len(its)) {
		wg.Go(func() {
			for it := range next {
				if wctx.Err() != nil {
					continue
				}
				if err := u.fetch(wctx, log, st, src, it, syncs); err != nil {
					mu.Lock()
					if first == nil {
						first, failed = err, it.key
					}
					mu.Unlock()
					cancel()
					continue
				}
				u.checkpoint("downloaded-" + it.key)
			}
		})
	}
feed:
	for _, it := range its {
		select {
		case next <- it:
		case <-wctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return "", ctx.Err()
	}
	return failed, first
}

func sortedRoles(files map[string]pack.Artifact) []string {
	roles := make([]string, 0, len(files))
	for r := range files {
		roles = append(roles, r)
	}
	slices.Sort(roles)
	return roles
}

// checkFloor refuses a target below the highest floor seen, counting the
// manifest's own, and remembers a higher floor.
func (u *Updater) checkFloor(m *pack.Manifest) error {
	seen, err := u.Floor()
	if err != nil {
		return err
	}
	floor := seen
	if m.Floor != "" && (floor == "" || semver.Less(floor, m.Floor)) {
		floor = m.Floor
		if err := writeJSON(u.home, u.floorPath(), floorState{Floor: floor, From: m.Version, At: u.now().UTC()}); err != nil {
			return fmt.Errorf("write floor: %w", err)
		}
	}
	if floor != "" && semver.Less(m.Version, floor) {
		return fmt.Errorf("%w: %s is below %s", ErrBelowFloor, m.Version, floor)
	}
	return nil
}

func (u *Updater) checkSpace(st *UpgradeState) error {
	var need int64
	for key, f := range st.Files {
		have := int64(0)
		if f.Verified {
			have = f.Size
		} else if fi, err := os.Stat(u.partPath(st.Version, key)); err == nil {
			have = min(fi.Size(), f.Size)
		}
		// A file takes whole blocks: for a tree of thousands of small
		// files that is more than the sum of their sizes.
		need += roundBlock(f.Size) - roundBlock(have)
	}
	if err := os.MkdirAll(u.home.Dir, 0o755); err != nil {
		return err
	}
	free, err := u.freeSpace(u.home.Dir)
	if errors.Is(err, platform.ErrNotSupported) {
		u.log.Debug("free disk space unknown on this OS; not checked")
		return nil
	}
	if err != nil {
		return fmt.Errorf("free disk space of %s: %w", u.home.Dir, err)
	}
	if uint64(need+u.reserve) > free {
		return fmt.Errorf("%w: %s needs %s plus a reserve of %s, %s is free", ErrNoSpace,
			u.home.Dir, mib(need), mib(u.reserve), mib(int64(min(free, 1<<62))))
	}
	return nil
}

// fsBlock is the allocation unit assumed for the disk-space preflight.
const fsBlock = 4 << 10

func roundBlock(n int64) int64 { return (n + fsBlock - 1) / fsBlock * fsBlock }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
