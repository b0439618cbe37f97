package localstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"

	"turnover/internal/app"
	"turnover/internal/config"
)

type nopHandler struct{}

func (nopHandler) Invoke(context.Context, []byte) ([]byte, error) { return []byte("{}"), nil }

func nopFunctions() map[string]app.Function {
	f := func(context.Context, aws.Config, config.Lookup, *slog.Logger) (lambda.Handler, error) {
		return nopHandler{}, nil
	}
	return map[string]app.Function{"api": f, "reset": f, "finalize": f, "offboard": f, "mailer": f}
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func TestCloseStopsEverything(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "keys", "jwt.pem")
	s, err := Start(context.Background(), Options{
		Dir:           "../..",
		FrontDoorAddr: "127.0.0.1:0",
		APIAddr:       "127.0.0.1:0",
		KeyFile:       keyFile,
		Functions:     nopFunctions(),
		Logger:        quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %v mode %v, want it made with mode 0600", err, fi)
	}
	pid := s.moto.cmd.Process.Pid
	motoAddr := s.motoURL.Host
	fdAddr, apiAddr := s.FrontDoorURL[len("http://"):], s.APIURL[len("http://"):]
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("moto (pid %d) still there after Close: %v", pid, err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("moto's process group %d still there after Close: %v", pid, err)
	}
	for _, addr := range []string{fdAddr, apiAddr, motoAddr} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("port %s still taken after Close: %v", addr, err)
			continue
		}
		l.Close()
	}

	// A token signed from the key file outside any stack passes the stack's check.
	a, err := DefaultJWTAuthorizer("../..", nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := SignToken(keyFile, a, TokenClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyToken(&s.key.PublicKey, &a, tok, time.Now()); err != nil {
		t.Errorf("token from the key file rejected: %v", err)
	}
}

func TestStartFailsCleanly(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	fns := nopFunctions()
	delete(fns, "finalize")
	_, err = Start(context.Background(), Options{
		Dir:           "../..",
		FrontDoorAddr: "127.0.0.1:0",
		APIAddr:       "127.0.0.1:0",
		Functions:     fns,
		Logger:        quietLogger(),
	})
	if err == nil {
		t.Fatal("start without a finalize builder succeeded")
	}
	_, err = Start(context.Background(), Options{
		Dir:           "../..",
		FrontDoorAddr: "127.0.0.1:0",
		APIAddr:       "127.0.0.1:0",
		Functions:     nopFunctions(),
		Logger:        quietLogger(),
		Seed:          func(context.Context, aws.Config, Resources) error { return errors.New("no seed today") },
	})
	if err == nil || !strings.Contains(err.Error(), "no seed today") {
		t.Fatalf("start with a failing seed: %v, want the seed's error", err)
	}
	_, err = Start(context.Background(), Options{
		Dir:           "../..",
		FrontDoorAddr: "127.0.0.1:0",
		APIAddr:       taken.Addr().String(),
		Functions:     nopFunctions(),
		Logger:        quietLogger(),
	})
	if err == nil {
		t.Fatal("start on a taken port succeeded")
	}
	// No moto left behind by either attempt: no child processes of this test remain.
	if kids := childProcesses(t); len(kids) > 1 {
		// One is the shared stack's moto.
		t.Errorf("child processes after failed starts: %v", kids)
	}
}

// childProcesses lists the pids whose parent is this process.
func childProcesses(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	me := os.Getpid()
	var kids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces, so read after the last ')'.
		s := string(b)
		i := len(s) - 1
		for i >= 0 && s[i] != ')' {
			i--
		}
		var state byte
		var ppid int
		if _, err := fmt.Sscanf(s[i+2:], "%c %d", &state, &ppid); err == nil && ppid == me {
			kids = append(kids, pid)
		}
	}
	return kids
}
