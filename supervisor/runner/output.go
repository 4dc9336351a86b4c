package runner

import (
	"bytes"
	"io"
	"os"
	"time"
)

// maxLineLen bounds one line of workload output; the rest of a longer
// line is dropped and the line marked "[truncated]".
const maxLineLen = 4096

// Each version's output of a workload is kept in
// logs/workload-<name>-<version>.log, rotated at logMaxMB with logBackups
// old files (the agent's output is kept the same way).
const (
	logMaxMB   = 10
	logBackups = 3
)

// pump copies one stream of the workload's output into w line by line,
// each line stamped with the time and the stream's name, until the
// workload (and whatever it started that holds the pipe) closes it, or
// until stop is asked (a read deadline: the handoff to the next image).
// It never closes r: the instance does, or hands it on.
type pump struct {
	r      *os.File
	stream string
	w      io.Writer
	now    func() time.Time
	done   chan struct{}
}

func startPump(r *os.File, stream string, w io.Writer, now func() time.Time) *pump {
	p := &pump{r: r, stream: stream, w: w, now: now, done: make(chan struct{})}
	go p.run()
	return p
}

func (p *pump) run() {
	defer close(p.done)
	buf := make([]byte, 0, maxLineLen)
	chunk := make([]byte, 32<<10)
	skipping := false // the rest of a truncated line is dropped
	for {
		n, err := p.r.Read(chunk)
		data := chunk[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			part := data
			if i >= 0 {
				part = data[:i]
			}
			if !skipping {
				room := maxLineLen - len(buf)
				if len(part) > room {
					buf = append(buf, part[:room]...)
					p.line(buf, true)
					buf = buf[:0]
					skipping = true
				} else {
					buf = append(buf, part...)
				}
			}
			if i < 0 {
				break
			}
			if !skipping {
				p.line(buf, false)
			}
			buf, skipping = buf[:0], false
			data = data[i+1:]
		}
		if err != nil {
			// A line cut by the end of the stream or by the handoff is
			// written as it is: better split than lost.
			if len(buf) > 0 {
				p.line(buf, false)
			}
			return
		}
	}
}

func (p *pump) line(b []byte, truncated bool) {
	out := make([]byte, 0, len(b)+64)
	out = p.now().UTC().AppendFormat(out, time.RFC3339Nano)
	out = append(out, ' ')
	out = append(out, p.stream...)
	out = append(out, ' ')
	out = append(out, bytes.TrimSuffix(b, []byte{'\r'})...)
	if truncated {
		out = append(out, " [truncated]"...)
	}
	out = append(out, '\n')
	_, _ = p.w.Write(out)
}

// stop ends the pump at once, without closing its stream, and waits for
// it: what was read is written, what was not stays in the pipe for
// whoever reads it next.
func (p *pump) stop() error {
	if err := p.r.SetReadDeadline(time.Now()); err != nil {
		return err
	}
	<-p.done
	return nil
}
