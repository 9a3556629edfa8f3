package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/internal/testutil"
	"github.com/xvswitch/xvs/ports"
	"github.com/xvswitch/xvs/ports/porttest"
	"github.com/xvswitch/xvs/vswitch"
)

// memPorts are the in-memory ports tests create through the "memory" type.
var memPorts = map[string]*porttest.Port{}

func init() {
	portTypes["memory"] = func(d *daemon, s portSpec) (ports.Port, error) {
		p := porttest.New(s.Name, nil)
		memPorts[s.Name] = p
		return p, nil
	}
}

func TestConfigErrorsNameFieldAndValue(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"workers: 0", "workers: 0"},
		{"workers: 99", "workers: 99"},
		{"poll_mode: lazy", `poll_mode: "lazy"`},
		{"log_level: loud", `log_level: "loud"`},
		{"mac_ageing: soon", `mac_ageing: "soon"`},
		{"mac_limit: -3", "mac_limit: -3"},
		{"headroom: 64", "headroom: 64"},
		{"frame_size: 1000", "frame_size: 1000"},
		{"frames_per_worker: 10", "frames_per_worker: 10"},
		{"api_socket: ''", "api_socket: empty"},
		{"wrokers: 2", "field wrokers not found"},
		{"ports: [{name: a, type: memory, dev: x}]", "ports[0].vsid: missing"},
		{"ports: [{name: a, type: memory, dev: x, vsid: 12}]", "ports[0].vsid: 12"},
		{"ports: [{name: a, type: floppy, dev: x, vsid: 0}]", `ports[0].type: "floppy"`},
		{"ports: [{type: memory, dev: x, vsid: 0}]", "ports[0].name: missing"},
		{"ports: [{name: a, type: memory, dev: x, vsid: 0}, {name: a, type: memory, dev: y, vsid: 0}]", `ports[1].name: "a" already used`},
		{"workers: [1", "yaml"},
		{"ports: [{name: a, type: memory, vsid: 0}]", "ports[0].dev: missing"},
		// The vhostuser fields are refused for the other types.
		{"ports: [{name: a, type: memory, dev: x, vsid: 0, socket: /run/xvs/a.sock}]", `ports[0].socket: "/run/xvs/a.sock": only vhostuser ports have a socket`},
		{"ports: [{name: a, type: memory, dev: x, vsid: 0, mode: client}]", `ports[0].mode: "client": only vhostuser ports`},
		{"ports: [{name: a, type: memory, dev: x, vsid: 0, mac: 02:00:00:00:00:01}]", `ports[0].mac: "02:00:00:00:00:01": only vhostuser ports`},
		{"ports: [{name: a, type: memory, dev: x, vsid: 0, queues: 2}]", "ports[0].queues: 2: only vhostuser ports"},
		{"ports: [{name: a, type: memory, dev: x, vsid: 0, sockets: /x}]", "field sockets not found"},
	} {
		_, err := loadConfig(strings.NewReader(tc.yaml), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.yaml, err, tc.want)
		}
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	cfg, err := loadConfig(strings.NewReader(""), "empty")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workers != 1 || cfg.PollMode != "adaptive" || cfg.APISocket != api.DefaultSocket || cfg.MetricsAddress != "127.0.0.1:9477" {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func startDaemon(t testing.TB, yaml string) (*daemon, *api.Client) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "xvsd.sock")
	return runDaemon(t, yaml+"\napi_socket: "+sock+"\nmetrics_address: 127.0.0.1:0\n"), api.NewClient(sock)
}

// runDaemon starts a daemon with the whole configuration yaml, closed when
// the test ends.
func runDaemon(t testing.TB, yaml string) *daemon {
	t.Helper()
	cfg, err := loadConfig(strings.NewReader(yaml), "test")
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	return d
}

