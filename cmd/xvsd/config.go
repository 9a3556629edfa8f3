package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/ring"
	"github.com/xvswitch/xvs/vswitch"
	"github.com/xvswitch/xvs/wnv"
)

// Config is the xvsd configuration file. Field names are the YAML keys.
type Config struct {
	Workers        int    `yaml:"workers"`
	PollMode       string `yaml:"poll_mode"`
	LogLevel       string `yaml:"log_level"`
	APISocket      string `yaml:"api_socket"`
	MetricsAddress string `yaml:"metrics_address"`
	// MetricsSocketMode is the file mode of a unix-socket metrics_address
	// (octal, e.g. "0660" for a group that may scrape); default 0600.
	MetricsSocketMode string       `yaml:"metrics_socket_mode"`
	FrameSize         int          `yaml:"frame_size"`
	Headroom          int          `yaml:"headroom"`
	Frames            int          `yaml:"frames_per_worker"`
	MACLimit          int          `yaml:"mac_limit"`
	MACAgeing         string       `yaml:"mac_ageing"`
	Ports             []PortConfig `yaml:"ports"`
	// HeadEndReplication: broadcast and multicast of a virtual subnet go
	// to every other host with records in it (one NVGRE unicast each).
	HeadEndReplication bool `yaml:"head_end_replication"`
	// Policy is the network virtualization policy (see package wnv):
	// routing domains, virtual subnets, lookup records, routes, provider
	// addresses. xvsctl changes it at run time.
	Policy wnv.PolicyConfig `yaml:"policy"`
	// Extensions are out-of-process switch extensions, in chain order,
	// loaded after the ports; xvsctl extension ... changes them at run time.
	Extensions []ExtensionConfig `yaml:"extensions"`
}

// PortConfig is one entry of ports:.
type PortConfig struct {
	Name     string  `yaml:"name"`
	Type     string  `yaml:"type"`
	Dev      string  `yaml:"dev"` // every type but vhostuser
	VSID     *uint32 `yaml:"vsid"`
	FastPath bool    `yaml:"fast_path"` // afxdp: forward learned unicast in the kernel (the device must accept XDP_REDIRECT)
	// afxdp: the device polls in kernel threads (threaded NAPI), so its
	// XDP program (the fast path) runs on a free core rather than in the
	// sender's softirq: more TCP throughput when the sender's CPU is the
	// bottleneck (bench/RESULTS.md). Default off: it changes how the
	// whole device is polled.
	ThreadedNAPI bool `yaml:"threaded_napi"`
	// vhostuser only: the socket (absolute path), who listens on it
	// (server, the default: xvs; client: QEMU, with server=on), the VM
	// NIC's MAC (as QEMU's virtio-net-pci mac=) and the queue pairs
	// offered (as QEMU's vhost-user queues=; default 1).
	Socket string `yaml:"socket"`
	Mode   string `yaml:"mode"`
	MAC    string `yaml:"mac"`
	Queues int    `yaml:"queues"`
}

func (p PortConfig) spec() portSpec {
	return portSpec{Name: p.Name, Type: p.Type, Dev: p.Dev, FastPath: p.FastPath, ThreadedNAPI: p.ThreadedNAPI,
		Socket: p.Socket, Mode: p.Mode, MAC: p.MAC, Queues: p.Queues}
}

// defaultConfigYAML is what xvsd runs with when no file is given: a switch
// with no ports that answers xvsctl and serves metrics on localhost.
const defaultConfigYAML = `# xvsd configuration (defaults shown)
workers: 1                      # poll-mode worker goroutines, each on its own OS thread
poll_mode: adaptive             # adaptive (sleeps when idle) or busy (spins, lowest latency)
log_level: info                 # debug, info, warn or error
api_socket: /run/xvs/xvsd.sock  # control socket for xvsctl (root only, mode 0600)
metrics_address: 127.0.0.1:9477 # Prometheus /metrics: host:port, unix:/path (see metrics_socket_mode), "" off
metrics_socket_mode: "0600"     # file mode of a unix metrics socket (every tenant's port names and counters)
frame_size: 2048                # bytes per frame buffer, headroom included
headroom: 256                   # bytes in front of each frame for encapsulation (>= 128)
frames_per_worker: 4096         # frame buffers per worker
mac_limit: 4096                 # learned MACs per VSID
mac_ageing: 300s                # forget a MAC not seen for this long
head_end_replication: true      # WNV: replicate broadcast/multicast to the other hosts of a VSID
ports: []                       # instead of [], entries such as:
#  - {name: vm1, type: afxdp, dev: veth-vm1, vsid: 5001, fast_path: false}
#  - {name: vm2, type: tap, dev: vmtap2, vsid: 5001}
#  - name: vm3                   # a vhost-user port: QEMU's or DPDK's virtio-net, no device
#    type: vhostuser
#    socket: /run/xvs/vm3.sock   # absolute path of the unix socket
#    mode: server                # server: xvs listens (QEMU -chardev socket,path=...);
#                                # client: QEMU listens (server=on,wait=off), xvs connects and reconnects
#    mac: 02:00:00:00:00:03      # the VM NIC's MAC, as in QEMU's virtio-net-pci mac= (default: from the name)
#    queues: 1                   # queue pairs offered, as QEMU's vhost-user queues= (default 1)
#    vsid: 5001
extensions: []                  # out-of-process switch extensions in chain order; instead of [], entries such as:
#  - name: acl                   # unique: 1..32 of a-z A-Z 0-9 . _ -
#    path: /usr/local/lib/xvs/aclfilter  # the executable (absolute path)
#    args: [--verbose]           # its arguments
#    fail: closed                # open or closed; default: closed for a filter, open otherwise
#    direction: both             # ingress, egress or both
#    vsids: [5001]               # the VSIDs it sees (default: all)
#    ports: [vm1]                # the ports it sees, each one of ports: (default: all)
#    every-frame: false          # every frame, not just the first of each flow, to a filter
#    deadline: 500ms             # a verdict later than this fails the extension
#    cache-ttl: 60s              # how long a cached verdict lives
#    ring-size: 1024             # descriptors per ring (a power of two)
#    slot-size: 2048             # frame bytes per descriptor
#    enabled: true               # false: loaded, but out of the data path
#    config: {rules: /etc/xvs/acl.yaml}  # handed to the extension
`

