package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/header"
	"github.com/xvswitch/xvs/vswitch"
	"github.com/xvswitch/xvs/wnv"
)

// daemon is xvsd at run time: the switch, the control API and metrics.
type daemon struct {
	cfg     *Config
	log     zerolog.Logger
	sw      *vswitch.Switch
	started time.Time

	policy      *wnv.Policy
	fastPath    *fastPath // nil when the kernel refused its maps
	fastPathErr error

	mu    sync.Mutex          // serialises port changes and guards meta
	meta  map[string]portSpec // how each port was created, checked
	apiLn net.Listener
	api   *http.Server
	mets  *http.Server
}

// newOffload creates the AF_XDP fast path; set by the platform's port types.
var newOffload = func(zerolog.Logger) (*fastPath, error) {
	return nil, errors.New("no fast path on this platform")
}

func newDaemon(cfg *Config, log zerolog.Logger) (*daemon, error) {
	sc, err := cfg.switchConfig()
	if err != nil {
		return nil, err
	}
	sc.Logger = log.With().Str("component", "switch").Logger()
	pol, err := wnv.LoadConfig(cfg.Policy)
	if err != nil {
		return nil, fmt.Errorf("policy.%w", err)
	}
	sc.Policy = pol
	d := &daemon{policy: pol, cfg: cfg, log: log, started: time.Now(), meta: map[string]portSpec{}}
	if d.fastPath, d.fastPathErr = newOffload(log); d.fastPathErr != nil {
		log.Debug().Err(d.fastPathErr).Msg("AF_XDP fast path unavailable")
	} else {
		sc.Offload = d.fastPath
	}
	sw, err := vswitch.New(sc)
	if err != nil {
		if d.fastPath != nil {
			d.fastPath.close()
		}
		return nil, err
	}
	d.sw = sw
	return d, nil
}

// start brings up the configured ports, the workers, the API and metrics.
// On error everything started so far is stopped.
func (d *daemon) start() (err error) {
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	for i, p := range d.cfg.Ports {
		if err := d.addPort(p.spec(), *p.VSID); err != nil {
			return fmt.Errorf("ports[%d] (%s): %w", i, p.Name, err)
		}
	}
	// Before the workers start, so that no frame passes before the
	// configured filters are in place.
	if err := d.loadExtensions(); err != nil {
		return err
	}
	d.checkUplinkMTU()
	if err := d.sw.Start(); err != nil {
		return err
	}
	if err := d.listenAPI(); err != nil {
		return err
	}
	if d.cfg.MetricsAddress != "" {
		if err := d.listenMetrics(); err != nil {
			return err
		}
	}
	return nil
}

