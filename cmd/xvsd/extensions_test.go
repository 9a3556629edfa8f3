package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/extensions"
	"github.com/xvswitch/xvs/vswitch"
)

const twoPorts = "ports: [{name: vm1, type: memory, dev: m0, vsid: 5001}, {name: vm2, type: memory, dev: m1, vsid: 5001}]\n"

func TestExtensionConfigFullEntry(t *testing.T) {
	cfg, err := loadConfig(strings.NewReader(twoPorts+`
extensions:
  - name: acl
    path: /usr/local/lib/xvs/aclfilter
    args: [--verbose, 3]
    fail: closed
    direction: ingress
    vsids: [5001, 0]
    ports: [vm1, vm2]
    every-frame: true
    deadline: 250ms
    cache-ttl: 2m
    ring-size: 256
    slot-size: 4096
    enabled: false
    config: {rules: /etc/xvs/acl.yaml, limit: 10, strict: true, ratio: 0.5, empty: ~}
  - name: cap
    path: /opt/cap
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.extensionConfigs()
	if err != nil {
		t.Fatal(err)
	}
	want := []extensions.Config{{
		Name: "acl", Path: "/usr/local/lib/xvs/aclfilter", Args: []string{"--verbose", "3"},
		Fail: extensions.FailClosed, Directions: extensions.DirIngress, VSIDs: []uint32{5001, 0}, Ports: []string{"vm1", "vm2"},
		EveryFrame: true, Deadline: 250 * time.Millisecond, CacheTTL: 2 * time.Minute, RingSize: 256, SlotSize: 4096,
		Settings: map[string]string{"rules": "/etc/xvs/acl.yaml", "limit": "10", "strict": "true", "ratio": "0.5", "empty": ""},
		Disabled: true,
	}, {
		// Defaults: the kind's fail mode, both directions, enabled, and
		// the package's deadline, TTL and ring.
		Name: "cap", Path: "/opt/cap", Fail: extensions.FailDefault, Directions: extensions.DirBoth,
		Deadline: 500 * time.Millisecond, CacheTTL: 60 * time.Second, RingSize: 1024, SlotSize: 2048,
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestExtensionConfigErrors(t *testing.T) {
	entry := func(fields string) string {
		return twoPorts + "extensions:\n  - {name: ok, path: /x}\n  - {name: e, path: /bin/e" + fields + "}\n"
	}
	for _, tc := range []struct{ yaml, want string }{
		{entry(", fail: sometimes"), `extensions[1].fail: "sometimes": want open or closed`},
		{entry(", direction: sideways"), `extensions[1].direction: "sideways": want ingress, egress or both`},
		{entry(", vsids: [5001, 12]"), `extensions[1].vsids[1]: 12: want 0 or 4096..16777214`},
		{entry(", vsids: [-1]"), `extensions[1].vsids[0]: -1: want 0 or 4096..16777214`},
		{entry(", vsids: [16777215]"), `extensions[1].vsids[0]: 16777215: want`},
		{entry(", ports: [vm1, vm9]"), `extensions[1].ports[1]: "vm9": not one of the configured ports`},
		{entry(", ports: ['']"), `extensions[1].ports[0]: empty`},
		{entry(", deadline: soon"), `extensions[1].deadline: "soon": want a duration such as 500ms`},
		{entry(", deadline: 1us"), `extensions[1].deadline: 1µs: want 1ms..1m`},
		{entry(", deadline: 2m"), `extensions[1].deadline: 2m0s: want 1ms..1m`},
		{entry(", cache-ttl: forever"), `extensions[1].cache-ttl: "forever": want a duration`},
		{entry(", cache-ttl: 10ms"), `extensions[1].cache-ttl: 10ms: want 1s..24h`},
		{entry(", ring-size: 100"), `extensions[1].ring-size: 100: want a power of two in 64..65536`},
		{entry(", ring-size: -64"), `extensions[1].ring-size: -64: want`},
		{entry(", slot-size: 100"), `extensions[1].slot-size: 100: want a multiple of 64 in 128..65536`},
		{entry(", ring-size: many"), "cannot unmarshal"},
		{entry(", enabled: maybe"), "cannot unmarshal"},
		{entry(", every-frame: 3"), "cannot unmarshal"},
		{entry(", config: [a, b]"), `extensions[1].config: line 4: want a map`},
		{entry(", config: {a: [1]}"), `extensions[1].config.a: want a string, number or boolean`},
		{entry(", config: {a: {b: c}}"), `extensions[1].config.a: want a string, number or boolean`},
		{entry(", config: {'': x}"), `extensions[1].config: line 4: want a non-empty key`},
		{entry(", confg: {a: b}"), "field confg not found"},
		{entry(", every_frame: true"), "field every_frame not found"},
		{entry(", position: 0"), "field position not found"},
		{twoPorts + "extensions: [{path: /x}]", "extensions[0].name: missing"},
		{twoPorts + "extensions: [{name: 'a b', path: /x}]", `extensions[0].name: "a b": want 1..32 of`},
		{twoPorts + "extensions: [{name: " + strings.Repeat("x", 33) + ", path: /x}]", `extensions[0].name: "xxx`},
		{twoPorts + "extensions: [{name: a}]", "extensions[0].path: missing"},
		{twoPorts + "extensions: [{name: a, path: bin/a}]", `extensions[0].path: "bin/a": want an absolute path`},
		{twoPorts + "extensions: [{name: a, path: /a}, {name: b, path: /b}, {name: a, path: /c}]", `extensions[2].name: "a" already used by extensions[0]`},
		{twoPorts + "extensions: {name: a}", "cannot unmarshal"},
		{"extensions: [{name: a, path: /a, ports: [vm1]}]", `extensions[0].ports[0]: "vm1": not one of the configured ports`},
	} {
		_, err := loadConfig(strings.NewReader(tc.yaml), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n error %v\n want one containing %q", tc.yaml, err, tc.want)
		}
	}
	// Keys repeated in config: are refused, whether by the YAML library or
	// by xvsd's own decoding.
	_, err := loadConfig(strings.NewReader("extensions:\n  - name: a\n    path: /a\n    config:\n      k: 1\n      k: 2\n"), "test.yaml")
	if err == nil || !strings.Contains(err.Error(), `"k" already defined`) && !strings.Contains(err.Error(), "config.k: given twice") {
		t.Errorf("repeated config key: %v", err)
	}
}

func TestDefaultConfigHasNoExtensions(t *testing.T) {
	cfg, err := loadConfig(strings.NewReader(""), "empty")
	if err != nil || len(cfg.Extensions) != 0 {
		t.Fatalf("%v, %d extensions", err, len(cfg.Extensions))
	}
	// The commented example in the defaults is a valid entry once
	// uncommented.
	var example []string
	on := false
	for _, l := range strings.Split(defaultConfigYAML, "\n") {
		if strings.HasPrefix(l, "extensions:") {
			on = true
			example = append(example, "extensions:")
			continue
		}
		if on && strings.HasPrefix(l, "#") {
			example = append(example, l[1:])
		}
	}
	cfg, err = loadConfig(strings.NewReader("ports: [{name: vm1, type: memory, dev: x, vsid: 5001}]\n"+strings.Join(example, "\n")), "example")
	if err != nil || len(cfg.Extensions) != 1 || cfg.Extensions[0].Name != "acl" {
		t.Fatalf("the commented example: %v\n%s", err, strings.Join(example, "\n"))
	}
}

func TestStartFailsWhenAnExtensionDoesNot(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-extension")
	sock := filepath.Join(t.TempDir(), "xvsd.sock")
	cfg, err := loadConfig(strings.NewReader("api_socket: "+sock+"\nmetrics_address: ''\nextensions: [{name: gone, path: "+missing+"}]"), "test")
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	err = d.start()
	if err == nil || !strings.Contains(err.Error(), "extensions[0] (gone)") {
		t.Fatalf("start with an extension that cannot start: %v", err)
	}
	var buf bytes.Buffer
	if code := run([]string{"--check", "--config", writeFile(t, "api_socket: "+sock+"\nextensions: [{name: gone, path: "+missing+"}]")}, &buf); code != 0 || !strings.Contains(buf.String(), "1 extensions") {
		t.Fatalf("--check does not start extensions: exit %d %q", code, buf.String())
	}
}

// apiCall sends one request to the daemon's handler and returns the status
// and the body.
func apiCall(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "http://xvsd"+path, strings.NewReader(body)))
	if ct := rec.Header().Get("Content-Type"); rec.Code != http.StatusNoContent && ct != "application/json" {
		t.Errorf("%s %s: content type %q", method, path, ct)
	}
	return rec.Code, rec.Body.String()
}

