package localstack

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// A port another server took before moto could bind it is told apart from moto failing,
// so Start can try another port: moto exits on its bind error, and the other server's
// answers are not taken for moto's.
func TestMotoOnATakenPort(t *testing.T) {
	python, err := findPython()
	if err != nil {
		t.Skip(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	other := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})}
	go other.Serve(ln)
	t.Cleanup(func() { other.Close() })

	m, err := startMoto(python, ln.Addr().(*net.TCPAddr).Port, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.ready(ctx); err == nil {
		t.Fatal("moto on a taken port was ready")
	}
	if !m.portTaken() {
		t.Errorf("moto's exit was not told apart as a taken port; its output:\n%s", m.output())
	}
}
