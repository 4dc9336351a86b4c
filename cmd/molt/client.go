package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/internal/smallfile"
)

// Environment variables the operator CLI reads.
const (
	envServer    = "MOLT_SERVER"
	envToken     = "MOLT_TOKEN"
	envTokenFile = "MOLT_TOKEN_FILE"
	envCA        = "MOLT_CA"
	envCLIConfig = "MOLT_CLI_CONFIG"
)

// maxTokenFile bounds a token file and cli.yaml.
const maxTokenFile = 64 << 10

// Exit codes of the operator commands beyond cli's 0/1/2.
const (
	// exitRunNotOK: molt upgrade --wait saw the run end ENDED_NOT_OK.
	exitRunNotOK = 3
	// exitRunPaused: molt upgrade --wait saw the run pause (failure
	// threshold or an operator) and stopped waiting.
	exitRunPaused = 4
	// exitUnreachable: the server could not be reached or not trusted.
	exitUnreachable = 5
	// exitAuth: the server refused the token (401/403).
	exitAuth = 6
	// exitInterrupted: Ctrl-C ended molt upgrade --wait (the run goes on).
	exitInterrupted = 130
)

// cliFile is ~/.config/molt/cli.yaml.
type cliFile struct {
	Server    string `yaml:"server"`
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	CA        string `yaml:"ca"`
}

// connFlags are the flags every command that talks to the server takes.
type connFlags struct {
	server, token, tokenFile, ca, config string
	timeoutSec                           int
}

// addConnFlags adds the connection flags to cmd as persistent flags, so
// every subcommand below it takes them.
func addConnFlags(cmd *cobra.Command) *connFlags {
	f := &connFlags{}
	// What these commands print comes from the server: as text, escaped.
	escapeTextOutput(cmd)
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.server, "server", "", "control server URL, https://host:port (env "+envServer+")")
	pf.StringVar(&f.token, "token", "", "API token (env "+envToken+"; prefer --token-file, a flag shows in ps)")
	pf.StringVar(&f.tokenFile, "token-file", "", "file holding the API token (env "+envTokenFile+")")
	pf.StringVar(&f.ca, "ca", "", "PEM file of the CA that signed the server's certificate (env "+envCA+")")
	pf.StringVar(&f.config, "cli-config", "", "CLI configuration file (env "+envCLIConfig+"; default "+defaultCLIConfigShown()+")")
	pf.IntVar(&f.timeoutSec, "timeout", 60, "seconds one request may take")
	return f
}

func defaultCLIConfigShown() string {
	if runtime.GOOS == "windows" {
		return `%AppData%\molt\cli.yaml`
	}
	return "~/.config/molt/cli.yaml"
}

// defaultCLIConfig is $XDG_CONFIG_HOME/molt/cli.yaml, ~/.config/molt/cli.yaml
// (also on macOS, where operators expect dotfiles), %AppData%\molt\cli.yaml
// on Windows.
func defaultCLIConfig() string {
	if runtime.GOOS == "windows" {
		if d, err := os.UserConfigDir(); err == nil {
			return filepath.Join(d, "molt", "cli.yaml")
		}
		return ""
	}
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "molt", "cli.yaml")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".config", "molt", "cli.yaml")
	}
	return ""
}

// conn is the resolved connection: where each value came from is kept so
// an error can say which source to fix.
type conn struct {
	Server, Token, CA string
	From              map[string]string
	// Warnings are printed, not fatal (a token file others can read).
	Warnings []string
}

