package main

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/extensions"
	"github.com/xvswitch/xvs/vswitch"
)

// Out-of-process switch extensions: the extensions: list of the config
// file and the /v1/extensions API. Both describe an extension with
// api.Extension and turn it into an extensions.Config with
// extensionConfig, so that they accept and refuse the same things with the
// same words.

// ExtensionConfig is one entry of extensions:. Its config: map is decoded
// here rather than by the YAML library so that numbers and booleans are
// accepted (as their text) and errors name the key.
type ExtensionConfig struct {
	api.Extension `yaml:",inline"`
	Settings      yaml.Node `yaml:"config"`
}

// settings turns the config: node into the map handed to the extension:
// a mapping of scalars, null meaning "".
func (e *ExtensionConfig) settings() (map[string]string, error) {
	n := &e.Settings
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config: line %d: want a map of keys to values, such as {rules: /etc/xvs/fw.rules}", n.Line)
	}
	m := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode {
			k = k.Alias
		}
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		if k.Kind != yaml.ScalarNode || k.Tag == "!!null" || k.Value == "" {
			return nil, fmt.Errorf("config: line %d: want a non-empty key", k.Line)
		}
		if _, dup := m[k.Value]; dup {
			return nil, fmt.Errorf("config.%s: given twice", k.Value)
		}
		if v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("config.%s: want a string, number or boolean, not a list or map", k.Value)
		}
		if v.Tag == "!!null" {
			m[k.Value] = ""
		} else {
			m[k.Value] = v.Value
		}
	}
	return m, nil
}

// extensionConfigs translates the extensions: list, in chain order, naming
// the entry and field at fault.
func (c *Config) extensionConfigs() ([]extensions.Config, error) {
	ports := map[string]bool{}
	for _, p := range c.Ports {
		ports[p.Name] = true
	}
	checkPort := func(name string) error {
		if !ports[name] {
			return errors.New("not one of the configured ports")
		}
		return nil
	}
	names := map[string]int{}
	var out []extensions.Config
	for i := range c.Extensions {
		e := &c.Extensions[i]
		field := fmt.Sprintf("extensions[%d]", i)
		if j, ok := names[e.Name]; ok && e.Name != "" {
			return nil, fmt.Errorf("%s.name: %q already used by extensions[%d]", field, e.Name, j)
		}
		names[e.Name] = i
		settings, err := e.settings()
		if err != nil {
			return nil, fmt.Errorf("%s.%w", field, err)
		}
		e.Config = settings
		ec, err := extensionConfig(&e.Extension, checkPort)
		if err != nil {
			return nil, fmt.Errorf("%s.%w", field, err)
		}
		out = append(out, ec)
	}
	return out, nil
}

// extensionConfig checks e and turns it into the switch's form. Errors
// start with the field, as in "fail: "sometimes": want open or closed", for
// the caller to prefix; checkPort says why a port name is refused (nil:
// accepted).
func extensionConfig(e *api.Extension, checkPort func(string) error) (extensions.Config, error) {
	var c extensions.Config
	if e.Name == "" {
		return c, errors.New("name: missing")
	}
	if extensions.CheckName(e.Name) != nil {
		return c, fmt.Errorf("name: %q: want 1..32 of a-z A-Z 0-9 . _ -", e.Name)
	}
	if e.Path == "" {
		return c, errors.New("path: missing: want the absolute path of the extension's executable")
	}
	if !filepath.IsAbs(e.Path) {
		return c, fmt.Errorf("path: %q: want an absolute path", e.Path)
	}
	fail, err := extensions.ParseFailMode(e.Fail)
	if err != nil {
		return c, fmt.Errorf("fail: %q: want open or closed", e.Fail)
	}
	dirs, err := extensions.ParseDirections(e.Direction)
	if err != nil {
		return c, fmt.Errorf("direction: %q: want ingress, egress or both", e.Direction)
	}
	var vsids []uint32
	for i, v := range e.VSIDs {
		if v != int64(vswitch.VSIDNone) && (v < int64(vswitch.VSIDMin) || v > int64(vswitch.VSIDMax)) {
			return c, fmt.Errorf("vsids[%d]: %d: want 0 or %d..%d", i, v, vswitch.VSIDMin, vswitch.VSIDMax)
		}
		vsids = append(vsids, uint32(v))
	}
	for i, p := range e.Ports {
		if p == "" {
			return c, fmt.Errorf("ports[%d]: empty: want a port name", i)
		}
		if checkPort != nil {
			if err := checkPort(p); err != nil {
				return c, fmt.Errorf("ports[%d]: %q: %w", i, p, err)
			}
		}
	}
	deadline, err := duration(e.Deadline)
	if err != nil {
		return c, fmt.Errorf("deadline: %q: want a duration such as 500ms", e.Deadline)
	}
	ttl, err := duration(e.CacheTTL)
	if err != nil {
		return c, fmt.Errorf("cache-ttl: %q: want a duration such as 60s or 5m", e.CacheTTL)
	}
	for k := range e.Config {
		if k == "" {
			return c, errors.New("config: empty key")
		}
	}
	c = extensions.Config{
		Name: e.Name, Path: e.Path, Args: e.Args,
		Fail: fail, Directions: dirs, VSIDs: vsids, Ports: e.Ports,
		EveryFrame: e.EveryFrame, Deadline: deadline, CacheTTL: ttl,
		Settings: e.Config, RingSize: e.RingSize, SlotSize: e.SlotSize,
		Disabled: e.Enabled != nil && !*e.Enabled,
	}
	if err := c.Validate(); err != nil {
		return c, relabelConfigError(err)
	}
	return c, nil
}

