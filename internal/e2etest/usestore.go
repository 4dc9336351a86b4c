package e2etest

// UseStore makes the server's next Start run with --store dsn (a
// postgres:// URL) and --artifacts (an s3:// store, "" for DATA/packs),
// with env added to its environment (the store's credentials): the same
// data directory, address, TLS and admin token file, as after molt admin
// migrate-store moved its state.
func (s *Server) UseStore(dsn, artifacts string, env ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.o.Store, s.o.Artifacts = dsn, artifacts
	s.o.Env = append(append([]string(nil), s.o.Env...), env...)
}
