package runner

import (
	"runtime"
	"strings"
)

// envKey is the name of a NAME=value entry, as the OS compares names
// (Windows ignores case; its hidden "=C:" entries start with '=').
func envKey(kv string) string {
	k := kv
	if i := strings.IndexByte(kv[min(1, len(kv)):], '='); i >= 0 {
		k = kv[:i+min(1, len(kv))]
	}
	if runtime.GOOS == "windows" {
		return strings.ToUpper(k)
	}
	return k
}
