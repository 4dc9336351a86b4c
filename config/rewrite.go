package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/moltfleet/molt/internal/atomicfile"
)

// RemoveEnrollmentToken removes enrollment_token from the agent.yaml at
// path once the agent enrolled with it: a reusable secret left on the
// host would let it enroll again on its own after an operator revoked it
// (docs/agent.md). Only a token equal to used is removed; one given by
// MOLT_ENROLLMENT_TOKEN, or changed in the file since, is left alone.
// Every other key and comment and the file's mode are kept, a comment
// says where the token went, and the file is replaced atomically (a
// symbolic link is followed and kept). It reports whether the file
// changed; a missing file is not an error.
func RemoveEnrollmentToken(path, used string, now time.Time) (bool, error) {
	if used == "" {
		return false, nil
	}
	real, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return false, err
	}
	if fi.Size() > MaxSize {
		return false, fmt.Errorf("%s: larger than %d bytes", path, MaxSize)
	}
	b, err := os.ReadFile(real)
	if err != nil {
		return false, err
	}
	out, ok, err := removeKey(b, "enrollment_token", used,
		fmt.Sprintf("# enrollment_token was removed by molt-agent once it enrolled (%s):\n# set keep_enrollment_token: true to keep it", now.UTC().Format(time.RFC3339)))
	if err != nil || !ok {
		return false, err
	}
	// What is written must read back as it was, less the token.
	if _, err := Parse(out); err != nil {
		return false, fmt.Errorf("%s: the file without enrollment_token does not read back (%w): remove the key by hand", path, err)
	}
	if err := atomicfile.WriteFile(real, out, fi.Mode().Perm()); err != nil {
		return false, fmt.Errorf("rewrite %s: %w", path, err)
	}
	return true, nil
}

// removeKey removes the top-level key of the YAML document b when its
// value is the scalar want, and puts note (a comment) with the comments
// above the key in its place. ok is false when the key was not there with
// that value.
func removeKey(b []byte, key, want, note string) (out []byte, ok bool, err error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, false, fmt.Errorf("not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, false, nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Value != key || v.Kind != yaml.ScalarNode || v.Value != want {
			continue
		}
		// The comments above the key may head what follows; the one on
		// its line spoke of the token and goes with it.
		comment := joinComments(k.HeadComment, note, k.FootComment, v.FootComment)
		m.Content = append(m.Content[:i], m.Content[i+2:]...)
		if i < len(m.Content) {
			next := m.Content[i]
			next.HeadComment = joinComments(comment, next.HeadComment)
		} else {
			m.FootComment = joinComments(m.FootComment, comment)
		}
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(indentOf(b))
		if err := enc.Encode(&doc); err != nil {
			return nil, false, err
		}
		if err := enc.Close(); err != nil {
			return nil, false, err
		}
		return buf.Bytes(), true, nil
	}
	return nil, false, nil
}

func joinComments(cs ...string) string {
	var out []string
	for _, c := range cs {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return strings.Join(out, "\n")
}

// indentOf guesses the indentation the file uses (the first indented
// key), so that the rewritten file looks like the one an operator wrote.
func indentOf(b []byte) int {
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimLeft(line, " ")
		n := len(line) - len(trimmed)
		if n == 0 || trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "- ") {
			continue
		}
		return min(max(n, 2), 8)
	}
	return 2
}
