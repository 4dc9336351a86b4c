package agent

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/moltfleet/molt/config"
)

// Environment variables that override agent.yaml (and are overridden by
// flags). Lists are comma-separated; labels are k=v pairs.
const (
	EnvServer          = "MOLT_SERVER"
	EnvCAFile          = "MOLT_CA_FILE"
	EnvEnrollmentToken = "MOLT_ENROLLMENT_TOKEN"
	EnvTrustedKeys     = "MOLT_TRUSTED_KEYS"
	EnvName            = "MOLT_NAME"
	EnvLabels          = "MOLT_LABELS"
	EnvCluster         = "MOLT_CLUSTER"
	EnvLogLevel        = "MOLT_LOG_LEVEL"
)

// Overrides are the values given on the command line; nil or empty fields
// are not given. Lists and maps replace the file's, they do not merge: the
// operator who passes --label means exactly those labels.
type Overrides struct {
	Server      string
	CAFile      string
	TrustedKeys []string
	Name        string
	Labels      map[string]string
	Cluster     string
	LogLevel    string
}

// ConfigSource describes where the configuration came from.
type ConfigSource struct {
	// File is the agent.yaml read, empty when there was none.
	File string
	// From maps each key that did not come from the file to its source
	// (an environment variable or a flag).
	From map[string]string
}

// ErrConfig wraps every configuration error: the command exits 12 for it.
var ErrConfig = errors.New("configuration unusable")

// LoadConfig resolves the agent's configuration: flag > environment > file.
// path is the agent.yaml to read; required says whether a missing file is
// an error (it was named with --config) or means an empty configuration
// (a local-only agent with defaults). getenv is os.Getenv outside tests.
func LoadConfig(path string, required bool, getenv func(string) string, o Overrides) (*config.Config, ConfigSource, error) {
	src := ConfigSource{From: map[string]string{}}
	c, err := config.Load(path)
	switch {
	case err == nil:
		src.File = path
	case errors.Is(err, config.ErrNotFound) && !required:
		c = &config.Config{}
	default:
		return nil, src, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	str := func(key, env, flag string, dst *string) {
		if v := getenv(env); v != "" {
			*dst, src.From[key] = v, env
		}
		if flag != "" {
			*dst, src.From[key] = flag, "flag"
		}
	}
	str("server", EnvServer, o.Server, &c.Server)
	str("ca_file", EnvCAFile, o.CAFile, &c.CAFile)
	str("enrollment_token", EnvEnrollmentToken, "", &c.EnrollmentToken)
	str("name", EnvName, o.Name, &c.Name)
	str("cluster", EnvCluster, o.Cluster, &c.Cluster)
	str("log_level", EnvLogLevel, o.LogLevel, &c.LogLevel)
	if v := getenv(EnvTrustedKeys); v != "" {
		c.TrustedKeys, src.From["trusted_keys"] = splitList(v), EnvTrustedKeys
	}
	if len(o.TrustedKeys) > 0 {
		c.TrustedKeys, src.From["trusted_keys"] = o.TrustedKeys, "flag"
	}
	if v := getenv(EnvLabels); v != "" {
		l, err := ParseLabels(splitList(v))
		if err != nil {
			return nil, src, fmt.Errorf("%w: %s: %w", ErrConfig, EnvLabels, err)
		}
		c.Labels, src.From["labels"] = l, EnvLabels
	}
	if len(o.Labels) > 0 {
		c.Labels, src.From["labels"] = o.Labels, "flag"
	}
	if err := c.Validate(); err != nil {
		return nil, src, fmt.Errorf("%w: %s", ErrConfig, src.describe(err))
	}
	return c, src, nil
}

// describe prefixes a validation error with where its key came from, so
// "server: ... is not an http(s) URL" says whether to fix agent.yaml, the
// environment or the command line.
func (s ConfigSource) describe(err error) string {
	msg := err.Error()
	key, _, _ := strings.Cut(msg, ":")
	key, _, _ = strings.Cut(key, "[")
	if from, ok := s.From[key]; ok {
		return fmt.Sprintf("%s (from %s)%s", key, from, strings.TrimPrefix(msg, key))
	}
	if s.File != "" {
		return s.File + ": " + msg
	}
	return msg
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ParseLabels parses k=v pairs.
func ParseLabels(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not a label (want key=value)", p)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m, nil
}

// SortedLabels renders labels as sorted k=v pairs.
func SortedLabels(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