func duration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// validateMessage matches what extensions.Config.Validate says of a value
// out of range ("invalid extension configuration: extension fw: ring-size
// 100: want ..."), to say it as the rest of the configuration does
// ("ring-size: 100: want ...").
var validateMessage = regexp.MustCompile(`^` + regexp.QuoteMeta(extensions.ErrBadConfig.Error()) + `: (?:extension [^:]*: )?([a-z-]+) (.+?): (want .*)$`)

func relabelConfigError(err error) error {
	m := validateMessage.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	return &relabeled{msg: fmt.Sprintf("%s: %s: %s", m[1], m[2], m[3]), err: err}
}

// loadExtensions loads the configured extensions, in order, at the end of
// the chain (the switch logs each).
func (d *daemon) loadExtensions() error {
	cfgs, err := d.cfg.extensionConfigs()
	if err != nil {
		return err
	}
	for i, ec := range cfgs {
		if err := d.sw.LoadExtension(ec, -1); err != nil {
			return fmt.Errorf("extensions[%d] (%s): %w", i, ec.Name, err)
		}
	}
	return nil
}

// extensions is the chain, never nil (an empty list is [] in JSON).
func (d *daemon) extensions() []vswitch.ExtensionInfo {
	xs := d.sw.Extensions()
	if xs == nil {
		xs = []vswitch.ExtensionInfo{}
	}
	return xs
}

func (d *daemon) findExtension(name string) *vswitch.ExtensionInfo {
	for _, x := range d.sw.Extensions() {
		if x.Name == name {
			return &x
		}
	}
	return nil
}

// portExists is the API's check of an extension's ports: a port named
// must be on the switch when the extension is loaded.
func (d *daemon) portExists(name string) error {
	for _, p := range d.sw.Ports() {
		if p.Name == name {
			return nil
		}
	}
	return errors.New("no such port on the switch")
}

func (d *daemon) extensionRoutes(mux *http.ServeMux) {
	pre := "/" + api.Version + "/extensions"
	mux.HandleFunc("GET "+pre, func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, d.extensions())
	})
	mux.HandleFunc("POST "+pre, func(w http.ResponseWriter, r *http.Request) {
		var req api.LoadExtension
		if !decode(w, r, &req) {
			return
		}
		what := "extension load"
		if req.Name != "" {
			what += " " + req.Name
		}
		pos := -1
		if req.Position != nil {
			if pos = *req.Position; pos < -1 {
				fail(w, fmt.Errorf("%s: position: %d: want 0 (first) or more; omit it to load at the end", what, pos))
				return
			}
		}
		ec, err := extensionConfig(&req.Extension, d.portExists)
		if err != nil {
			fail(w, fmt.Errorf("%s: %w", what, err))
			return
		}
		// The switch's errors name the extension.
		if err := d.sw.LoadExtension(ec, pos); err != nil {
			fail(w, err)
			return
		}
		d.log.Info().Str("extension", ec.Name).Str("path", ec.Path).Msg("extension loaded by API")
		reply(w, http.StatusCreated, d.findExtension(ec.Name))
	})
	mux.HandleFunc("GET "+pre+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		x, err := d.sw.ExtensionStats(r.PathValue("name"))
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, x)
	})
	mux.HandleFunc("DELETE "+pre+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := d.sw.UnloadExtension(name); err != nil {
			fail(w, err)
			return
		}
		d.log.Info().Str("extension", name).Msg("extension unloaded by API")
		w.WriteHeader(http.StatusNoContent)
	})
	for _, verb := range []string{"enable", "disable"} {
		enable := verb == "enable"
		mux.HandleFunc("POST "+pre+"/{name}/"+verb, func(w http.ResponseWriter, r *http.Request) {
			name := r.PathValue("name")
			if err := d.sw.SetExtensionEnabled(name, enable); err != nil {
				fail(w, err)
				return
			}
			d.log.Info().Str("extension", name).Bool("enabled", enable).Msg("extension " + verb + "d by API")
			reply(w, http.StatusOK, d.findExtension(name))
		})
	}
	mux.HandleFunc("PUT "+pre+"/order", func(w http.ResponseWriter, r *http.Request) {
		var req api.OrderExtensions
		if !decode(w, r, &req) {
			return
		}
		if err := d.sw.OrderExtensions(req.Names); err != nil {
			fail(w, fmt.Errorf("extension order: %w", err))
			return
		}
		d.log.Info().Strs("order", req.Names).Msg("extensions reordered by API")
		reply(w, http.StatusOK, d.extensions())
	})
}