func TestAPIPortsAndStats(t *testing.T) {
	d, c := startDaemon(t, "ports: [{name: a, type: memory, dev: m0, vsid: 5001}, {name: b, type: memory, dev: m1, vsid: 5001}]")
	fi, err := os.Stat(d.cfg.APISocket)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v; want 0600", fi.Mode(), err)
	}
	var ps []api.Port
	if err := c.Do("GET", "/ports", nil, &ps); err != nil || len(ps) != 2 || ps[0].Name != "a" || ps[0].Type != "memory" || ps[0].VSID != 5001 {
		t.Fatalf("ports %+v, %v", ps, err)
	}
	// Traffic through the running switch shows in stats and metrics.
	frame := append(bytes.Repeat([]byte{0xff}, 6), 2, 0, 0, 0, 0, 1, 0x88, 0xb5)
	memPorts["a"].Inject(append(frame, make([]byte, 46)...))
	if _, err := memPorts["b"].WaitSent(1, 2e9); err != nil {
		t.Fatal(err)
	}
	var st []struct {
		Name     string            `json:"name"`
		RxFrames uint64            `json:"rx_frames"`
		Drops    map[string]uint64 `json:"drops"`
	}
	if err := c.Do("GET", "/stats?port=a", nil, &st); err != nil || len(st) != 1 || st[0].RxFrames != 1 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	if _, ok := st[0].Drops["ring-full"]; !ok {
		t.Fatalf("stats lack the ring-full reason: %v", st[0].Drops)
	}
	// The switch counts a frame sent once the port's Transmit returns,
	// which can be after WaitSent saw it.
	testutil.Eventually(t, 2*time.Second, func() bool {
		var sb []vswitch.PortStats
		if err := c.Do("GET", "/stats?port=b", nil, &sb); err != nil || len(sb) != 1 {
			t.Fatalf("stats of b %+v, %v", sb, err)
		}
		return sb[0].TxFrames == 1
	}, "port b's tx_frames 1 in /stats")
	body := scrape(t, d)
	for _, want := range []string{`xvs_port_rx_frames_total{port="a",vsid="5001"} 1`, `xvs_port_tx_frames_total{port="b",vsid="5001"} 1`, `xvs_port_drops_total{port="a",reason="malformed",vsid="5001"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Add, move and remove a port at run time.
	v := uint32(5002)
	if err := c.Do("POST", "/ports", api.AddPort{Name: "c", Type: "memory", Dev: "m2", VSID: &v}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  api.AddPort
		want string
	}{
		{api.AddPort{Name: "c", Type: "memory", Dev: "m3", VSID: &v}, "already exists"},
		{api.AddPort{Name: "d", Type: "memory", Dev: "m2", VSID: &v}, "m2 is already attached as port c"},
		{api.AddPort{Name: "d", Type: "floppy", Dev: "m9", VSID: &v}, `type: "floppy"`},
		{api.AddPort{Name: "d", Type: "memory", Dev: "m9"}, "vsid: missing"},
		{api.AddPort{Name: "d", Type: "memory", Dev: "m9", VSID: ptr(uint32(7))}, "invalid VSID: 7"},
	} {
		if err := c.Do("POST", "/ports", tc.req, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("add %+v: %v, want %q", tc.req, err, tc.want)
		}
	}
	if err := c.Do("PATCH", "/ports/c", api.SetPort{VSID: ptr(uint32(5001))}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Do("DELETE", "/ports/c", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Do("DELETE", "/ports/c", nil, nil); err == nil || !strings.Contains(err.Error(), "no such port") {
		t.Fatalf("second delete: %v", err)
	}
	if err := c.Do("GET", "/nothing", nil, nil); err == nil || !strings.Contains(err.Error(), "no such API call") {
		t.Fatalf("unknown call: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func scrape(t *testing.T, d *daemon) string {
	t.Helper()
	rec := httptest.NewRecorder()
	d.mets.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func TestSecondDaemonOnSameSocketRefused(t *testing.T) {
	d, _ := startDaemon(t, "")
	cfg := *d.cfg
	d2, err := newDaemon(&cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.start(); err == nil || !strings.Contains(err.Error(), "another xvsd is listening") {
		t.Fatalf("second daemon: %v", err)
	}
}

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("workers: 0\n"), 0o644)
	var buf bytes.Buffer
	if code := run([]string{"--config", bad}, &buf); code != 1 || !strings.Contains(buf.String(), "workers: 0") {
		t.Fatalf("bad config: exit %d, %q", code, buf.String())
	}
	buf.Reset()
	if code := run([]string{"--config", filepath.Join(dir, "missing.yaml")}, &buf); code != 1 || !strings.Contains(buf.String(), "no such file") {
		t.Fatalf("missing config: exit %d, %q", code, buf.String())
	}
	buf.Reset()
	if code := run([]string{"--check", "--config", bad}, &buf); code != 1 {
		t.Fatalf("--check of a bad config: exit %d", code)
	}
	buf.Reset()
	if code := run([]string{"--bogus"}, &buf); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
	if code := run([]string{"--help"}, io.Discard); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
}

// FuzzAPIRequest sends arbitrary requests to the control API: whatever the
// input, the daemon answers (never panics) and never with a server error.
func FuzzAPIRequest(f *testing.F) {
	f.Add("POST", "/v1/ports", `{"name":"x","type":"memory","dev":"q","vsid":5001}`)
	f.Add("POST", "/v1/ports", `{"name":"x","vsid":-1}`)
	f.Add("PATCH", "/v1/ports/a", `{"vsid":4294967295}`)
	f.Add("PATCH", "/v1/ports/a", `{"vsid":null}`)
	f.Add("DELETE", "/v1/ports/%2e%2e", ``)
	f.Add("GET", "/v1/stats?port=a", ``)
	f.Add("POST", "/v1/ports", `[{]`)
	f.Add("GET", "/v2/ports", ``)
	f.Add("POST", "/v1/policy/routing-domain", `{"id":"blue"}`)
	f.Add("POST", "/v1/policy/virtual-subnet", `{"vsid":5001,"routing_domain":"blue","ipv4_prefix":"10.0.0.0/24"}`)
	f.Add("POST", "/v1/policy/lookup-record", `{"vsid":5001,"ca":"10.0.0.10","mac":"02:00:00:00:00:0a","pa":"192.168.1.1"}`)
	f.Add("DELETE", "/v1/policy/lookup-record", `{"vsid":5001,"ca":"10.0.0.10"}`)
	f.Add("DELETE", "/v1/policy/customer-route", `{"routing_domain":"blue","destination":"0.0.0.0/0","next_hop":"::"}`)
	f.Add("GET", "/v1/policy", ``)
	f.Add("GET", "/v1/extensions", ``)
	f.Add("POST", "/v1/extensions", `{"name":"x","path":"/nonexistent/xvs-ext","args":["-v"],"fail":"closed","direction":"ingress","vsids":[5001],"ports":["a"],"every-frame":true,"deadline":"500ms","cache-ttl":"60s","ring-size":1024,"slot-size":2048,"enabled":false,"config":{"k":"v"},"position":0}`)
	f.Add("POST", "/v1/extensions", `{"name":"x","path":"rel","fail":"sometimes","vsids":[-1],"deadline":"-5s","position":-7}`)
	f.Add("POST", "/v1/extensions", `{"name":"","config":{"":""},"ring-size":-1}`)
	f.Add("GET", "/v1/extensions/x", ``)
	f.Add("DELETE", "/v1/extensions/x", ``)
	f.Add("POST", "/v1/extensions/x/enable", ``)
	f.Add("POST", "/v1/extensions/%2e%2e/disable", `{}`)
	f.Add("PUT", "/v1/extensions/order", `{"names":["x","x",""]}`)
	f.Add("PUT", "/v1/extensions/order", `{"names":null}`)
	// vhost-user ports: sockets in dir only (see socketOutside).
	dir := f.TempDir()
	f.Add("POST", "/v1/ports", `{"name":"v","type":"vhostuser","socket":"`+dir+`/v.sock","mode":"server","mac":"02:00:00:00:00:01","queues":2,"vsid":5001}`)
	f.Add("POST", "/v1/ports", `{"name":"v","type":"vhostuser","socket":"`+dir+`/q.sock","mode":"client","vsid":0}`)
	f.Add("POST", "/v1/ports", `{"name":"v","type":"vhostuser","socket":"`+dir+`/v.sock","dev":"x","mode":"both","mac":"ff:ff:ff:ff:ff:ff","queues":-1,"fast_path":true,"vsid":5001}`)
	f.Add("POST", "/v1/ports", `{"name":"v","type":"vhostuser","socket":"rel.sock","vsid":5001}`)
	f.Add("POST", "/v1/ports", `{"name":"v","type":"memory","dev":"q","socket":"`+dir+`/m.sock","vsid":5001}`)
	d, _ := startDaemon(f, "ports: [{name: a, type: memory, dev: m0, vsid: 5001}]")
	h := d.routes()
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t") || strings.ContainsAny(method, " \r\n\t/") || method == "" {
			return
		}
		if namesExistingFile(body) {
			return // an extension load would run a program of this machine
		}
		if socketOutside(body, dir) {
			return // a vhostuser port would listen on, or connect to, a socket of this machine
		}
		req, err := http.NewRequest(method, "http://xvsd"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: status %d: %s", method, path, body, rec.Code, rec.Body)
		}
		// Keep the port set small and stable for the next input.
		for _, p := range d.ports() {
			if p.Name != "a" {
				d.removePort(p.Name)
			}
		}
		for _, x := range d.sw.Extensions() {
			d.sw.UnloadExtension(x.Name)
		}
	})
}

// namesExistingFile says whether a JSON body has a "path" (matched as
// encoding/json matches field names: in any case, at any depth here) that
// is a file of this machine.
func namesExistingFile(body string) bool {
	return anyField(body, "path", func(s string) bool {
		_, err := os.Stat(s)
		return err == nil
	})
}

// socketOutside says whether a JSON body has a "socket" (matched likewise)
// that is an absolute path outside dir: a vhostuser port would create a
// socket there, or remove a stale one, or speak vhost-user to whatever
// listens. (Relative paths are refused before any file is touched.)
func socketOutside(body, dir string) bool {
	return anyField(body, "socket", func(s string) bool {
		if !filepath.IsAbs(s) {
			return false
		}
		rel, err := filepath.Rel(dir, filepath.Clean(s))
		return err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../")
	})
}

// anyField says whether a JSON body has, at any depth, a non-empty string
// under a key that encoding/json would match to name, for which bad holds.
func anyField(body, name string, bad func(string) bool) bool {
	var v any
	dec := json.NewDecoder(strings.NewReader(body))
	if dec.Decode(&v) != nil {
		return false
	}
	var walk func(v any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && strings.EqualFold(k, name) && s != "" && bad(s) {
					return true
				}
				if walk(x) {
					return true
				}
			}
		case []any:
			for _, x := range v {
				if walk(x) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}