// resolveConn applies the precedence flags > environment > cli.yaml.
func resolveConn(f *connFlags, getenv func(string) string) (conn, error) {
	c := conn{From: map[string]string{}}
	path, explicit := f.config, f.config != ""
	if !explicit {
		if p := getenv(envCLIConfig); p != "" {
			path, explicit = p, true
		} else {
			path = defaultCLIConfig()
		}
	}
	var file cliFile
	if path != "" {
		var err error
		file, err = readCLIFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist) && !explicit:
		case err != nil:
			return c, cli.Exit(2, fmt.Errorf("cli config %s: %w", path, err))
		case file.Token != "":
			if fi, err := os.Stat(path); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s holds a token and is readable by others (mode %04o): chmod 600 %s", path, fi.Mode().Perm(), path))
			}
		}
	}
	pick := func(key string, vals ...[2]string) string {
		for _, v := range vals {
			if v[0] != "" {
				c.From[key] = v[1]
				return v[0]
			}
		}
		return ""
	}
	c.Server = pick("server", [2]string{f.server, "--server"}, [2]string{getenv(envServer), envServer}, [2]string{file.Server, path})
	c.CA = pick("ca", [2]string{f.ca, "--ca"}, [2]string{getenv(envCA), envCA}, [2]string{expandHome(file.CA), path})
	if f.token != "" && f.tokenFile != "" {
		return c, cli.Usage("--token and --token-file: give one of them")
	}
	tok := pick("token",
		[2]string{f.token, "--token"}, [2]string{prefixFile(f.tokenFile), "--token-file"},
		[2]string{getenv(envToken), envToken}, [2]string{prefixFile(getenv(envTokenFile)), envTokenFile},
		[2]string{file.Token, path}, [2]string{prefixFile(expandHome(file.TokenFile)), path})
	if name, ok := strings.CutPrefix(tok, "\x00file:"); ok {
		b, err := smallfile.Read(name, maxTokenFile)
		if err != nil {
			return c, cli.Exit(2, fmt.Errorf("token file (%s): %w", c.From["token"], err))
		}
		if fi, err := os.Stat(name); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
			c.Warnings = append(c.Warnings, fmt.Sprintf("token file %s is readable by others (mode %04o): chmod 600 %s", name, fi.Mode().Perm(), name))
		}
		tok = strings.TrimSpace(string(b))
		if tok == "" {
			return c, cli.Exit(2, fmt.Errorf("token file %s is empty", name))
		}
	}
	c.Token = tok
	if c.Server == "" {
		return c, cli.Exit(2, fmt.Errorf("no server configured: pass --server https://host:port, set %s, or write \"server:\" in %s", envServer, shownPath(path)))
	}
	return c, nil
}

func shownPath(p string) string {
	if p == "" {
		return defaultCLIConfigShown()
	}
	return p
}

// prefixFile marks a token file name so pick can tell it from a token.
func prefixFile(name string) string {
	if name == "" {
		return ""
	}
	return "\x00file:" + name
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, rest)
		}
	}
	return p
}

func readCLIFile(path string) (cliFile, error) {
	var c cliFile
	b, err := smallfile.Read(path, maxTokenFile)
	if err != nil {
		return c, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if c.Token != "" && c.TokenFile != "" {
		return c, errors.New("token and token_file: give one of them")
	}
	return c, nil
}

// client resolves the connection and builds an API client.
func (f *connFlags) client() (*apiclient.Client, error) {
	c, err := resolveConn(f, os.Getenv)
	if err != nil {
		return nil, err
	}
	for _, w := range c.Warnings {
		fmt.Fprintf(cli.Stderr, "molt: warning: %s\n", w)
	}
	if f.timeoutSec <= 0 || f.timeoutSec > 3600 {
		return nil, cli.Usage("--timeout: %d is not between 1 and 3600 seconds", f.timeoutSec)
	}
	cl, err := apiclient.New(apiclient.Options{
		Server:  c.Server,
		Token:   c.Token,
		CAFile:  c.CA,
		Timeout: timeoutSeconds(f.timeoutSec),
	})
	if err != nil {
		return nil, cli.Exit(2, fmt.Errorf("%w (from %s)", err, c.From["server"]))
	}
	return cl, nil
}

// apiErr maps client errors to exit codes; everything else stays 1. The
// message, which may quote what the server (or an agent) said, is cleaned:
// it is printed on the operator's terminal.
func apiErr(err error) error {
	if err == nil {
		return nil
	}
	err = cleanError{err}
	var ce *apiclient.ConnectError
	var te *apiclient.CertError
	if errors.As(err, &ce) || errors.As(err, &te) {
		return cli.Exit(exitUnreachable, err)
	}
	if errors.Is(err, apiclient.ErrUnauthorized) {
		return cli.Exit(exitAuth, err)
	}
	return err
}

// cleanError shows an error's message cleaned, and keeps it for
// errors.Is and errors.As.
type cleanError struct{ err error }

func (e cleanError) Error() string { return escape(e.err.Error(), nil) }
func (e cleanError) Unwrap() error { return e.err }

func timeoutSeconds(n int) time.Duration { return time.Duration(n) * time.Second }
