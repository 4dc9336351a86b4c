package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"github.com/moltfleet/molt/protocol"
)

func TestHealthFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    protocol.RunControls
		wantErr string
	}{
		{name: "default: the watch is on", args: nil},
		{name: "off", args: []string{"--health-halt=false"}, want: protocol.RunControls{NoHealthHalt: true}},
		{name: "on, said so", args: []string{"--health-halt"}},
		{name: "soak and thresholds", args: []string{"--health-soak", "20m", "--health-min-agents", "3", "--health-percent", "5"},
			want: protocol.RunControls{HealthSoakSeconds: 1200, HealthMinAgents: 3, HealthPercent: 5}},
		{name: "soak with the watch off", args: []string{"--health-halt=false", "--health-soak", "20m"}, wantErr: "not with --health-halt=false"},
		{name: "negative soak", args: []string{"--health-soak", "-1m"}, wantErr: "--health-soak: -1m0s is negative"},
		{name: "percent over 100", args: []string{"--health-percent", "150"}, wantErr: "--health-percent 150 is not from 0 to 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o rolloutFlags
			f := pflag.NewFlagSet("upgrade", pflag.ContinueOnError)
			o.add(f)
			if err := f.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var req protocol.RunRequest
			err := o.apply(&req, time.Now())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := req.RunControls
			got := protocol.RunControls{HealthSoakSeconds: c.HealthSoakSeconds, HealthMinAgents: c.HealthMinAgents, HealthPercent: c.HealthPercent, NoHealthHalt: c.NoHealthHalt}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Error(d)
			}
		})
	}
}
