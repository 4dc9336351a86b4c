package e2etest

// Running reports whether the molt serve process runs (false once it
// exited by itself, was killed, or was stopped).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.exited()
}
