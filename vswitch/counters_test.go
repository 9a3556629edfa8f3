package vswitch

import (
	"slices"
	"testing"
)

// TestDropReasonNames: the names users' scripts and dashboards rely on, in
// order. The WNV module and the extension stage name their own reasons;
// this keeps those names exactly what they were.
func TestDropReasonNames(t *testing.T) {
	want := []string{"malformed", "no-vsid", "learn-cap", "ring-full", "same-port", "port-error", "no-policy",
		"proxied", "pool-empty", "spoof", "isolation", "ttl", "no-uplink", "arp-pending", "mtu", "nvgre-invalid",
		"nvgre-not-ours", "nvgre-vsid", "nvgre-no-dst", "nvgre-src", "rewrite-src", "extension-drop",
		"extension-failed", "extension-busy", "extension-invalid", "neighbor-changed", "extension-scope", "ra-guard", "dhcp-guard"}
	var got []string
	for _, r := range DropReasons() {
		got = append(got, r.String())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("drop reasons\n got %q\nwant %q", got, want)
	}
	for r, n := range wnvDropReasons {
		if n.String() == "unknown" {
			t.Errorf("WNV reason %d has no switch counterpart", r)
		}
	}
}
