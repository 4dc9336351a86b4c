// Package e2etest is molt's real-process test harness: it builds the real
// binaries, makes a signing key and packs, runs `molt serve`, agent homes
// with their supervisors, and the operator CLI, and waits for what a user
// would see. Tests of other packages use it (scenarios/, fault injection);
// it is a library, every function takes the test's testing.TB, and every
// process it starts is stopped when that test ends.
//
// Building, once per test process (shared by parallel tests, cached in a
// temporary directory keyed by version; binaries are built without -race,
// through the build cache every test process shares, package gobuild):
//
//	e2etest.Main(m)                          // from TestMain: runs the tests, removes the builds
//	                                         // (kept with MOLT_E2E_KEEP=1 when a test failed)
//	e2etest.Binaries(tb, "1.1.0")            // dir with molt, molt-agent, molt-supervisor at 1.1.0
//	e2etest.TestAgent(tb, "1.2.0", "crash-at-start") // testdata/testagent in a mode, stamped 1.2.0
//	e2etest.Key(tb)                          // pub, sec key files (pack.GenerateKey, unencrypted)
//	e2etest.Pack(tb, e2etest.PackOptions{Version: "1.1.0"})  // signed pack (pack.Build)
//	e2etest.Pack(tb, e2etest.PackOptions{Version: "1.2.0", AgentMode: "crash-at-start"})
//	e2etest.BuildAll(e2etest.Build{Out, Pkg, Version, Mode}...)  // binaries at paths of a TestMain's own
//	e2etest.Pack(tb, e2etest.PackOptions{Version: "1.1.0", Workloads: []e2etest.Workload{{Spec: s, Files: map[string]string{"exporter": e2etest.Exporter(tb, "1.1.0")}}}})
//	                                         // a pack with workloads: trees and pack.yaml as molt pack build takes them
//	e2etest.Exporter(tb, "1.1.0")            // examples/exporter built at that version (its -version, exporter_build_info)
//	e2etest.WriteScript(tb, name, body)      // an executable #!/bin/sh file, e.g. a workload's busy probe
//	e2etest.GoInstall(module, version)       // a third-party program (go install), cached in os.UserCacheDir()/molt-e2e;
//	                                         // errors.Is(err, ErrNoModuleProxy) when the proxy cannot be reached
//	e2etest.MainBuilt(m, "x-test", func(dir string) error)    // TestMain: build into dir, run, remove dir
//	gobuild.Must(tb, out, gobuild.Options{Pkgs, LDFlags, Env...}) // a program of a test's own, through the shared cache (package gobuild)
//
// The server (`molt serve --dev` on 127.0.0.1 and a free port, trusting
// Key; agents.poll-seconds 2 and agents.offline-after 5s unless told):
//
//	s := e2etest.StartServer(tb, e2etest.ServerOptions{Version: "1.1.0", Settings: map[string]string{...}})
//	s.Kill9(); s.Start(); s.Stop(); s.Restart()  // same port and data directory
//	s.Running()                              // false once it died (a service manager would start it)
//	s.URL(), s.CAFile(), s.TokenFile(), s.Env()
//	s.Molt(args...) Result                   // the CLI as an operator runs it (MOLT_SERVER, MOLT_CA, MOLT_TOKEN_FILE)
//	s.OK(args...)                            // fails the test unless exit 0
//	s.JSON(&v, args...)                      // appends --json, decodes stdout
//	s.MoltCmd(ctx, args...)                  // an exec.Cmd for background commands (upgrade --wait, events --follow)
//	s.EnrollToken(uses), s.Import(pack)
//	s.Agents(), s.Agent(id), s.Runs(), s.RunReport(id), s.History(args...), s.DeployReport(id), s.Events()
//	s.Upgrade(args...) protocol.Run          // molt upgrade ARGS --yes --json
//	s.WaitRun(id, d) protocol.Run            // until ended_ok, ended_not_ok or cancelled
//
// Agent homes (installed with `molt-agent install --no-service` from the
// binaries of a version; agent.yaml with the server, its CA, Key, and a
// short trial: ready_timeout 30s, watch 2s, crash_budget 1, stop_grace 5s):
//
//	h := s.NewHost(e2etest.HostOptions{Name: "a", Version: "1.0.0", Supervised: true, EnrollToken: tok})
//	h.Start()            // bin/molt-supervisor run --home H, or versions/<current>/molt-agent run
//	HostOptions{Env, ServerURL}, ServerOptions{Env}  // extra environment (MOLT_FAULT), a proxy's URL
//	HostOptions{Wrap}, h.Clone(name, wrap...)        // run under unshare(1); a copy of the home, identity included
//	ServerOptions{KeepDefaults: true}                // no settings applied at the start
//	h.Fingerprint()                                  // the machine fingerprint of the home's identity
//	e2etest.BuildTags = "faults"                     // in TestMain: build every binary with these tags
//	h.Stop(); h.Kill9(); h.KillAgent(); h.Running(); h.WaitExit(d) int
//	h.WaitEnrolled(d) id; h.ID(); h.PreEnroll(token) id   // enrolled, never connected
//	h.Active(), h.Current(), h.Result(), h.Versions(), h.SupervisorVersion(), h.LogFiles()
//	h.AgentCLI(args...) Result                // versions/<current>/molt-agent ARGS --home H
//	h.AgentPID()
//	HostOptions{Pack: p}                      // installed with molt-agent install --pack p (its workloads too)
//	h.WorkloadState(), h.Workload(name), h.WaitWorkload(d, name, version, state), h.DataFile(name, file)
//	e2etest.Get(url) (code, body)             // a workload's HTTP endpoint
//
// Waiting and events:
//
//	e2etest.Eventually(tb, d, what, func() (ok bool, seen string))
//	var out e2etest.Buffer; cmd.Stdout = &out; out.String()  // a background process's output, read while it runs
//	e2etest.OfAgent(evs, id), OfRun(evs, id), Filter, IDs
//	e2etest.Spans(evs, keep), MaxOverlap(spans)  // deployments in progress from 264 to 706/707/708
//
// Every process runs in its own process group with the test's environment
// minus MOLT_* variables; its output goes to a log file under the test's
// temporary directory, and the tails of all logs (server, supervisors,
// the homes' logs/) are printed when the test failed. The harness drives
// Unix processes; on other systems it builds but is not meant to run.
package e2etest
