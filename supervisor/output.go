package supervisor

import (
	"bufio"
	"io"
	"os"
	"time"

	"go.uber.org/zap"
	"gopkg.in/natefinch/lumberjack.v2"
)

// maxLineLen bounds one line of agent output; the rest of a longer line
// is dropped and the entry marked truncated.
const maxLineLen = 4096

// Each version's output is also kept in logs/agent-<version>.log, rotated
// at agentLogMaxMB with agentLogBackups old files, so that the logs of a
// version that was rolled back stay on the host.
const (
	agentLogMaxMB   = 10
	agentLogBackups = 3
)

func agentLogName(version string) string { return "agent-" + version + ".log" }

// agentLog returns the rotated log file of version.
func (s *Supervisor) agentLog(version string) io.Writer {
	s.logsMu.Lock()
	defer s.logsMu.Unlock()
	if l, ok := s.logs[version]; ok {
		return l
	}
	// One version runs at a time: the files of earlier ones are closed so
	// that a long-lived supervisor does not collect descriptors (a late
	// line from an exiting agent reopens its file).
	for v, l := range s.logs {
		l.Close()
		delete(s.logs, v)
	}
	if err := os.MkdirAll(s.h.LogsDir(), 0o755); err != nil {
		s.log.Warn("logs directory", zap.Error(err))
	}
	l := &lumberjack.Logger{Filename: s.agentLogRel(version), MaxSize: agentLogMaxMB, MaxBackups: agentLogBackups}
	s.logs[version] = l
	return l
}

func (s *Supervisor) closeLogs() {
	s.logsMu.Lock()
	defer s.logsMu.Unlock()
	for v, l := range s.logs {
		l.Close()
		delete(s.logs, v)
	}
}

// pump copies the agent's output line by line into the supervisor's log
// (with the version as a field) and the version's own log file, until the
// agent (and any child holding the pipe) closes it.
func (s *Supervisor) pump(r *os.File, version, stream string, w io.Writer) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLineLen)
	buf := make([]byte, 0, maxLineLen+64)
	for {
		line, more, err := br.ReadLine()
		if len(line) > 0 || err == nil {
			s.log.Info("agent output", zap.String("agent_version", version), zap.String("stream", stream),
				zap.String("line", string(line)), zap.Bool("truncated", more))
			buf = append(buf[:0], s.clock.Now().UTC().Format(time.RFC3339Nano)...)
			buf = append(buf, ' ')
			buf = append(buf, stream...)
			buf = append(buf, ' ')
			buf = append(buf, line...)
			buf = append(buf, '\n')
			_, _ = w.Write(buf)
		}
		for more && err == nil {
			_, more, err = br.ReadLine()
		}
		if err != nil {
			return
		}
	}
}