func (d *daemon) addPort(s portSpec, vsid uint32) error {
	if err := s.check(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.meta[s.Name]; ok {
		return fmt.Errorf("name: %q: %w", s.Name, vswitch.ErrPortExists)
	}
	if s.Socket != "" && s.Socket == filepath.Clean(d.cfg.APISocket) {
		return fmt.Errorf("socket: %s is xvsd's api_socket", s.Socket)
	}
	for n, m := range d.meta {
		if s.Dev != "" && m.Dev == s.Dev && m.Type == s.Type {
			return fmt.Errorf("dev: %s is already attached as port %s", s.Dev, n)
		}
		if s.Socket != "" && m.Socket == s.Socket {
			return fmt.Errorf("socket: %s is already used by port %s", s.Socket, n)
		}
	}
	p, err := portTypes[s.Type](d, s)
	if err != nil {
		return err
	}
	if err := d.sw.AddPort(p, vsid); err != nil { // it closes p
		return err
	}
	d.meta[s.Name] = s
	return nil
}

func (d *daemon) removePort(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.sw.RemovePort(name); err != nil {
		return err
	}
	delete(d.meta, name)
	return nil
}

func (d *daemon) ports() []api.Port {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []api.Port
	for _, p := range d.sw.Ports() {
		m := d.meta[p.Name]
		out = append(out, api.Port{PortInfo: p, Type: m.Type, Dev: m.Dev, FastPath: m.FastPath,
			ThreadedNAPI: m.ThreadedNAPI, Socket: m.Socket, Mode: m.Mode, Queues: m.Queues})
	}
	return out
}

// listenAPI opens the control socket: root only, mode 0600, a stale socket
// from a crashed daemon replaced, a live one refused.
func (d *daemon) listenAPI() error {
	path := d.cfg.APISocket
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("api_socket: %s: %w", path, err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("api_socket: %s: another xvsd is listening there", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("api_socket: remove stale %s: %w", path, err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("api_socket: %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("api_socket: chmod %s: %w", path, err)
	}
	d.apiLn = rootOnly{ln.(*net.UnixListener), d.log}
	d.api = &http.Server{Handler: d.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := d.api.Serve(d.apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error().Err(err).Msg("control API stopped")
		}
	}()
	d.log.Info().Str("socket", path).Str("api", api.Version).Msg("control API listening")
	return nil
}

// rootOnly refuses connections from other users than root, in case the
// socket's mode is loosened by hand.
type rootOnly struct {
	*net.UnixListener
	log zerolog.Logger
}

func (l rootOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if uid, ok := peerUID(c); ok && uid == 0 {
			return c, nil
		} else {
			l.log.Warn().Int("uid", uid).Msg("control API: refused a connection from a non-root user")
		}
		c.Close()
	}
}

func peerUID(c *net.UnixConn) (int, bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, false
	}
	uid := -1
	raw.Control(func(fd uintptr) {
		cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
		if err == nil {
			uid = int(cred.Uid)
		}
	})
	return uid, uid >= 0
}

func (d *daemon) routes() http.Handler {
	mux := http.NewServeMux()
	pre := "/" + api.Version
	mux.HandleFunc("GET "+pre+"/version", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, api.VersionInfo{
			Version: version, API: api.Version, Started: d.started,
			Workers: d.sw.Config().Workers, Poll: d.sw.Config().PollMode.String(),
		})
	})
	mux.HandleFunc("GET "+pre+"/ports", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, d.ports())
	})
	mux.HandleFunc("POST "+pre+"/ports", func(w http.ResponseWriter, r *http.Request) {
		var req api.AddPort
		if !decode(w, r, &req) {
			return
		}
		if req.VSID == nil {
			fail(w, fmt.Errorf("vsid: missing: give 0 for non-virtualized traffic or %d..%d", vswitch.VSIDMin, vswitch.VSIDMax))
			return
		}
		if req.Name == "" {
			fail(w, errors.New("name: missing"))
			return
		}
		s := portSpec{Name: req.Name, Type: req.Type, Dev: req.Dev, FastPath: req.FastPath, ThreadedNAPI: req.ThreadedNAPI,
			Socket: req.Socket, Mode: req.Mode, MAC: req.MAC, Queues: req.Queues}
		if err := d.addPort(s, *req.VSID); err != nil {
			fail(w, fmt.Errorf("port add %s: %w", req.Name, err))
			return
		}
		p := d.findPort(req.Name)
		ev := d.log.Info().Str("port", req.Name).Str("type", req.Type)
		if p != nil && p.Socket != "" {
			ev = ev.Str("socket", p.Socket).Str("mode", p.Mode)
		} else {
			ev = ev.Str("dev", req.Dev)
		}
		ev.Uint32("vsid", *req.VSID).Msg("port added by API")
		reply(w, http.StatusCreated, p)
	})
	mux.HandleFunc("PATCH "+pre+"/ports/{name}", func(w http.ResponseWriter, r *http.Request) {
		var req api.SetPort
		if !decode(w, r, &req) {
			return
		}
		name := r.PathValue("name")
		if req.VSID == nil {
			fail(w, errors.New("vsid: missing: nothing to change"))
			return
		}
		if err := d.sw.SetPortVSID(name, *req.VSID); err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, d.findPort(name))
	})
	mux.HandleFunc("DELETE "+pre+"/ports/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := d.removePort(r.PathValue("name")); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+pre+"/stats", func(w http.ResponseWriter, r *http.Request) {
		st, err := d.sw.Stats(r.URL.Query().Get("port"))
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET "+pre+"/macs", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, d.sw.MACs())
	})
	d.policyRoutes(mux)
	d.extensionRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusNotFound, api.Error{Error: fmt.Sprintf("no such API call: %s %s (this xvsd speaks API %s)", r.Method, r.URL.Path, api.Version)})
	})
	return mux
}

