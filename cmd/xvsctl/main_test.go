package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xvswitch/xvs/internal/testutil"
)

// startXVSD builds and starts the real daemon on a private socket, and
// stops it with SIGTERM at the end, checking it shuts down cleanly.
func startXVSD(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "xvsd")
	if out, err := exec.Command("go", "build", "-o", bin, "../xvsd").CombinedOutput(); err != nil {
		t.Fatalf("build xvsd: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "xvsd.sock")
	cfg := filepath.Join(dir, "xvsd.yaml")
	os.WriteFile(cfg, []byte("api_socket: "+sock+"\nmetrics_address: 127.0.0.1:0\n"), 0o644)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("xvsd exited with %v after SIGTERM\n%s", err, logs.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("xvsd did not stop within 10s of SIGTERM")
		}
		if _, err := os.Stat(sock); err == nil {
			t.Errorf("xvsd left its socket %s behind", sock)
		}
	})
	if !testutil.Poll(10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil }) {
		t.Fatalf("xvsd did not open %s\n%s", sock, logs.String())
	}
	return sock
}

func ctl(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestAgainstRunningDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts xvsd")
	}
	sock := startXVSD(t)
	out, errs, code := ctl("--socket", sock, "version")
	if code != 0 || !strings.Contains(out, "xvsd") || !strings.Contains(out, "API v1") {
		t.Fatalf("version: %d %q %q", code, out, errs)
	}
	out, _, code = ctl("--socket", sock, "port", "list")
	if code != 0 || !strings.HasPrefix(out, "NAME") {
		t.Fatalf("port list: %d %q", code, out)
	}
	out, _, code = ctl("--socket", sock, "-o", "json", "stats")
	var st []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("stats -o json: %d %q", code, out)
	}
	_, errs, code = ctl("--socket", sock, "stats", "nosuch")
	if code != 1 || !strings.Contains(errs, "no such port") {
		t.Fatalf("stats of an unknown port: %d %q", code, errs)
	}

	// A vhost-user port in server mode: its socket comes and goes with it.
	vsock := filepath.Join(filepath.Dir(sock), "vm9.sock")
	out, errs, code = ctl("--socket", sock, "port", "add", "vm9", "--type", "vhostuser", "--socket", vsock, "--server", "--vsid", "5001")
	if code != 0 || !strings.Contains(out, "port vm9 added: vhostuser "+vsock+" (server), VSID 5001") {
		t.Fatalf("port add vhostuser: %d %q %q", code, out, errs)
	}
	if fi, err := os.Lstat(vsock); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("vhost-user socket %s: %v %v", vsock, fi, err)
	}
	if out, _, _ := ctl("--socket", sock, "port", "list"); !strings.Contains(out, "vm9   vhostuser  "+vsock+"  5001") {
		t.Fatalf("port list:\n%s", out)
	}
	if _, errs, code := ctl("--socket", sock, "port", "add", "vm8", "--type", "vhostuser", "--socket", vsock, "--client", "--vsid", "5001"); code != 1 || !strings.Contains(errs, "already used by port vm9") {
		t.Fatalf("second port on the same socket: %d %q", code, errs)
	}
	if _, errs, code := ctl("--socket", sock, "port", "del", "vm9"); code != 0 {
		t.Fatalf("port del: %q", errs)
	}
	if _, err := os.Lstat(vsock); !os.IsNotExist(err) {
		t.Fatalf("vhost-user socket %s after port del: %v", vsock, err)
	}

	// The policy verbs, as an operator would use them.
	for _, args := range [][]string{
		{"routing-domain", "add", "--id", "blue"},
		{"virtual-subnet", "add", "--vsid", "5001", "--rd", "blue", "--prefix", "10.0.1.0/24"},
		{"provider-address", "add", "--interface", "uplink", "--pa", "192.168.50.1", "--prefix-length", "24"},
		{"lookup-record", "add", "--vsid", "5001", "--ca", "10.0.1.10", "--mac", "02:00:00:00:01:0a", "--pa", "192.168.50.1", "--rule", "encap", "--port", "vm1"},
		{"customer-route", "add", "--rd", "blue", "--destination", "0.0.0.0/0", "--next-hop", "10.0.1.10"},
	} {
		if out, errs, code := ctl(append([]string{"--socket", sock}, args...)...); code != 0 {
			t.Fatalf("xvsctl %s: %d %q %q", strings.Join(args, " "), code, out, errs)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lookup-record", "add", "--vsid", "12", "--ca", "10.0.1.11", "--mac", "02:00:00:00:01:0b", "--pa", "192.168.50.1"}, "vsid: 12"},
		{[]string{"lookup-record", "add", "--vsid", "5001", "--ca", "10.9.0.11", "--mac", "02:00:00:00:01:0b", "--pa", "192.168.50.1"}, "ca 10.9.0.11: outside virtual subnet 5001"},
		{[]string{"lookup-record", "add", "--vsid", "5001", "--ca", "10.0.1.10", "--mac", "02:00:00:00:01:0c", "--pa", "192.168.50.1"}, "ca 10.0.1.10: already in vsid 5001"},
		{[]string{"virtual-subnet", "add", "--vsid", "5002", "--rd", "green", "--prefix", "10.0.2.0/24"}, `"green"`},
		{[]string{"routing-domain", "remove", "--id", "blue"}, "has virtual subnet 5001"},
	} {
		_, errs, code := ctl(append([]string{"--socket", sock}, tc.args...)...)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("xvsctl %s: exit %d %q, want an error naming %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
	out, _, _ = ctl("--socket", sock, "-o", "json", "lookup-record", "get", "--vsid", "5001")
	var recs []map[string]any
	if json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 1 || recs[0]["ca"] != "10.0.1.10" || recs[0]["vm_name"] != "vm1" {
		t.Fatalf("lookup-record get: %q", out)
	}
	if _, errs, code := ctl("--socket", sock, "lookup-record", "remove", "--vsid", "5001", "--ca", "10.0.1.10"); code != 0 {
		t.Fatalf("lookup-record remove: %q", errs)
	}
	out, _, _ = ctl("--socket", sock, "lookup-record", "get")
	if strings.Contains(out, "10.0.1.10") {
		t.Fatalf("removed record still listed:\n%s", out)
	}
	if _, errs, code := ctl("--socket", sock, "trace", "--port", "vm1", "--frame", "ffffffffffff02000000010a88b5"); code != 1 || !strings.Contains(errs, "no such port") {
		t.Fatalf("trace on a port that does not exist: %d %q", code, errs)
	}
	if _, errs, code := ctl("--socket", sock, "trace", "--port", "vm1", "--frame", "zz"); code != 1 || !strings.Contains(errs, "frame: want") {
		t.Fatalf("trace with a bad frame: %d %q", code, errs)
	}

	// Extensions: the real daemon's answers (loading real ones is tested
	// with the example extensions).
	if out, errs, code := ctl("--socket", sock, "extension", "list"); code != 0 || !strings.HasPrefix(out, "POS  NAME") {
		t.Fatalf("extension list: %d %q %q", code, out, errs)
	}
	if out, _, code := ctl("--socket", sock, "-o", "json", "extension", "list"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("extension list -o json: %d %q", code, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"extension", "unload", "nosuch"}, "no such extension"},
		{[]string{"extension", "stats", "nosuch"}, "no such extension"},
		{[]string{"extension", "disable", "nosuch"}, "no such extension"},
		{[]string{"extension", "order", "nosuch"}, "order must name every loaded extension exactly once"},
		{[]string{"extension", "load", "x", "/nonexistent/xvs-ext"}, "/nonexistent/xvs-ext"},
		{[]string{"extension", "load", "x", "/nonexistent/xvs-ext", "--port", "vm9"}, `ports[0]: "vm9": no such port`},
	} {
		_, errs, code := ctl(append([]string{"--socket", sock}, tc.args...)...)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("xvsctl %s: exit %d %q, want 1 and %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "Verbs:"},
		{[]string{"frobnicate"}, 2, `unknown verb "frobnicate"`},
		{[]string{"-o", "xml", "version"}, 2, `-o "xml"`},
		{[]string{"version", "extra"}, 2, "takes no arguments"},
		{[]string{"stats", "a", "b"}, 2, "want [PORT]"},
		{[]string{"--socket", "/nonexistent/xvsd.sock", "version"}, 1, "does not exist (is xvsd running?"},
	} {
		_, errs, code := ctl(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("xvsctl %q: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	out, _, code := ctl("stats", "--help")
	if code != 0 || !strings.Contains(out, "Drops are by reason") {
		t.Errorf("stats --help: %d %q", code, out)
	}
}

const fakeVhostPort = `{"name":"vm1","index":1,"vsid":5001,"mac":"02:00:00:00:00:01","mtu":1500,"worker":0,"type":"vhostuser","fast_path":false,"socket":"/run/xvs/vm1.sock","mode":"server","queues":1}`

func TestPortAddFlags(t *testing.T) {
	f := newFakeXVSD(t, map[string]string{"POST /ports": fakeVhostPort})
	cwd, _ := os.Getwd()
	for _, tc := range []struct {
		args []string
		want string // the JSON body sent
	}{
		{[]string{"vm5", "--type", "afxdp", "--dev", "veth5", "--vsid", "5001"}, `{"name":"vm5","type":"afxdp","dev":"veth5","vsid":5001}`},
		{[]string{"--fast-path", "vm5", "--type", "afxdp", "--dev", "veth5", "--vsid", "0"}, `{"name":"vm5","type":"afxdp","dev":"veth5","vsid":0,"fast_path":true}`},
		{[]string{"--threaded-napi", "vm5", "--type", "afxdp", "--dev", "veth5", "--vsid", "0"}, `{"name":"vm5","type":"afxdp","dev":"veth5","vsid":0,"threaded_napi":true}`},
		{[]string{"vm2", "--type", "tap", "--dev", "vmtap2", "--vsid", "5001"}, `{"name":"vm2","type":"tap","dev":"vmtap2","vsid":5001}`},
		// vhostuser: --server is the default.
		{[]string{"vm1", "--type", "vhostuser", "--socket", "/run/xvs/vm1.sock", "--vsid", "5001"},
			`{"name":"vm1","type":"vhostuser","socket":"/run/xvs/vm1.sock","mode":"server","vsid":5001}`},
		{[]string{"vm1", "--type", "vhostuser", "--socket", "/run/xvs/vm1.sock", "--server", "--vsid", "5001"},
			`{"name":"vm1","type":"vhostuser","socket":"/run/xvs/vm1.sock","mode":"server","vsid":5001}`},
		{[]string{"--client", "--type", "vhostuser", "vm1", "--socket", "/run/xvs/vm1.sock", "--vsid", "5001"},
			`{"name":"vm1","type":"vhostuser","socket":"/run/xvs/vm1.sock","mode":"client","vsid":5001}`},
		{[]string{"vm1", "--type", "vhostuser", "--socket", "vm1.sock", "--client", "--vsid", "0"},
			`{"name":"vm1","type":"vhostuser","socket":` + mustJSON(filepath.Join(cwd, "vm1.sock")) + `,"mode":"client","vsid":0}`},
		{[]string{"vm1", "--type", "vhostuser", "--socket", "../run/vm1.sock", "--vsid", "5001"},
			`{"name":"vm1","type":"vhostuser","socket":` + mustJSON(filepath.Join(filepath.Dir(cwd), "run/vm1.sock")) + `,"mode":"server","vsid":5001}`},
		{[]string{"vm1", "--type", "vhostuser", "--socket", "/run/xvs/vm1.sock", "--mac", "02:00:00:00:00:01", "--queues", "4", "--vsid", "5001"},
			`{"name":"vm1","type":"vhostuser","socket":"/run/xvs/vm1.sock","mode":"server","mac":"02:00:00:00:00:01","queues":4,"vsid":5001}`},
	} {
		_, errs, code := ctl(append([]string{"--socket", f.sock, "port", "add"}, tc.args...)...)
		reqs := f.requests()
		if code != 0 || len(reqs) != 1 {
			t.Errorf("port add %q: exit %d %q, requests %q", tc.args, code, errs, reqs)
			continue
		}
		if got := strings.TrimPrefix(reqs[0], "POST /ports "); !jsonEqual(got, tc.want) {
			t.Errorf("port add %q:\n sent %s\n want %s", tc.args, got, tc.want)
		}
	}
	out, _, code := ctl("--socket", f.sock, "port", "add", "vm1", "--type", "vhostuser", "--socket", "/run/xvs/vm1.sock", "--vsid", "5001")
	if want := "port vm1 added: vhostuser /run/xvs/vm1.sock (server), VSID 5001, MAC 02:00:00:00:00:01, MTU 1500\n"; code != 0 || out != want {
		t.Errorf("port add output %q, want %q", out, want)
	}
	out, _, code = ctl("--socket", f.sock, "-o", "json", "port", "add", "vm1", "--type", "vhostuser", "--socket", "/run/xvs/vm1.sock", "--vsid", "5001")
	var p map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p["socket"] != "/run/xvs/vm1.sock" || p["mode"] != "server" {
		t.Errorf("port add -o json: %d %q", code, out)
	}
	f.requests()

	// Usage errors: exit 2, nothing sent.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"vm1", "--type", "vhostuser", "--socket", "/s", "--server", "--client", "--vsid", "5001"}, "--server and --client exclude each other"},
		{[]string{"vm1", "--type", "vhostuser", "--vsid", "5001"}, "--socket is required for --type vhostuser"},
		{[]string{"vm1", "--type", "vhostuser", "--client", "--vsid", "5001"}, "--socket is required"},
		{[]string{"vm1", "--type", "vhostuser", "--socket", "/s", "--dev", "eth0", "--vsid", "5001"}, "--dev: a vhostuser port has no device: give --socket"},
		{[]string{"vm1", "--type", "vhostuser", "--socket", "/s", "--fast-path", "--vsid", "5001"}, "--fast-path: only afxdp ports"},
		{[]string{"vm1", "--type", "vhostuser", "--socket", "/s", "--threaded-napi", "--vsid", "5001"}, "--threaded-napi: only afxdp ports"},
		{[]string{"vm1", "--type", "vhostuser", "--socket", "/s", "--queues", "0", "--vsid", "5001"}, "--queues 0: want 1 or more"},
		{[]string{"vm1", "--type", "vhostuser", "--socket", "/s", "--queues", "two", "--vsid", "5001"}, `invalid value "two" for flag -queues`},
		{[]string{"vm1", "--type", "vhostuser", "--socket", "/s"}, "--vsid is required"},
		{[]string{"vm1", "--type", "afxdp", "--dev", "eth0", "--socket", "/s", "--vsid", "5001"}, "--socket: only --type vhostuser ports take it (afxdp ports attach to --dev)"},
		{[]string{"vm1", "--type", "tap", "--dev", "t0", "--client", "--vsid", "5001"}, "--client: only --type vhostuser"},
		{[]string{"vm1", "--type", "tap", "--dev", "t0", "--server", "--vsid", "5001"}, "--server: only --type vhostuser"},
		{[]string{"vm1", "--type", "afxdp", "--vsid", "5001"}, "--dev is required"},
		{[]string{"vm1", "--socket", "/s", "--vsid", "5001"}, "--type is required: afxdp, tap or vhostuser"},
		{[]string{"--type", "vhostuser", "--socket", "/s", "--vsid", "5001"}, "port add: want NAME"},
	} {
		_, errs, code := ctl(append([]string{"--socket", f.sock, "port", "add"}, tc.args...)...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("port add %q: exit %d %q, want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
	if r := f.requests(); len(r) != 0 {
		t.Errorf("usage errors sent %q", r)
	}

	out, _, code = ctl("port", "add", "--help")
	for _, want := range []string{"--type vhostuser --socket PATH [--server|--client] --vsid N", "--server   (the default)",
		"-chardev socket,id=chr0,path=PATH\n", "-chardev socket,id=chr0,path=PATH,server=on,wait=off", "memory-backend-memfd", "net_virtio_user0"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("port add --help: exit %d, lacks %q:\n%s", code, want, out)
		}
	}
}

func TestPortListShowsSocket(t *testing.T) {
	afx := `{"name":"vm5","index":0,"vsid":5001,"mac":"02:00:00:00:00:05","mtu":1500,"worker":0,"type":"afxdp","dev":"veth5","fast_path":true}`
	f := newFakeXVSD(t, map[string]string{"GET /ports": "[" + afx + "," + fakeVhostPort + "]"})
	out, errs, code := ctl("--socket", f.sock, "port", "list")
	want := "NAME  TYPE       DEV                VSID  MAC                MTU   WORKER  FAST-PATH\n" +
		"vm5   afxdp      veth5              5001  02:00:00:00:00:05  1500  0       yes\n" +
		"vm1   vhostuser  /run/xvs/vm1.sock  5001  02:00:00:00:00:01  1500  0       no\n"
	if code != 0 || out != want {
		t.Errorf("port list: exit %d %q\n%s\nwant\n%s", code, errs, out, want)
	}
	out, _, code = ctl("--socket", f.sock, "-o", "json", "port", "list")
	var ps []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &ps) != nil || len(ps) != 2 || ps[1]["socket"] != "/run/xvs/vm1.sock" || ps[1]["mode"] != "server" || ps[0]["socket"] != nil {
		t.Errorf("port list -o json: %d %q", code, out)
	}
}
