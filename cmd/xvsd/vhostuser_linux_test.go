package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xvswitch/xvs/api"
)

func TestVhostUserConfig(t *testing.T) {
	cfg, err := loadConfig(strings.NewReader(`ports:
  - {name: vm1, type: vhostuser, socket: /run/xvs/vm1.sock, vsid: 5001}
  - {name: vm2, type: vhostuser, socket: /run/xvs/vm2.sock, mode: client, mac: 02:00:00:00:00:02, queues: 4, vsid: 0}
  - {name: vm3, type: vhostuser, socket: /run/xvs/vm3.sock, mode: server, vsid: 5001}
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Ports[1].spec()
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
	want := portSpec{Name: "vm2", Type: "vhostuser", Socket: "/run/xvs/vm2.sock", Mode: "client", MAC: "02:00:00:00:00:02", Queues: 4}
	if s != want {
		t.Fatalf("spec %+v, want %+v", s, want)
	}
	s = cfg.Ports[0].spec()
	if err := s.check(); err != nil || s.Mode != api.ModeServer || s.Queues != 1 || s.MAC != "" {
		t.Fatalf("defaults: %+v, %v; want mode server, 1 queue pair, no MAC", s, err)
	}

	long := "/" + strings.Repeat("x", 110)
	for _, tc := range []struct{ yaml, want string }{
		{"{name: a, type: vhostuser, vsid: 0}", "ports[0].socket: missing"},
		{"{name: a, type: vhostuser, socket: a.sock, vsid: 0}", `ports[0].socket: "a.sock": want an absolute path`},
		{"{name: a, type: vhostuser, socket: " + long + ", vsid: 0}", "ports[0].socket: \"" + long + "\": too long"},
		{"{name: a, type: vhostuser, socket: /s, dev: eth0, vsid: 0}", `ports[0].dev: "eth0": a vhostuser port has no device`},
		{"{name: a, type: vhostuser, socket: /s, fast_path: true, vsid: 0}", "ports[0].fast_path: only afxdp ports have a fast path"},
		{"{name: a, type: vhostuser, socket: /s, threaded_napi: true, vsid: 0}", "ports[0].threaded_napi: only afxdp ports"},
		{"{name: a, type: tap, dev: t0, fast_path: true, vsid: 0}", "ports[0].fast_path: only afxdp ports have a fast path"},
		{"{name: a, type: tap, dev: t0, threaded_napi: true, vsid: 0}", "ports[0].threaded_napi: only afxdp ports"},
		{"{name: a, type: vhostuser, socket: /s, mode: listen, vsid: 0}", `ports[0].mode: "listen": want server`},
		{"{name: a, type: vhostuser, socket: /s, mac: 02:00:00:00:01, vsid: 0}", `ports[0].mac: "02:00:00:00:01": want an EUI-48 address`},
		{"{name: a, type: vhostuser, socket: /s, mac: 'hello', vsid: 0}", `ports[0].mac: "hello"`},
		{"{name: a, type: vhostuser, socket: /s, mac: 01:00:5e:00:00:01, vsid: 0}", `ports[0].mac: "01:00:5e:00:00:01": a multicast address`},
		{"{name: a, type: vhostuser, socket: /s, mac: 00:00:00:00:00:00, vsid: 0}", `ports[0].mac: "00:00:00:00:00:00": all zero`},
		{"{name: a, type: vhostuser, socket: /s, queues: 17, vsid: 0}", "ports[0].queues: 17: want 1..16"},
		{"{name: a, type: vhostuser, socket: /s, queues: -1, vsid: 0}", "ports[0].queues: -1: want 1..16"},
		{"{name: a, type: vhostuser, socket: /s, vsid: 12}", "ports[0].vsid: 12"},
		{"{name: a, type: vhostuser, socket: /s, vsid: 0}, {name: b, type: vhostuser, socket: /x/../s, vsid: 0}", `ports[1].socket: "/x/../s" already used by ports[0]`},
		{"{name: a, type: vhostuser, socket: /run/xvs//xvsd.sock, vsid: 0}", `ports[0].socket: "/run/xvs//xvsd.sock" is api_socket`},
		{"{name: a, type: tap, dev: t0, socket: /s, vsid: 0}", `ports[0].socket: "/s": only vhostuser ports have a socket (tap ports attach to dev)`},
		{"{name: a, type: afxdp, dev: eth0, mode: server, vsid: 0}", `ports[0].mode: "server": only vhostuser ports have a mode`},
	} {
		_, err := loadConfig(strings.NewReader("ports: ["+tc.yaml+"]"), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.yaml, err, tc.want)
		}
	}
}

// The commented ports: example of the defaults is valid once uncommented.
func TestDefaultConfigPortsExample(t *testing.T) {
	var example []string
	on := false
	for _, l := range strings.Split(defaultConfigYAML, "\n") {
		switch {
		case strings.HasPrefix(l, "ports:"):
			on = true
			example = append(example, "ports:")
		case on && strings.HasPrefix(l, "#"):
			example = append(example, l[1:])
		case on:
			on = false
		}
	}
	cfg, err := loadConfig(strings.NewReader(strings.Join(example, "\n")), "example")
	if err != nil || len(cfg.Ports) != 3 || cfg.Ports[2].Type != "vhostuser" || cfg.Ports[2].Socket == "" || cfg.Ports[2].MAC == "" {
		t.Fatalf("the commented example: %v\n%s", err, strings.Join(example, "\n"))
	}
}

// sockDir is a directory for unix sockets: t.TempDir() unless its path is
// too long for them.
func sockDir(t *testing.T) string {
	dir := t.TempDir()
	if len(dir) > 80 {
		var err error
		if dir, err = os.MkdirTemp("/tmp", "xvs"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	return dir
}

func isSocket(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().Type() == os.ModeSocket
}

// A vhostuser port added through the API with the real factory: in server
// mode its socket appears (in a directory xvsd creates) and is gone once
// the port is removed; in client mode xvsd creates nothing and waits.
func TestAPIVhostUserPort(t *testing.T) {
	dir := sockDir(t)
	d, c := startDaemon(t, "ports: [{name: vm0, type: vhostuser, socket: "+dir+"/vm0.sock, vsid: 5001}]")
	if !isSocket(dir + "/vm0.sock") {
		t.Fatal("the configured vhostuser port has no socket")
	}
	sock := filepath.Join(dir, "sub", "vm1.sock")
	v := uint32(5001)
	var p api.Port
	req := api.AddPort{Name: "vm1", Type: "vhostuser", Socket: sock, MAC: "02:00:00:00:00:01", Queues: 2, VSID: &v}
	if err := c.Do("POST", "/ports", req, &p); err != nil {
		t.Fatal(err)
	}
	if p.Name != "vm1" || p.Type != "vhostuser" || p.Socket != sock || p.Mode != "server" || p.Queues != 2 || p.Dev != "" ||
		p.MAC != "02:00:00:00:00:01" || p.VSID != 5001 || p.MTU != 1500 {
		t.Fatalf("added port %+v", p)
	}
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, %v; want a socket, mode 0600", sock, fi, err)
	}
	// Something listens: a front-end can connect.
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		t.Fatalf("connect to the port's socket: %v", err)
	}
	conn.Close()

	cl := filepath.Join(dir, "qemu.sock")
	if err := c.Do("POST", "/ports", api.AddPort{Name: "vm2", Type: "vhostuser", Socket: cl, Mode: "client", VSID: &v}, &p); err != nil {
		t.Fatal(err)
	}
	if p.Mode != "client" || p.Socket != cl || p.Queues != 1 || p.MAC == "" {
		t.Fatalf("client port %+v", p)
	}
	if _, err := os.Lstat(cl); !os.IsNotExist(err) {
		t.Fatalf("a client port created %s: %v", cl, err)
	}

	var ps []api.Port
	if err := c.Do("GET", "/ports", nil, &ps); err != nil || len(ps) != 3 {
		t.Fatalf("ports %+v, %v", ps, err)
	}
	for _, tc := range []struct {
		req  api.AddPort
		want string
	}{
		{api.AddPort{Name: "vm3", Type: "vhostuser", Socket: sock, VSID: &v}, "socket: " + sock + " is already used by port vm1"},
		{api.AddPort{Name: "vm3", Type: "vhostuser", Socket: cl, Mode: "server", VSID: &v}, "socket: " + cl + " is already used by port vm2"},
		{api.AddPort{Name: "vm3", Type: "vhostuser", VSID: &v}, "port add vm3: socket: missing"},
		{api.AddPort{Name: "vm3", Type: "vhostuser", Socket: d.cfg.APISocket, VSID: &v}, "socket: " + d.cfg.APISocket + " is xvsd's api_socket"},
		{api.AddPort{Name: "vm3", Type: "vhostuser", Socket: "vm3.sock", VSID: &v}, `socket: "vm3.sock": want an absolute path`},
		{api.AddPort{Name: "vm3", Type: "vhostuser", Socket: dir + "/vm3.sock", Dev: "eth0", VSID: &v}, `dev: "eth0": a vhostuser port has no device`},
		{api.AddPort{Name: "vm3", Type: "vhostuser", Socket: dir + "/vm3.sock", Mode: "both", VSID: &v}, `mode: "both"`},
		{api.AddPort{Name: "vm3", Type: "vhostuser", Socket: dir + "/vm3.sock", FastPath: true, VSID: &v}, "fast_path: only afxdp"},
		{api.AddPort{Name: "vm3", Type: "vhostuser", Socket: dir + "/vm3.sock", Queues: 99, VSID: &v}, "queues: 99"},
		{api.AddPort{Name: "vm3", Type: "memory", Dev: "m3", Socket: dir + "/vm3.sock", VSID: &v}, "socket: \"" + dir + "/vm3.sock\": only vhostuser ports"},
		// The switch refuses the VSID after the port was made: the socket
		// does not stay behind.
		{api.AddPort{Name: "vm3", Type: "vhostuser", Socket: dir + "/vm3.sock", VSID: ptr(uint32(7))}, "invalid VSID: 7"},
	} {
		if err := c.Do("POST", "/ports", tc.req, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("add %+v: %v, want %q", tc.req, err, tc.want)
		}
	}
	if _, err := os.Lstat(dir + "/vm3.sock"); !os.IsNotExist(err) {
		t.Errorf("a refused port left %s/vm3.sock: %v", dir, err)
	}

	for _, name := range []string{"vm1", "vm2", "vm0"} {
		if err := c.Do("DELETE", "/ports/"+name, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{sock, dir + "/vm0.sock"} {
		if _, err := os.Lstat(s); !os.IsNotExist(err) {
			t.Errorf("socket %s still there after its port was removed: %v", s, err)
		}
	}
	// The socket can be used again.
	if err := c.Do("POST", "/ports", api.AddPort{Name: "vm1", Type: "vhostuser", Socket: sock, VSID: &v}, nil); err != nil {
		t.Fatal(err)
	}
	d.close()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket %s still there after xvsd stopped: %v", sock, err)
	}
}