// loadConfig reads a config from r (defaults for what it omits) and
// validates it; errors name the field and the value.
func loadConfig(r io.Reader, source string) (*Config, error) {
	cfg := &Config{}
	if err := yaml.Unmarshal([]byte(defaultConfigYAML), cfg); err != nil {
		return nil, fmt.Errorf("built-in defaults: %w", err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return cfg, nil
}

func loadConfigFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return loadConfig(f, path)
}

func (c *Config) validate() error {
	if _, err := c.switchConfig(); err != nil {
		return err
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if _, err := wnv.LoadConfig(c.Policy); err != nil {
		return fmt.Errorf("policy.%w", err)
	}
	if c.APISocket == "" {
		return fmt.Errorf("api_socket: empty: want a path such as %s", api.DefaultSocket)
	}
	if _, err := c.metricsSocketMode(); err != nil {
		return err
	}
	names := map[string]int{}
	sockets := map[string]int{}
	for i, p := range c.Ports {
		field := fmt.Sprintf("ports[%d]", i)
		if p.Name == "" {
			return fmt.Errorf("%s.name: missing", field)
		}
		if j, ok := names[p.Name]; ok {
			return fmt.Errorf("%s.name: %q already used by ports[%d]", field, p.Name, j)
		}
		names[p.Name] = i
		if _, ok := portTypes[p.Type]; !ok {
			return fmt.Errorf("%s.type: %q: want one of %s", field, p.Type, portTypeList())
		}
		if p.VSID == nil {
			return fmt.Errorf("%s.vsid: missing: give 0 for non-virtualized traffic or %d..%d for a virtual subnet", field, vswitch.VSIDMin, vswitch.VSIDMax)
		}
		if err := vswitch.CheckVSID(*p.VSID); err != nil || *p.VSID == vswitch.VSIDUnassigned {
			return fmt.Errorf("%s.vsid: %d: want 0 or %d..%d", field, *p.VSID, vswitch.VSIDMin, vswitch.VSIDMax)
		}
		spec := p.spec()
		if err := spec.check(); err != nil {
			return fmt.Errorf("%s.%w", field, err)
		}
		if spec.Socket != "" {
			if spec.Socket == filepath.Clean(c.APISocket) {
				return fmt.Errorf("%s.socket: %q is api_socket", field, p.Socket)
			}
			if j, ok := sockets[spec.Socket]; ok {
				return fmt.Errorf("%s.socket: %q already used by ports[%d]", field, p.Socket, j)
			}
			sockets[spec.Socket] = i
		}
	}
	if _, err := c.extensionConfigs(); err != nil {
		return err
	}
	return nil
}

// switchConfig translates the file's fields, naming the field at fault.
func (c *Config) switchConfig() (vswitch.Config, error) {
	var sc vswitch.Config
	if c.Workers < 1 || c.Workers > 64 {
		return sc, fmt.Errorf("workers: %d: want 1..64", c.Workers)
	}
	mode, err := vswitch.ParsePollMode(c.PollMode)
	if err != nil {
		return sc, fmt.Errorf("poll_mode: %q: want adaptive or busy", c.PollMode)
	}
	ageing, err := time.ParseDuration(c.MACAgeing)
	if err != nil || ageing < time.Second {
		return sc, fmt.Errorf("mac_ageing: %q: want a duration of at least 1s, such as 300s or 5m", c.MACAgeing)
	}
	if c.MACLimit < 1 || c.MACLimit > 1<<20 {
		return sc, fmt.Errorf("mac_limit: %d: want 1..%d", c.MACLimit, 1<<20)
	}
	ac := ring.ArenaConfig{Frames: c.Frames, FrameSize: c.FrameSize, Headroom: c.Headroom}
	if c.Headroom < ring.MinHeadroom {
		return sc, fmt.Errorf("headroom: %d: want at least %d", c.Headroom, ring.MinHeadroom)
	}
	if c.FrameSize < c.Headroom+1514 || c.FrameSize > 65535 {
		return sc, fmt.Errorf("frame_size: %d: want headroom+1514 (%d) .. 65535", c.FrameSize, c.Headroom+1514)
	}
	if c.Frames < 2*ring.BatchSize || c.Frames > 1<<20 {
		return sc, fmt.Errorf("frames_per_worker: %d: want %d..%d", c.Frames, 2*ring.BatchSize, 1<<20)
	}
	return vswitch.Config{Workers: c.Workers, PollMode: mode, Arena: ac, MACLimit: c.MACLimit, MACAgeing: ageing, HeadEndReplication: c.HeadEndReplication}, nil
}

// metricsSocketMode parses metrics_socket_mode ("" is 0600).
func (c *Config) metricsSocketMode() (os.FileMode, error) {
	if c.MetricsSocketMode == "" {
		return 0o600, nil
	}
	m, err := strconv.ParseUint(c.MetricsSocketMode, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("metrics_socket_mode: %q: want an octal file mode such as 0660", c.MetricsSocketMode)
	}
	return os.FileMode(m), nil
}
