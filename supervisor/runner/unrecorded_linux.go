package runner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moltfleet/molt/platform"
)

// maxEnviron bounds what is read of one process's environment.
const maxEnviron = 1 << 20

// Unrecorded lists the workload instances of the home homeDir that run
// now, recorded or not: every process that leads its own process group
// (as every instance does) and whose environment names this home
// (MOLT_HOME) and a workload (MOLT_WORKLOAD), found in /proc. A
// supervisor killed between an instance's start and its record in
// state/workloads.json leaves one that nothing else names. Processes of
// other users, which /proc does not show the environment of, are not
// listed.
func Unrecorded(homeDir string) ([]Found, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	home := filepath.Clean(homeDir)
	var out []Found
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if pgid, err := groupOf(pid); err != nil || pgid != pid {
			continue
		}
		env, err := environ(pid)
		if err != nil || filepath.Clean(env["MOLT_HOME"]) != home || env["MOLT_WORKLOAD"] == "" {
			continue
		}
		id, err := platform.IdentifyProcess(pid)
		if err != nil {
			continue // gone meanwhile
		}
		out = append(out, Found{Name: env["MOLT_WORKLOAD"], Version: env["MOLT_WORKLOAD_VERSION"], Process: id})
	}
	return out, nil
}

// groupOf is pid's process group, from /proc/<pid>/stat (the field after
// the state, past the command's parenthesis).
func groupOf(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 || f[0] == "Z" {
		return 0, errors.New("no live process")
	}
	return strconv.Atoi(f[2])
}

// environ is pid's initial environment.
func environ(pid int) (map[string]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEnviron))
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok && strings.HasPrefix(k, "MOLT_") {
			env[k] = v
		}
	}
	return env, nil
}
