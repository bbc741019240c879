package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ghzVersion is pinned: `@latest` resolves to an old release without --duration-stop.
const ghzVersion = "v0.120.0"

// ensureH2load returns the path of h2load, installing Debian's nghttp2-client with
// apt-get when it is missing and we are root.
func ensureH2load() (string, error) {
	if p, err := exec.LookPath("h2load"); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("h2load not found: install the Debian/Ubuntu package nghttp2-client (or run as root to let loadbench install it)")
	}
	logf("installing nghttp2-client (h2load) with apt-get")
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "--no-install-recommends", "nghttp2-client"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, tail(out, 2000))
		}
	}
	return exec.LookPath("h2load")
}

// ensureGhz returns bin/ghz, installing ghz@ghzVersion there with `go install` when
// it is missing.
func ensureGhz(root string) (string, error) {
	bin := filepath.Join(root, "bin")
	p := filepath.Join(bin, "ghz")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	logf("installing ghz %s into %s", ghzVersion, bin)
	cmd := exec.Command("go", "install", "github.com/bojand/ghz/cmd/ghz@"+ghzVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install ghz: %v\n%s", err, tail(out, 2000))
	}
	return p, nil
}

// build compiles flaat-extauthz and the two bench servers into dir.
func build(root, dir string) error {
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"./cmd/flaat-extauthz", "./bench/cmd/noop", "./bench/cmd/jwxverify")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, tail(out, 4000))
	}
	return nil
}

// machine describes the machine for the report.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("lscpu").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "Model name" {
				model = strings.TrimSpace(v)
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	h2 := ""
	if out, err := exec.Command("h2load", "--version").Output(); err == nil {
		h2 = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%d CPUs, %s, Linux %s, %s, ghz %s", numCPU(), model, kernel, h2, ghzVersion)
}
