package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xvswitch/xvs/vswitch"
)

// switchCollector exports the per-port counters at scrape time; nothing is
// kept or updated in between.
type switchCollector struct {
	sw                                   *vswitch.Switch
	rxFrames, rxBytes, txFrames, txBytes *prometheus.Desc
	drops                                *prometheus.Desc
	ext, extUp, extRestarts              *prometheus.Desc
}

func newSwitchCollector(sw *vswitch.Switch) *switchCollector {
	labels := []string{"port", "vsid"}
	return &switchCollector{
		sw:       sw,
		rxFrames: prometheus.NewDesc("xvs_port_rx_frames_total", "Frames received by the switch on the port.", labels, nil),
		rxBytes:  prometheus.NewDesc("xvs_port_rx_bytes_total", "Bytes received by the switch on the port.", labels, nil),
		txFrames: prometheus.NewDesc("xvs_port_tx_frames_total", "Frames transmitted by the switch on the port.", labels, nil),
		txBytes:  prometheus.NewDesc("xvs_port_tx_bytes_total", "Bytes transmitted by the switch on the port.", labels, nil),
		drops:    prometheus.NewDesc("xvs_port_drops_total", "Frames dropped, by port and reason (learn-cap counts sources not learned).", []string{"port", "vsid", "reason"}, nil),
		ext: prometheus.NewDesc("xvs_extension_events_total",
			"An extension's switch-side counters (sent, captured, capture-dropped, cache-hits, dropped, invalid, ...).", []string{"extension", "kind", "counter"}, nil),
		extUp:       prometheus.NewDesc("xvs_extension_up", "1 while the extension's process is running and in the data path.", []string{"extension", "kind"}, nil),
		extRestarts: prometheus.NewDesc("xvs_extension_restarts_total", "Restarts after failures.", []string{"extension", "kind"}, nil),
	}
}

func (c *switchCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.rxFrames
	ch <- c.rxBytes
	ch <- c.txFrames
	ch <- c.txBytes
	ch <- c.drops
	ch <- c.ext
	ch <- c.extUp
	ch <- c.extRestarts
}

func (c *switchCollector) Collect(ch chan<- prometheus.Metric) {
	stats, _ := c.sw.Stats("")
	for _, s := range stats {
		vsid := strconv.FormatUint(uint64(s.VSID), 10)
		if s.VSID == vswitch.VSIDUnassigned {
			vsid = "none"
		}
		ch <- prometheus.MustNewConstMetric(c.rxFrames, prometheus.CounterValue, float64(s.RxFrames), s.Name, vsid)
		ch <- prometheus.MustNewConstMetric(c.rxBytes, prometheus.CounterValue, float64(s.RxBytes), s.Name, vsid)
		ch <- prometheus.MustNewConstMetric(c.txFrames, prometheus.CounterValue, float64(s.TxFrames), s.Name, vsid)
		ch <- prometheus.MustNewConstMetric(c.txBytes, prometheus.CounterValue, float64(s.TxBytes), s.Name, vsid)
		for reason, n := range s.Drops {
			ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(n), s.Name, vsid, reason)
		}
	}
	for _, x := range c.sw.Extensions() {
		up := 0.0
		if x.State == "running" && x.Enabled {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.extUp, prometheus.GaugeValue, up, x.Name, x.Kind)
		ch <- prometheus.MustNewConstMetric(c.extRestarts, prometheus.CounterValue, float64(x.Restarts), x.Name, x.Kind)
		for name, n := range x.Counters {
			if strings.HasPrefix(name, "verdict-latency") { // gauges, not counters: in xvsctl only
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.ext, prometheus.CounterValue, float64(n), x.Name, x.Kind, name)
		}
	}
}

func (d *daemon) listenMetrics() error {
	addr := d.cfg.MetricsAddress
	ln, err := d.metricsListener(addr)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newSwitchCollector(d.sw), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.mets = srv
	go func() {
		// srv, not d.mets: close may clear d.mets before this runs
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error().Err(err).Msg("metrics server stopped")
		}
		ln.Close() // Serve after Shutdown returns without closing it
	}()
	where := "http://" + ln.Addr().String() + "/metrics"
	if ln.Addr().Network() == "unix" {
		where = addr + " (HTTP, GET /metrics)"
	}
	d.log.Info().Str("address", where).Msg("metrics listening")
	return nil
}

// metricsListener listens on metrics_address: TCP host:port (a warning
// when beyond loopback: anyone who reaches it sees every tenant's port
// names and counters, and so does every local user on loopback), or
// unix:/path, a socket whose file mode (metrics_socket_mode) says who may
// scrape.
func (d *daemon) metricsListener(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if !filepath.IsAbs(path) {
			return nil, fmt.Errorf("metrics_address: %q: want unix:/absolute/path", addr)
		}
		mode, err := d.cfg.metricsSocketMode()
		if err != nil {
			return nil, err
		}
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path) // a stale socket of an earlier run
		}
		old := syscall.Umask(0o177) // no moment with a wider mode than asked
		ln, err := net.Listen("unix", path)
		syscall.Umask(old)
		if err != nil {
			return nil, fmt.Errorf("metrics_address: %s: %w", addr, err)
		}
		if err := os.Chmod(path, mode); err != nil {
			ln.Close()
			return nil, fmt.Errorf("metrics_address: %s: chmod %#o: %w", addr, mode, err)
		}
		return ln, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_address: %q: want host:port such as 127.0.0.1:9477, or unix:/path", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		d.log.Warn().Str("address", addr).Msg("metrics served beyond localhost; anyone who can reach it sees every tenant's port names and counters")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_address: %s: %w", addr, err)
	}
	return ln, nil
}
