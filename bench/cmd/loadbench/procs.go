package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flaat-extauthz/flaat-extauthz/bench/internal/load"
)

// proc is one server process under test, pinned to the server core.
type proc struct {
	name              string
	cmd               *exec.Cmd
	pid               int
	grpc, http, admin string // addresses; admin only for flaat-extauthz
	logPath           string
	exited            chan error
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startProc runs bin pinned to cpu with GOMAXPROCS=1, its output in dir/name.log.
func startProc(name, dir string, cpu int, bin string, args ...string) (*proc, error) {
	return startProcEnv(name, dir, cpu, nil, bin, args...)
}

// startProcEnv is startProc with env added to the process's environment.
func startProcEnv(name, dir string, cpu int, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), bin}, args...)...)
	cmd.Env = append(append(os.Environ(), "GOMAXPROCS=1"), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, pid: cmd.Process.Pid, logPath: logPath, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait(); lf.Close() }()
	return p, nil
}

// stop sends SIGTERM, then SIGKILL after 5 s.
func (p *proc) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitReady polls ready until it returns nil, the process exits, or 30 s pass.
func (p *proc) waitReady(ready func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case e := <-p.exited:
			log, _ := os.ReadFile(p.logPath)
			return fmt.Errorf("%s exited (%v) before it was ready:\n%s", p.name, e, tail(log, 2000))
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(p.logPath)
			return fmt.Errorf("%s not ready after 30s: %v\n%s", p.name, err, tail(log, 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// readyz is the readiness check of flaat-extauthz: its admin /readyz answers 200.
func readyz(admin string) func() error {
	return func() error {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	}
}

// checkCode makes one Check call with r and returns the CheckResponse status code.
func checkCode(addr string, r load.Req) (int, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(cc).Check(ctx, load.CheckRequest(r))
	if err != nil {
		return 0, err
	}
	return int(resp.GetStatus().GetCode()), nil
}

// httpCode makes one HTTP check (as nginx auth_request would) and returns the status.
func httpCode(addr string, r load.Req) (int, error) {
	code, _, err := httpCheck(addr, r)
	return code, err
}

// httpCheck makes one HTTP check and returns the status and the answer's headers.
func httpCheck(addr string, r load.Req) (int, http.Header, error) {
	req, err := http.NewRequest(r.Method, "http://"+addr+r.Path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Forwarded-Host", r.Host)
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// grpcReady is the readiness check of the bench servers: a Check call answers.
func grpcReady(addr string) func() error {
	return func() error {
		_, err := checkCode(addr, load.Req{Method: "GET", Host: "x", Path: "/"})
		return err
	}
}

var errMismatch = errors.New("unexpected answer")