func TestAPIExtensionsBadInput(t *testing.T) {
	d, c := startDaemon(t, twoPorts)
	h := d.routes()
	missing := filepath.Join(t.TempDir(), "no-such-extension")
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/v1/extensions", "", 200, "[]"},
		{"POST", "/v1/extensions", `{"name":"x","path":"/x","bogus":1}`, 400, `unknown field \"bogus\"`},
		{"POST", "/v1/extensions", `{"name":"x","path":"/x","every_frame":true}`, 400, `unknown field \"every_frame\"`},
		{"POST", "/v1/extensions", `[{]`, 400, "bad request body"},
		{"POST", "/v1/extensions", ``, 400, "bad request body"},
		{"POST", "/v1/extensions", `{"path":"/x"}`, 400, "extension load: name: missing"},
		{"POST", "/v1/extensions", `{"name":"a/b","path":"/x"}`, 400, `name: \"a/b\": want 1..32`},
		{"POST", "/v1/extensions", `{"name":"x","path":"x"}`, 400, `extension load x: path: \"x\": want an absolute path`},
		{"POST", "/v1/extensions", `{"name":"x","path":"/x","fail":"sometimes"}`, 400, `fail: \"sometimes\": want open or closed`},
		{"POST", "/v1/extensions", `{"name":"x","path":"/x","direction":"up"}`, 400, `direction: \"up\"`},
		{"POST", "/v1/extensions", `{"name":"x","path":"/x","vsids":[7]}`, 400, "vsids[0]: 7: want 0 or 4096..16777214"},
		{"POST", "/v1/extensions", `{"name":"x","path":"/x","vsids":[1e30]}`, 400, "bad request body"},
		{"POST", "/v1/extensions", `{"name":"x","path":"/x","ports":["vm1","vm9"]}`, 400, `ports[1]: \"vm9\": no such port on the switch`},
		{"POST", "/v1/extensions", `{"name":"x","path":"/x","deadline":"fast"}`, 400, `deadline: \"fast\": want a duration`},
		{"POST", "/v1/extensions", `{"name":"x","path":"/x","deadline":"-1s"}`, 400, `deadline: -1s: want 1ms..1m`},
		{"POST", "/v1/extensions", `{"name":"x","path":"/x","ring-size":3}`, 400, `ring-size: 3: want a power of two`},
		{"POST", "/v1/extensions", `{"name":"x","path":"/x","config":{"":"v"}}`, 400, "config: empty key"},
		{"POST", "/v1/extensions", `{"name":"x","path":"/x","config":{"n":5}}`, 400, "bad request body"},
		{"POST", "/v1/extensions", `{"name":"x","path":"/x","position":-2}`, 400, "position: -2: want 0 (first) or more"},
		{"POST", "/v1/extensions", `{"name":"x","path":"` + missing + `"}`, 400, "extension x: "},
		{"GET", "/v1/extensions/nosuch", "", 404, "no such extension"},
		{"DELETE", "/v1/extensions/nosuch", "", 404, "unload extension nosuch: no such extension"},
		{"POST", "/v1/extensions/nosuch/enable", "", 404, "no such extension"},
		{"POST", "/v1/extensions/nosuch/disable", "", 404, "no such extension"},
		{"PUT", "/v1/extensions/order", `{"names":["nosuch"]}`, 400, "extension order: order must name every loaded extension exactly once"},
		{"PUT", "/v1/extensions/order", `{"names":[]}`, 200, "[]"},
		{"PUT", "/v1/extensions/order", `{"name":[]}`, 400, `unknown field \"name\"`},
		{"PUT", "/v1/extensions/order", `{"names":"a"}`, 400, "bad request body"},
		{"PATCH", "/v1/extensions/x", "", 404, "no such API call"},
	} {
		code, body := apiCall(t, h, tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %s\nwant %d and %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
	// The client turns the error body into the error.
	if err := c.Do("DELETE", "/extensions/nosuch", nil, nil); err == nil || !strings.Contains(err.Error(), "no such extension") {
		t.Fatalf("client: %v", err)
	}
	if len(d.sw.Extensions()) != 0 {
		t.Fatalf("bad requests loaded %+v", d.sw.Extensions())
	}
}

// TestLoadExtensionRequestMatchesConfig: the API body and the config entry
// are the same fields with the same names.
func TestLoadExtensionRequestMatchesConfig(t *testing.T) {
	en := true
	e := api.Extension{Name: "a", Path: "/a", Args: []string{"x"}, Fail: "open", Direction: "egress", VSIDs: []int64{5001},
		Ports: []string{"p"}, EveryFrame: true, Deadline: "1s", CacheTTL: "1m", RingSize: 64, SlotSize: 128, Enabled: &en,
		Config: map[string]string{"k": "v"}}
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	json.Unmarshal(raw, &keys)
	var yamlKeys []string
	rt := reflect.TypeOf(api.Extension{})
	for i := range rt.NumField() {
		k := rt.Field(i).Tag.Get("yaml")
		if k == "-" {
			k = "config"
		}
		yamlKeys = append(yamlKeys, k)
		if _, ok := keys[k]; !ok {
			t.Errorf("config key %s is not a JSON field of the API (%s)", k, raw)
		}
	}
	if len(keys) != len(yamlKeys) {
		t.Errorf("JSON %s, YAML keys %v", raw, yamlKeys)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExtensionErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("unload extension x: %w", vswitch.ErrNoSuchExtension), 404},
		{fmt.Errorf("load extension x: %w", vswitch.ErrExtensionExists), 409},
		{fmt.Errorf("load extension x: %w: fwd", vswitch.ErrTwoForwarders), 409},
		// An order naming an extension that is not loaded is a bad body.
		{fmt.Errorf("extension order: %w", fmt.Errorf("%w: x: %w", vswitch.ErrBadOrder, vswitch.ErrNoSuchExtension)), 400},
		{fmt.Errorf("%w: name", extensions.ErrBadConfig), 400},
		{errors.New("extension x: start: handshake failed"), 400},
	} {
		rec := httptest.NewRecorder()
		fail(rec, tc.err)
		if rec.Code != tc.code {
			t.Errorf("%v: status %d, want %d", tc.err, rec.Code, tc.code)
		}
	}
}
