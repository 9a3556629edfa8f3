package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/xvswitch/xvs/api"
)

// fakeXVSD answers the control API on a unix socket with canned bodies and
// records the requests, to test what xvsctl sends and how it shows the
// answers without a switch.
type fakeXVSD struct {
	sock    string
	mu      sync.Mutex
	reqs    []string          // "METHOD /path body"
	answers map[string]string // "METHOD /path" -> JSON; missing: 404
}

func newFakeXVSD(t *testing.T, answers map[string]string) *fakeXVSD {
	t.Helper()
	f := &fakeXVSD{sock: filepath.Join(t.TempDir(), "xvsd.sock"), answers: answers}
	ln, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := r.Method + " " + strings.TrimPrefix(r.URL.RequestURI(), "/"+api.Version)
		f.mu.Lock()
		f.reqs = append(f.reqs, strings.TrimSpace(key+" "+string(body)))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		a, ok := answers[key]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(api.Error{Error: "extension nosuch: no such extension"})
			return
		}
		if a == "" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		io.WriteString(w, a)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *fakeXVSD) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}

const fakeInfo = `{"name":"acl","path":"/x/acl","kind":"filter","position":0,"enabled":true,"state":"running","fail":"closed","directions":"ingress","vsids":[5001],"ports":["vm1","vm2"],"every_frame":false,"pid":42,"restarts":1,"counters":{"frames":10,"drop-deny":2}}`

