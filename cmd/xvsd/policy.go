package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strings"

	"github.com/xvswitch/xvs/api"
	"github.com/xvswitch/xvs/wnv"
)

// The policy API: one kind of object per path, add with POST, remove with
// DELETE (the body names the object by its key fields), read everything
// with GET /v1/policy. Changes are validated by package wnv and published
// atomically: traffic never sees half a change.

// elementPrefix matches the "lookup_records[0]." wnv puts before a field
// when it validates one element of a PolicyConfig: for one object added
// through the API the field name alone is clearer.
var elementPrefix = regexp.MustCompile(`^[a-z_]+\[0\][.:]?\s*`)

func (d *daemon) policyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /"+api.Version+"/trace", func(w http.ResponseWriter, r *http.Request) {
		var req api.Trace
		if !decode(w, r, &req) {
			return
		}
		frame, err := hex.DecodeString(strings.ReplaceAll(strings.ReplaceAll(req.Frame, " ", ""), ":", ""))
		if err != nil || len(frame) == 0 || len(frame) > 9216 {
			fail(w, fmt.Errorf("frame: want 1..9216 bytes in hex (spaces and colons allowed): %v", err))
			return
		}
		steps, err := d.sw.Trace(req.Port, frame)
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, steps)
	})
	pre := "/" + api.Version + "/policy"
	mux.HandleFunc("GET "+pre, func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, d.policy.Config())
	})
	mux.HandleFunc("POST "+pre+"/{kind}", func(w http.ResponseWriter, r *http.Request) {
		kind := r.PathValue("kind")
		var one wnv.PolicyConfig
		if !decodeElement(w, r, kind, &one) {
			return
		}
		err := d.policy.Apply(func(b *wnv.Builder) error { return one.Apply(b) })
		if err != nil {
			fail(w, &relabeled{msg: fmt.Sprintf("%s add: %s", kind, elementPrefix.ReplaceAllString(err.Error(), "")), err: err})
			return
		}
		d.log.Info().Str("kind", kind).Uint64("policy_version", d.policy.Version()).Msg("policy: added")
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("DELETE "+pre+"/{kind}", func(w http.ResponseWriter, r *http.Request) {
		kind := r.PathValue("kind")
		var one wnv.PolicyConfig
		if !decodeElement(w, r, kind, &one) {
			return
		}
		if err := d.removePolicy(kind, &one); err != nil {
			fail(w, fmt.Errorf("%s remove: %w", kind, err))
			return
		}
		d.log.Info().Str("kind", kind).Uint64("policy_version", d.policy.Version()).Msg("policy: removed")
		w.WriteHeader(http.StatusNoContent)
	})
}

// decodeElement reads one object of kind into the matching list of pc.
func decodeElement(w http.ResponseWriter, r *http.Request, kind string, pc *wnv.PolicyConfig) bool {
	var target any
	switch kind {
	case "routing-domain":
		pc.RoutingDomains = make([]wnv.RoutingDomainConfig, 1)
		target = &pc.RoutingDomains[0]
	case "virtual-subnet":
		pc.VirtualSubnets = make([]wnv.VirtualSubnetConfig, 1)
		target = &pc.VirtualSubnets[0]
	case "lookup-record":
		pc.LookupRecords = make([]wnv.LookupRecordConfig, 1)
		target = &pc.LookupRecords[0]
	case "customer-route":
		pc.CustomerRoutes = make([]wnv.CustomerRouteConfig, 1)
		target = &pc.CustomerRoutes[0]
	case "provider-address":
		pc.ProviderAddresses = make([]wnv.ProviderAddressConfig, 1)
		target = &pc.ProviderAddresses[0]
	case "provider-route":
		pc.ProviderRoutes = make([]wnv.ProviderRouteConfig, 1)
		target = &pc.ProviderRoutes[0]
	default:
		reply(w, http.StatusNotFound, api.Error{Error: fmt.Sprintf("no policy object kind %q (want routing-domain, virtual-subnet, lookup-record, customer-route, provider-address or provider-route)", kind)})
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(target); err != nil {
		reply(w, http.StatusBadRequest, api.Error{Error: fmt.Sprintf("bad %s: %v", kind, err)})
		return false
	}
	return true
}

func addr(field, s string, optional bool) (netip.Addr, error) {
	if s == "" {
		if optional {
			return netip.Addr{}, nil
		}
		return netip.Addr{}, fmt.Errorf("%s: missing", field)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("%s: %q: not an IP address", field, s)
	}
	return a, nil
}

func prefix(field, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("%s: %q: not a prefix such as 10.0.0.0/24", field, s)
	}
	return p, nil
}

// removePolicy removes the object pc names (one element of one list).
func (d *daemon) removePolicy(kind string, pc *wnv.PolicyConfig) error {
	var op func(b *wnv.Builder) error
	switch kind {
	case "routing-domain":
		id := pc.RoutingDomains[0].ID
		op = func(b *wnv.Builder) error { return b.RemoveRoutingDomain(id) }
	case "virtual-subnet":
		vsid := pc.VirtualSubnets[0].VSID
		op = func(b *wnv.Builder) error { return b.RemoveVirtualSubnet(vsid) }
	case "lookup-record":
		c := pc.LookupRecords[0]
		ca, err := addr("ca", c.CA, true)
		if err != nil {
			return err
		}
		var mac wnv.MAC
		if c.MAC != "" {
			if mac, err = wnv.ParseMAC(c.MAC); err != nil {
				return fmt.Errorf("mac: %w", err)
			}
		}
		op = func(b *wnv.Builder) error { return b.RemoveLookupRecord(c.VSID, ca, mac) }
	case "customer-route":
		c := pc.CustomerRoutes[0]
		dst, err := prefix("destination", c.Destination)
		if err != nil {
			return err
		}
		hop, err := addr("next_hop", c.NextHop, true)
		if err != nil {
			return err
		}
		op = func(b *wnv.Builder) error { return b.RemoveCustomerRoute(c.RoutingDomain, c.VSID, dst, hop) }
	case "provider-address":
		pa, err := addr("pa", pc.ProviderAddresses[0].PA, false)
		if err != nil {
			return err
		}
		op = func(b *wnv.Builder) error { return b.RemoveProviderAddress(pa) }
	case "provider-route":
		c := pc.ProviderRoutes[0]
		dst, err := prefix("destination", c.Destination)
		if err != nil {
			return err
		}
		hop, err := addr("next_hop", c.NextHop, true)
		if err != nil {
			return err
		}
		op = func(b *wnv.Builder) error { return b.RemoveProviderRoute(dst, hop) }
	default:
		return errors.New("unknown kind")
	}
	return d.policy.Apply(op)
}

// relabeled rewords an error and keeps what it wraps, so the API's status
// still follows wnv's sentinel errors.
type relabeled struct {
	msg string
	err error
}

func (e *relabeled) Error() string { return e.msg }
func (e *relabeled) Unwrap() error { return e.err }
