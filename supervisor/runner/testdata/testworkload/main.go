// Command testworkload is the workload of the runner's tests: its
// behaviour is chosen by flags (serve HTTP and become ready after a
// delay, fail its health check after a while, exit with a code, ignore
// SIGTERM, start a child, write the ready file, print lines, dump its
// environment).
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "", "serve HTTP here: /ready (503 until -ready-after), /healthz (500 from -unhealthy-after)")
	readyAfter := flag.Duration("ready-after", 0, "become ready after this long")
	unhealthyAfter := flag.Duration("unhealthy-after", 0, "fail /healthz from this long after the start (0: never)")
	readyFile := flag.Bool("ready-file", false, "create $MOLT_READY_FILE after -ready-after")
	exitAfter := flag.Duration("exit-after", 0, "exit after this long (0: run until stopped)")
	exitCode := flag.Int("exit-code", 0, "the code of -exit-after")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	child := flag.String("child", "", "start a child that ignores SIGTERM and write its pid to this file")
	envFile := flag.String("env-file", "", "write the working directory and the environment to this file")
	print := flag.Int("print", 0, "print this many numbered lines to stdout and to stderr")
	printEvery := flag.Duration("print-every", 0, "print a numbered line to stdout this often")
	long := flag.Int("long", 0, "print a line this long to stdout")
	sleep := flag.Bool("sleep", false, "only sleep (the child)")
	flag.Parse()
	start := time.Now()

	if *ignoreTerm || *sleep {
		signal.Ignore(syscall.SIGTERM)
	}
	if *sleep {
		time.Sleep(time.Hour)
		return
	}
	if *envFile != "" {
		wd, _ := os.Getwd()
		body := "PWD=" + wd + "\n" + strings.Join(os.Environ(), "\n") + "\n"
		if err := os.WriteFile(*envFile, []byte(body), 0o644); err != nil {
			fail(err)
		}
	}
	if *child != "" {
		exe, _ := os.Executable()
		c := exec.Command(exe, "-sleep")
		if err := c.Start(); err != nil {
			fail(err)
		}
		if err := os.WriteFile(*child, []byte(fmt.Sprint(c.Process.Pid)), 0o644); err != nil {
			fail(err)
		}
	}
	for n := 1; n <= *print; n++ {
		fmt.Printf("stdout line %d\n", n)
		fmt.Fprintf(os.Stderr, "stderr line %d\n", n)
	}
	if *long > 0 {
		fmt.Println(strings.Repeat("x", *long))
		fmt.Println("after the long line")
	}
	if *printEvery > 0 {
		go func() {
			for n := 1; ; n++ {
				fmt.Printf("tick %d\n", n)
				time.Sleep(*printEvery)
			}
		}()
	}
	if *readyFile {
		go func() {
			time.Sleep(*readyAfter)
			if err := os.WriteFile(os.Getenv("MOLT_READY_FILE"), nil, 0o644); err != nil {
				fail(err)
			}
		}()
	}
	if *listen != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
			if time.Since(start) < *readyAfter {
				http.Error(w, "starting", http.StatusServiceUnavailable)
			}
		})
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			if *unhealthyAfter > 0 && time.Since(start) >= *unhealthyAfter {
				http.Error(w, "sick", http.StatusInternalServerError)
			}
		})
		go func() {
			time.Sleep(*readyAfter)
			l, err := net.Listen("tcp", *listen)
			if err != nil {
				fail(err)
			}
			fail(http.Serve(l, mux))
		}()
	}
	if *exitAfter > 0 {
		time.Sleep(*exitAfter)
		os.Exit(*exitCode)
	}
	select {}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "testworkload:", err)
	os.Exit(70)
}
