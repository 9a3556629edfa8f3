package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMetricsOnUnixSocket: metrics_address unix:/path serves /metrics on a
// socket whose file mode is metrics_socket_mode, so that who may read
// every tenant's counters is a matter of file permissions; a bad mode is
// refused naming the key and the value.
func TestMetricsOnUnixSocket(t *testing.T) {
	dir := t.TempDir()
	msock := filepath.Join(dir, "metrics.sock")
	yaml := "api_socket: " + filepath.Join(dir, "xvsd.sock") + "\nmetrics_address: unix:" + msock + "\nmetrics_socket_mode: \"0640\"\n" +
		"ports: [{name: a, type: memory, dev: m0, vsid: 5001}]"
	runDaemon(t, yaml)
	fi, err := os.Stat(msock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o640 {
		t.Fatalf("metrics socket %v, %v: want a socket of mode 0640", fi, err)
	}
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", msock)
	}}}
	resp, err := c.Get("http://xvsd/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `xvs_port_rx_frames_total{port="a"`) {
		t.Fatalf("GET /metrics on the socket: %d\n%.300s", resp.StatusCode, body)
	}

	_, err = loadConfig(strings.NewReader("api_socket: /run/x.sock\nmetrics_socket_mode: rw-r\n"), "test")
	if err == nil || !strings.Contains(err.Error(), `metrics_socket_mode: "rw-r"`) {
		t.Fatalf("a bad mode: %v", err)
	}
}
