// Package agent is the molt-agent daemon: it loads the configuration,
// keeps the host's identity, speaks the supervisor's control channel,
// watches holds and local upgrade requests, and runs upgrade orders through
// the updater. The check-in loop with the control server plugs in through
// Orders; without a server the daemon runs local-only.
//
// # The daemon and the check-in loop
//
// Daemon.Run does, in order:
//
//  1. make or load the identity (state/identity.json, 0600; a changed
//     machine fingerprint makes a new one),
//  2. write state/daemon.json and say "ready" on the control channel —
//     before and independent of any server — then "busy" if a hold is
//     active,
//  3. run, until ctx ends or the supervisor says "stop": the hold watcher
//     (busy/idle to the supervisor, every Poll), the local request watcher
//     (molt-agent upgrade), and Options.Orders.Run when it is set,
//  4. return nil on a stop, ErrSwitched after an order switched
//     active.json to a new version (the command exits 11 for it).
//
// The check-in loop is an Orders (Checkin, in checkin.go); "molt-agent
// run" sets it as Options.Orders when server: is set. It gets the *Daemon
// and uses:
//
//	d.Config()            the resolved agent.yaml (server, CA, token, labels, cluster)
//	d.Home(), d.Version() the home and the running version
//	d.Identity()          the identity; Enrolled() tells whether it has a credential
//	d.SetEnrolled(id, c)  stores the server-issued id and credential (0600)
//	d.Reenroll(reason)    drops the credential and makes a new placeholder id
//	                      (server said agent_revoked or identity_cloned)
//	d.Status()            a protocol.Status for check-in (version, supervised,
//	                      busy, holds, floor, upgrade phase, last trial result ...)
//	d.Busy(), d.Holds()   the holds as the watcher last saw them
//	d.RunOrder(ctx, o)    runs one upgrade order; see below
//	d.Cleanup(ctx, keep)  runs a cleanup order (the home keeps current, previous,
//	                      a trial, the in-flight version and the versions running
//	                      workloads use, whatever keep says)
//	d.Switched()          closed once an order switched; return from Run then
//	d.Log()               the daemon's logger
//
// RunOrder(ctx, Order) prepares (download, verify, stage; idempotent and
// resumable, so delivering the same order again resumes it), waits while a
// hold is active or a workload's busy probe says busy (Options.Busy, asked
// every 5 s while it waits; Order.Progress sees Step "wait" with the
// holds), switches
// (active.json names the new version, in trial), reports Phase
// "restarting", and returns nil. The daemon then gives Orders.Run up to
// SwitchGrace to send its last report and return, cancels its context, and
// Run returns ErrSwitched. RunOrder returns ErrBusy when another order or a
// local request is already being run; errors of the updater are returned
// wrapped (errors.Is works on the updater's sentinels). Nothing is switched
// when RunOrder returns an error.
//
// After the restart, once the supervisor has committed or rolled back the
// switched order's trial, the daemon marks the order done (the updater's
// Finish; looked at on start and every Poll); d.Status().LastResult carries
// the outcome (result.json names the order) for the check-in to report.
//
// # Local upgrade requests
//
// "molt-agent upgrade --pack FILE" hands its pack to a running daemon
// through files in state/requests/: it writes <id>.json (Request) and the
// daemon claims it by renaming it to <id>.claimed (a rename is atomic on
// every OS, so either the daemon claims it or the command withdraws it by
// removing it, never both). The daemon then writes the request's progress
// to <id>.status (RequestStatus) and runs it like an order. A daemon says
// that it runs by state/daemon.json (its pid, version, supervised), removed
// when it stops.
//
// # Holds
//
// A hold is one file in state/holds/<id>.json (Hold: reason, the pid of the
// holding process, an expiry), written by molt-agent hold or by a workload
// (the file protocol of docs/workloads.md: named ids, id and created
// optional, temp files starting with "." ignored). One file per hold means
// no two writers ever rewrite the same file. A hold whose process died,
// whose expiry passed, or that has no process and was written more than 7
// days ago is removed by whoever lists the holds next, as is one that
// cannot be read.
package agent
