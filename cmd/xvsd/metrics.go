package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
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
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics_address: %q: want host:port such as 127.0.0.1:9477", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		d.log.Warn().Str("address", addr).Msg("metrics served beyond localhost; anyone who can reach it sees the port counters")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newSwitchCollector(d.sw), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics_address: %s: %w", addr, err)
	}
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
	d.log.Info().Str("address", "http://"+ln.Addr().String()+"/metrics").Msg("metrics listening")
	return nil
}
