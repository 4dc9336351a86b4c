//go:build windows

// Command svcquery prints a Windows service's command line and recovery
// settings as JSON, for the tests that install the service under Wine,
// whose sc.exe has no qc or qfailure.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc/mgr"
)

type action struct {
	Type    int   `json:"type"`
	DelayMS int64 `json:"delay_ms"`
}

type result struct {
	Actions            []action `json:"actions"`
	ResetPeriodSeconds uint32   `json:"reset_period_seconds"`
	ActionsError       string   `json:"actions_error,omitempty"`
	NonCrash           *bool    `json:"on_non_crash_failures,omitempty"`
	NonCrashError      string   `json:"on_non_crash_failures_error,omitempty"`
	PreshutdownMS      *uint32  `json:"preshutdown_timeout_ms,omitempty"`
	PreshutdownError   string   `json:"preshutdown_timeout_error,omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: svcquery NAME")
		os.Exit(2)
	}
	m, err := mgr.Connect()
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	s, err := m.OpenService(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(1)
	}
	var r result
	if acts, err := s.RecoveryActions(); err != nil {
		r.ActionsError = err.Error()
	} else {
		for _, a := range acts {
			r.Actions = append(r.Actions, action{a.Type, a.Delay.Milliseconds()})
		}
	}
	if p, err := s.ResetPeriod(); err == nil {
		r.ResetPeriodSeconds = p
	}
	if nc, err := s.RecoveryActionsOnNonCrashFailures(); err != nil {
		r.NonCrashError = err.Error()
	} else {
		r.NonCrash = &nc
	}
	var pre struct{ timeoutMS uint32 }
	var need uint32
	if err := windows.QueryServiceConfig2(s.Handle, windows.SERVICE_CONFIG_PRESHUTDOWN_INFO, (*byte)(unsafe.Pointer(&pre)), uint32(unsafe.Sizeof(pre)), &need); err != nil {
		r.PreshutdownError = err.Error()
	} else {
		r.PreshutdownMS = &pre.timeoutMS
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
}
