// Package updater carries out one upgrade order on an agent home: preflight,
// download (or read from a local pack), verify, stage into versions/<V>/,
// switch active.json, and later clean up. The active version is never
// touched before the switch.
//
// A version is the molt binaries and every file of every workload of the
// platform (versions/<V>/workloads/<name>/<path>, with workloads.json),
// each downloaded, verified and staged alike.
//
// Every step is idempotent and resumable from state/upgrade.json: a process
// killed at any point, or a connection cut at any byte, continues where it
// stopped when Prepare is called again with the same order. Partial
// downloads live in cache/<V>/ and are resumed with HTTP Range requests
// (If-Range with the validator the server gave before); the bytes already on
// disk are hashed again, never trusted blindly.
//
// The agent daemon drives it like this:
//
//	keys, err := pack.LoadTrustedKeys(cfg.TrustedKeys) // agent.yaml only
//	u := updater.New(updater.Options{
//		Home:         home.New(dir),
//		Keys:         keys,
//		ReserveBytes: int64(cfg.DiskReserveMB) << 20,
//		Logger:       log,
//		Progress:     func(p updater.Progress) { report(p) },
//	})
//	order := updater.Order{ID: id, Version: "1.5.0", Source: updater.HTTPSource(base)}
//	if err := u.Prepare(ctx, order); err != nil { ... } // staged, or a refusal
//	// wait until no hold is active, then:
//	if err := u.Switch(order.ID); err != nil { ... }
//	// exit with control.ExitUpgrade; the supervisor takes over
//
// and, on a cleanup order, u.Cleanup(). u.State() is the in-flight order and
// its phase for status reports; u.Finish(id) marks a switched order done
// once its trial ended; u.Abort(id) drops an order that has not been
// switched yet.
//
// Refusals wrap a sentinel so callers decide with errors.Is: ErrNoSpace,
// ErrPlatformMissing, ErrBelowFloor, ErrAlreadyRunning, ErrVersionMismatch,
// and from package pack ErrUntrustedKey, ErrBadSignature, ErrBadManifest,
// ErrSizeMismatch, ErrHashMismatch, ErrTooLarge, ErrBadPack, and
// spec.ErrBadSpec (a workload of the manifest fails its checks). IsRefusal
// tells a refusal (the order can never succeed as given; its cache is
// removed) from a transient failure (network, I/O; Prepare again resumes).
package updater
