package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"
)

// LogOptions chooses where and how a command logs.
type LogOptions struct {
	// Level is debug, info, warn or error.
	Level string
	// File, when set, receives JSON lines, rotated by size. Otherwise the
	// log is human-readable on stderr.
	File string
	// MaxSizeMB and MaxBackups bound the rotated files (defaults 20 and 5).
	MaxSizeMB  int
	MaxBackups int
	// Console also writes human-readable lines to stderr when File is set.
	Console bool
}

// NewLogger builds the logger described by o. The returned function flushes
// and closes it.
func NewLogger(o LogOptions) (*zap.Logger, func(), error) {
	var lvl zapcore.Level
	if o.Level == "" {
		o.Level = "info"
	}
	if err := lvl.UnmarshalText([]byte(o.Level)); err != nil {
		return nil, nil, Usage("--log-level: %q is not one of debug, info, warn, error", o.Level)
	}
	consoleEnc := zap.NewDevelopmentEncoderConfig()
	consoleEnc.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
	console := zapcore.NewCore(zapcore.NewConsoleEncoder(consoleEnc), zapcore.Lock(os.Stderr), lvl)
	if o.File == "" {
		l := zap.New(console)
		return l, func() { _ = l.Sync() }, nil
	}
	if err := os.MkdirAll(filepath.Dir(o.File), 0o755); err != nil {
		return nil, nil, fmt.Errorf("log directory: %w", err)
	}
	if o.MaxSizeMB == 0 {
		o.MaxSizeMB = 20
	}
	if o.MaxBackups == 0 {
		o.MaxBackups = 5
	}
	rot := &lumberjack.Logger{Filename: o.File, MaxSize: o.MaxSizeMB, MaxBackups: o.MaxBackups}
	jsonEnc := zap.NewProductionEncoderConfig()
	jsonEnc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(jsonEnc), zapcore.AddSync(rot), lvl)
	if o.Console {
		core = zapcore.NewTee(core, console)
	}
	l := zap.New(core)
	return l, func() { _ = l.Sync(); _ = rot.Close() }, nil
}
