package server

import (
	"runtime"
	"strings"
	"unicode"
)

// hookEnvVar names the variable of the server's environment that lists
// further variables hooks may see (names separated by commas or spaces):
// the server's environment often holds secrets (a database password, a
// cloud key) that a notification script has no business seeing, so a hook
// gets only hookEnvNames, the names listed here, and its own MOLT_*
// variables. It sits in the same environment as the values it passes, so
// whoever controls that environment decides.
const hookEnvVar = "MOLT_HOOK_ENV"

// hookEnvNames are the server environment variables every hook gets: what
// a program needs to find other programs and the user's files (PATH, HOME,
// USER, LOGNAME), to speak the host's language and time (LANG, LANGUAGE,
// TZ and every LC_*), to write temporary files (TMPDIR), and to reach an
// HTTPS endpoint with the host's own CA bundle (SSL_CERT_FILE,
// SSL_CERT_DIR). On Windows: what the system's DLLs, cmd.exe and
// PowerShell fail without (SystemRoot, SystemDrive, windir, ComSpec,
// PATHEXT, TEMP, TMP, the profile and program folders, the processor
// description). None of them holds a secret by convention. Proxy
// variables are left out on purpose: their URLs often carry a password;
// list them in MOLT_HOOK_ENV to pass them.
var hookEnvNames = []string{
	"PATH", "HOME", "USER", "LOGNAME",
	"LANG", "LANGUAGE", "TZ",
	"TMPDIR",
	"SSL_CERT_FILE", "SSL_CERT_DIR",
	"SystemRoot", "SystemDrive", "windir", "ComSpec", "PATHEXT", "TEMP", "TMP",
	"USERPROFILE", "USERNAME", "APPDATA", "LOCALAPPDATA", "ProgramData",
	"ProgramFiles", "ProgramFiles(x86)", "ProgramW6432", "CommonProgramFiles",
	"NUMBER_OF_PROCESSORS", "PROCESSOR_ARCHITECTURE",
}

// hookEnv returns the environment of a hook: the variables of environ
// (the server's, as os.Environ gives it) that are in hookEnvNames, start
// with LC_ or are listed in environ's MOLT_HOOK_ENV, then own (the hook's
// MOLT_* variables), which win over any server variable of the same name.
// The server's own MOLT_* variables (MOLT_TOKEN, MOLT_HOOK_ENV itself) are
// not passed unless listed.
func hookEnv(environ, own []string) []string {
	allowed := map[string]bool{}
	for _, n := range hookEnvNames {
		allowed[envKey(n)] = true
	}
	for _, kv := range environ {
		if name, v, ok := strings.Cut(kv, "="); ok && envKey(name) == envKey(hookEnvVar) {
			for _, n := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
				allowed[envKey(n)] = true
			}
		}
	}
	mine := map[string]bool{}
	for _, kv := range own {
		name, _, _ := strings.Cut(kv, "=")
		mine[envKey(name)] = true
	}
	env := make([]string, 0, len(hookEnvNames)+len(own))
	for _, kv := range environ {
		// Windows keeps per-drive directories as "=C:=C:\dir": no name.
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		k := envKey(name)
		if mine[k] || !(allowed[k] || strings.HasPrefix(k, "LC_")) {
			continue
		}
		env = append(env, kv)
	}
	return append(env, own...)
}

// envKey is how the OS compares variable names: Windows ignores case
// ("Path" is PATH), other systems do not.
func envKey(name string) string {
	if runtime.GOOS == "windows" {
		return strings.ToUpper(name)
	}
	return name
}