func TestExtensionLoadFlags(t *testing.T) {
	f := newFakeXVSD(t, map[string]string{"POST /extensions": fakeInfo})
	cwd, _ := os.Getwd()
	for _, tc := range []struct {
		args []string
		want string // the JSON body sent
	}{
		{[]string{"acl", "/x/acl"}, `{"name":"acl","path":"/x/acl"}`},
		{[]string{"acl", "bin/acl"}, `{"name":"acl","path":` + mustJSON(filepath.Join(cwd, "bin/acl")) + `}`},
		// Every flag, flags before and after the arguments, lists both
		// repeated and comma separated, and the program's own arguments.
		{[]string{"--fail", "closed", "acl", "--direction", "ingress", "/x/acl", "--vsid", "5001,0", "--vsid", "6000",
			"--port", "vm1", "--port", "vm2, vm3", "--every-frame", "--deadline", "250ms", "--cache-ttl", "2m",
			"--ring-size", "256", "--slot-size", "4096", "--position", "0", "--set", "rules=/etc/a=b", "--set", "n=5",
			"--set", "n=6", "--set", "empty=", "--disabled", "--", "--verbose", "--", "x"},
			`{"name":"acl","path":"/x/acl","args":["--verbose","--","x"],"fail":"closed","direction":"ingress","vsids":[5001,0,6000],` +
				`"ports":["vm1","vm2","vm3"],"every-frame":true,"deadline":"250ms","cache-ttl":"2m","ring-size":256,"slot-size":4096,` +
				`"enabled":false,"config":{"empty":"","n":"6","rules":"/etc/a=b"},"position":0}`},
		{[]string{"acl", "/x/acl", "--position", "3", "--"}, `{"name":"acl","path":"/x/acl","position":3}`},
	} {
		out, errs, code := ctl(append([]string{"--socket", f.sock, "extension", "load"}, tc.args...)...)
		reqs := f.requests()
		if code != 0 || len(reqs) != 1 {
			t.Errorf("load %q: exit %d %q %q, requests %q", tc.args, code, out, errs, reqs)
			continue
		}
		if got := strings.TrimPrefix(reqs[0], "POST /extensions "); !jsonEqual(got, tc.want) {
			t.Errorf("load %q:\n sent %s\n want %s", tc.args, got, tc.want)
		}
		if !strings.Contains(out, "extension acl loaded: filter at position 0, running, enabled, fail closed") {
			t.Errorf("load %q: output %q", tc.args, out)
		}
	}
	out, _, code := ctl("--socket", f.sock, "-o", "json", "extension", "load", "acl", "/x/acl")
	var x map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &x) != nil || x["pid"] != 42.0 {
		t.Errorf("load -o json: %d %q", code, out)
	}
	f.requests()

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"acl"}, "want NAME PATH"},
		{[]string{}, "want NAME PATH"},
		{[]string{"acl", "/x", "extra"}, "want NAME PATH"},
		{[]string{"acl", ""}, "PATH is empty"},
		{[]string{"acl", "/x", "--fail", "sometimes"}, `--fail "sometimes": want open or closed`},
		{[]string{"acl", "/x", "--direction", "up"}, `--direction "up": want ingress, egress or both`},
		{[]string{"acl", "/x", "--vsid", "12"}, `--vsid "12": want 0 or 4096..16777214`},
		{[]string{"acl", "/x", "--vsid", "5001,x"}, `--vsid "x"`},
		{[]string{"acl", "/x", "--deadline", "soon"}, `--deadline "soon": want a duration`},
		{[]string{"acl", "/x", "--cache-ttl", "1"}, `--cache-ttl "1": want a duration`},
		{[]string{"acl", "/x", "--ring-size", "big"}, `--ring-size "big": want a positive number`},
		{[]string{"acl", "/x", "--slot-size", "-64"}, `--slot-size "-64"`},
		{[]string{"acl", "/x", "--position", "-1"}, `--position "-1": want 0 (first) or more`},
		{[]string{"acl", "/x", "--set", "novalue"}, `want key=value, got "novalue"`},
		{[]string{"acl", "/x", "--set", "=v"}, `want key=value, got "=v"`},
		{[]string{"acl", "/x", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"acl", "/x", "--verbose", "--", "x"}, "flag provided but not defined: -verbose"},
	} {
		_, errs, code := ctl(append([]string{"--socket", f.sock, "extension", "load"}, tc.args...)...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("load %q: exit %d %q, want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
	if r := f.requests(); len(r) != 0 {
		t.Errorf("usage errors sent %q", r)
	}
}

func TestExtensionVerbs(t *testing.T) {
	second := strings.NewReplacer(`"acl"`, `"cap"`, `"position":0`, `"position":1`, `"kind":"filter"`, `"kind":"capture"`,
		`"enabled":true`, `"enabled":false`, `"vsids":[5001],"ports":["vm1","vm2"],`, ``).Replace(fakeInfo)
	withPlugin := strings.Replace(fakeInfo, `"counters"`, `"plugin":{"rule-1":7},"last_error":"rules reloaded","counters"`, 1)
	f := newFakeXVSD(t, map[string]string{
		"GET /extensions":              "[" + fakeInfo + "," + second + "]",
		"GET /extensions/acl":          withPlugin,
		"GET /extensions/cap":          second,
		"DELETE /extensions/acl":       "",
		"POST /extensions/acl/enable":  fakeInfo,
		"POST /extensions/acl/disable": strings.Replace(fakeInfo, `"enabled":true`, `"enabled":false`, 1),
		"PUT /extensions/order":        "[" + fakeInfo + "," + second + "]",
	})
	for _, tc := range []struct {
		args     []string
		requests []string
		out      []string
	}{
		{[]string{"extension", "list"}, []string{"GET /extensions"}, []string{
			"POS  NAME  KIND     STATE    ENABLED  FAIL    DIRECTION  VSIDS  PORTS    RESTARTS",
			"0    acl   filter   running  yes      closed  ingress    5001   vm1,vm2  1",
			"1    cap   capture  running  no       closed  ingress    all    all      1"}},
		{[]string{"extension", "stats", "acl"}, []string{"GET /extensions/acl"}, []string{
			"EXTENSION  FROM    COUNTER     VALUE",
			"acl        switch  drop-deny   2",
			"acl        switch  frames      10",
			"acl        plugin  rule-1      7",
			"acl        switch  last-error  rules reloaded"}},
		{[]string{"extension", "stats"}, []string{"GET /extensions", "GET /extensions/acl", "GET /extensions/cap"}, []string{
			"acl        plugin  rule-1      7", "cap        switch  frames      10"}},
		{[]string{"extension", "unload", "acl"}, []string{"DELETE /extensions/acl"}, []string{"extension acl unloaded"}},
		{[]string{"extension", "enable", "acl"}, []string{"POST /extensions/acl/enable"}, []string{"extension acl enabled"}},
		{[]string{"extension", "disable", "acl"}, []string{"POST /extensions/acl/disable"}, []string{"extension acl disabled"}},
		{[]string{"extension", "order", "acl", "cap"}, []string{`PUT /extensions/order {"names":["acl","cap"]}`}, []string{"0    acl   filter   running  yes      closed  ingress    5001   vm1,vm2  1"}},
	} {
		out, errs, code := ctl(append([]string{"--socket", f.sock}, tc.args...)...)
		if code != 0 {
			t.Errorf("%q: exit %d %q", tc.args, code, errs)
		}
		if r := f.requests(); !reflect.DeepEqual(r, tc.requests) {
			t.Errorf("%q: requests %q, want %q", tc.args, r, tc.requests)
		}
		for _, w := range tc.out {
			if !strings.Contains(out, w+"\n") {
				t.Errorf("%q: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
	// -o json: the API's objects, an array for list and stats.
	for _, args := range [][]string{{"extension", "list"}, {"extension", "stats"}, {"extension", "stats", "acl"}, {"extension", "order", "acl", "cap"}} {
		out, _, code := ctl(append([]string{"--socket", f.sock, "-o", "json"}, args...)...)
		var xs []map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &xs) != nil || len(xs) == 0 || xs[0]["name"] != "acl" {
			t.Errorf("%q -o json: %d %q", args, code, out)
		}
	}
	if out, _, code := ctl("--socket", f.sock, "-o", "json", "extension", "unload", "acl"); code != 0 || out != "" {
		t.Errorf("unload -o json: %d %q", code, out)
	}
	f.requests()
	// The daemon's refusal: exit 1 with its message.
	for _, args := range [][]string{{"extension", "unload", "nosuch"}, {"extension", "stats", "nosuch"}, {"extension", "enable", "nosuch"}} {
		_, errs, code := ctl(append([]string{"--socket", f.sock}, args...)...)
		if code != 1 || !strings.Contains(errs, "no such extension") {
			t.Errorf("%q: exit %d %q", args, code, errs)
		}
	}
	f.requests()
	// Usage errors: exit 2, nothing sent.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"extension"}, "extension: say what to do"},
		{[]string{"extension", "frob"}, "extension: say what to do:\n  xvsctl extension disable\n"},
		{[]string{"extension", "unload"}, "want NAME"},
		{[]string{"extension", "enable", "a", "b"}, "want NAME"},
		{[]string{"extension", "order"}, "want NAME..."},
		{[]string{"extension", "stats", "a", "b"}, "want [NAME]"},
		{[]string{"extension", "list", "a"}, "takes no arguments"},
		{[]string{"extension", "unload", "a", "--", "b"}, "want NAME"},
	} {
		_, errs, code := ctl(append([]string{"--socket", f.sock}, tc.args...)...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d %q, want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
	if r := f.requests(); len(r) != 0 {
		t.Errorf("usage errors sent %q", r)
	}
}

func TestExtensionHelp(t *testing.T) {
	for _, v := range []string{"list", "stats", "load", "unload", "enable", "disable", "order"} {
		out, _, code := ctl("extension", v, "--help")
		if code != 0 || !strings.Contains(out, "Usage: xvsctl [-o table|json] extension "+v) || !strings.Contains(out, "Example") || !strings.Contains(out, "xvsctl extension "+v) {
			t.Errorf("extension %s --help: %d %q", v, code, out)
		}
	}
	_, errs, _ := ctl()
	if !strings.Contains(errs, "extension load NAME PATH") || !strings.Contains(errs, "extension list") {
		t.Errorf("top-level help lacks the extension verbs:\n%s", errs)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonEqual(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}
