// Package config reads agent.yaml, the one configuration file of an agent
// home. The agent and the supervisor both read it: the supervisor only its
// "supervisor" section. Unknown keys and bad values are errors that name the
// key, so a typo never silently falls back to a default.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxSize bounds agent.yaml.
const MaxSize = 1 << 20

// Config is agent.yaml.
type Config struct {
	// Server is the control server's URL (https://host:port).
	Server string `yaml:"server,omitempty"`
	// CAFile is a PEM file to trust for the server's certificate.
	CAFile string `yaml:"ca_file,omitempty"`
	// EnrollmentToken is used once, at enrollment; the agent then removes
	// it from agent.yaml unless KeepEnrollmentToken (RemoveEnrollmentToken).
	EnrollmentToken     string `yaml:"enrollment_token,omitempty"`
	KeepEnrollmentToken bool   `yaml:"keep_enrollment_token,omitempty"`
	// TrustedKeys are pack-signing public keys: file paths, or inline
	// minisign public keys (the base64 line, "RW...").
	TrustedKeys []string          `yaml:"trusted_keys,omitempty"`
	Name        string            `yaml:"name,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	// Cluster names agents that must never upgrade at the same time.
	Cluster string `yaml:"cluster,omitempty"`
	// LogLevel is the agent's log level (debug, info, warn, error).
	LogLevel string `yaml:"log_level,omitempty"`
	// DiskReserveMB is free space the updater leaves untouched.
	DiskReserveMB int `yaml:"disk_reserve_mb,omitempty"`

	Supervisor Supervisor `yaml:"supervisor,omitempty"`
}

// Supervisor holds the supervisor's trial and stop settings; a flag given
// to molt-supervisor wins over these.
type Supervisor struct {
	ReadyTimeout Duration `yaml:"ready_timeout,omitempty"`
	CrashBudget  *int     `yaml:"crash_budget,omitempty"`
	Watch        Duration `yaml:"watch,omitempty"`
	StopGrace    Duration `yaml:"stop_grace,omitempty"`
}

// Duration is a time.Duration written as "60s", "5m".
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("not a single value, want a duration (e.g. 90s, 5m)")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 90s, 5m)", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative, want a duration (e.g. 90s, 5m)", n.Value)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ErrNotFound means there is no configuration file.
var ErrNotFound = errors.New("configuration file not found")

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	c, err := Parse(b)
	var ke *KeyError
	if errors.As(err, &ke) {
		ke.File = path
		return nil, ke
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates agent.yaml content.
func Parse(b []byte) (*Config, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxSize)
	}
	var c Config
	if err := Decode(b, &c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks every value and names the key of the first bad one.
func (c *Config) Validate() error {
	if c.Server != "" {
		// Several replicas of one server may be listed, separated by
		// commas.
		for _, one := range strings.Split(c.Server, ",") {
			u, err := url.Parse(strings.TrimSpace(one))
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fmt.Errorf("server: %q is not an http(s) URL like https://molt.example.com:8443 (or several, separated by commas)", strings.TrimSpace(one))
			}
		}
	}
	for i, k := range c.TrustedKeys {
		if strings.TrimSpace(k) == "" {
			return fmt.Errorf("trusted_keys[%d]: empty, want a .pub file path or an inline minisign key (RW...)", i)
		}
	}
	for k, v := range c.Labels {
		if k == "" || len(k) > 63 || len(v) > 255 || strings.ContainsAny(k, "=, \t\n") {
			return fmt.Errorf("labels: %q is not a valid label (key 1-63 characters without '=', ',' or spaces; value up to 255)", k)
		}
	}
	if len(c.Cluster) > 255 {
		return fmt.Errorf("cluster: %d characters, want at most 255", len(c.Cluster))
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.DiskReserveMB < 0 {
		return fmt.Errorf("disk_reserve_mb: %d is negative, want megabytes, 0 or more (e.g. 500)", c.DiskReserveMB)
	}
	if c.Supervisor.CrashBudget != nil && *c.Supervisor.CrashBudget < 0 {
		return fmt.Errorf("supervisor.crash_budget: %d is negative, want failures allowed, 0 or more (e.g. 2)", *c.Supervisor.CrashBudget)
	}
	return nil
}