func (d *daemon) findPort(name string) *api.Port {
	for _, p := range d.ports() {
		if p.Name == name {
			return &p
		}
	}
	return nil
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		reply(w, http.StatusBadRequest, api.Error{Error: "bad request body: " + err.Error()})
		return false
	}
	return true
}

func fail(w http.ResponseWriter, err error) {
	code := http.StatusBadRequest
	switch {
	case errors.Is(err, vswitch.ErrBadOrder):
		// Also when it names an extension that is not loaded: the body is
		// wrong, not the path.
	case errors.Is(err, vswitch.ErrNoSuchPort), errors.Is(err, vswitch.ErrNoSuchExtension):
		code = http.StatusNotFound
	case errors.Is(err, vswitch.ErrPortExists), errors.Is(err, wnv.ErrExists), errors.Is(err, wnv.ErrInUse),
		errors.Is(err, vswitch.ErrExtensionExists), errors.Is(err, vswitch.ErrTwoForwarders):
		code = http.StatusConflict
	case errors.Is(err, wnv.ErrNotFound):
		code = http.StatusNotFound
	}
	reply(w, code, api.Error{Error: err.Error()})
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// close stops everything; safe to call more than once.
func (d *daemon) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if d.api != nil {
		d.api.Shutdown(ctx)
		os.Remove(d.cfg.APISocket)
		d.api = nil
	}
	if d.mets != nil {
		d.mets.Shutdown(ctx)
		d.mets = nil
	}
	if err := d.sw.Close(); err != nil {
		d.log.Error().Err(err).Msg("closing ports")
	}
	if d.fastPath != nil {
		d.fastPath.close()
		d.fastPath = nil
	}
}

// checkUplinkMTU says, for each uplink (a port carrying a provider
// address), what MTU the VMs must use so that NVGRE's 42 bytes still fit,
// and warns about virtualized ports whose MTU is larger.
func (d *daemon) checkUplinkMTU() {
	snap := d.policy.Snapshot()
	ports := d.sw.Ports()
	for _, pa := range snap.ProviderAddresses() {
		var up *vswitch.PortInfo
		for i := range ports {
			if ports[i].Name == pa.Interface {
				up = &ports[i]
			}
		}
		if up == nil {
			d.log.Warn().Str("interface", pa.Interface).Str("pa", pa.PA.String()).Msg("provider address on no port: VMs cannot reach other hosts until a port of that name is added")
			continue
		}
		vmMTU := up.MTU - header.NVGREOverhead
		d.log.Info().Str("uplink", up.Name).Int("mtu", up.MTU).Int("vm_mtu_max", vmMTU).Msg("uplink: NVGRE adds 42 bytes; VMs must use at most this MTU (larger DF frames get ICMP fragmentation needed)")
		for _, p := range ports {
			if _, virtual := snap.Subnet(p.VSID); virtual && p.MTU > vmMTU {
				d.log.Warn().Str("port", p.Name).Int("mtu", p.MTU).Int("vm_mtu_max", vmMTU).Msg("port MTU larger than the uplink allows once encapsulated: set the VM's MTU, or raise the uplink's")
			}
		}
	}
}
