# xvs - see README.md. Targets:
#   build  compile xvsd, xvsctl, tools and the example extensions into bin/
#   test   unit and integration tests (integration tests need root and skip otherwise)
#   bench  forwarding and ring benchmarks with allocation counts
#   lint   gofmt, go vet, staticcheck
#   run    build and start xvsd in the foreground with configs/xvsd.yaml
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(HOME)/go/bin/staticcheck)

.PHONY: build test bench lint run fuzz fuzz-long clean

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/... ./bench/cmd/... ./extensions/examples/...

test:
	$(GO) test -count=1 ./...
	XVS_PKTGEN_REFUSE_LIVE=1 $(GO) test -count=1 ./cmd/xvs-pktgen/   # as on a kernel that refuses XDP live frames
	$(GO) test -race -count=1 -short ./ring/... ./header/... ./internal/... ./vswitch/... ./wnv/... ./extensions/... ./ports/porttest/... ./ports/vhostuser/... ./cmd/xvsd/... ./cmd/xvsctl/...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./bench/ ./ring/ ./ports/vhostuser/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

run: build
	$(BIN)/xvsd --config configs/xvsd.yaml

# Short runs of every fuzz target (go test -fuzz takes one target at a time).
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzAPIRequest$$' -fuzztime $(FUZZTIME) ./cmd/xvsd/
	$(GO) test -run '^$$' -fuzz '^FuzzPipeline$$' -fuzztime $(FUZZTIME) ./vswitch/
	$(GO) test -run '^$$' -fuzz '^FuzzPipelineWNV$$' -fuzztime $(FUZZTIME) ./vswitch/
	$(GO) test -run '^$$' -fuzz '^FuzzVnetApply$$' -fuzztime $(FUZZTIME) ./ports/tap/
	$(GO) test -run '^$$' -fuzz '^FuzzFrame$$' -fuzztime $(FUZZTIME) ./cmd/xvs-pktgen/internal/frame/
	$(GO) test -run '^$$' -fuzz '^FuzzFrame$$' -fuzztime $(FUZZTIME) ./header/
	$(GO) test -run '^$$' -fuzz '^FuzzIPv4Rewrite$$' -fuzztime $(FUZZTIME) ./header/
	$(GO) test -run '^$$' -fuzz '^FuzzNVGRE$$' -fuzztime $(FUZZTIME) ./header/
	$(GO) test -run '^$$' -fuzz '^FuzzFiveTuple$$' -fuzztime $(FUZZTIME) ./header/
	$(GO) test -run '^$$' -fuzz '^FuzzIPv6Transport$$' -fuzztime $(FUZZTIME) ./header/
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME) ./wnv/
	$(GO) test -run '^$$' -fuzz '^FuzzLoadConfig$$' -fuzztime $(FUZZTIME) ./wnv/
	$(GO) test -run '^$$' -fuzz '^FuzzMakeFlowKey$$' -fuzztime $(FUZZTIME) ./extensions/
	$(GO) test -run '^$$' -fuzz '^FuzzRunScan$$' -fuzztime $(FUZZTIME) ./extensions/
	$(GO) test -run '^$$' -fuzz '^FuzzRingFromPeer$$' -fuzztime $(FUZZTIME) ./extensions/internal/shm/
	$(GO) test -run '^$$' -fuzz '^FuzzParseFrame$$' -fuzztime $(FUZZTIME) ./extensions/examples/aclfilter/
	$(GO) test -run '^$$' -fuzz '^FuzzMessage$$' -fuzztime $(FUZZTIME) ./ports/vhostuser/
	$(GO) test -run '^$$' -fuzz '^FuzzDevice$$' -fuzztime $(FUZZTIME) ./ports/vhostuser/
	$(GO) test -run '^$$' -fuzz '^FuzzDescriptorChain$$' -fuzztime $(FUZZTIME) ./ports/vhostuser/
	$(GO) test -run '^$$' -fuzz '^FuzzMemory$$' -fuzztime $(FUZZTIME) ./ports/vhostuser/

# Every target of make fuzz for FUZZTIME each; 10m unless FUZZTIME is given.
fuzz-long:
	$(MAKE) fuzz FUZZTIME=$(if $(filter command line environment,$(origin FUZZTIME)),$(FUZZTIME),10m)

clean:
	rm -rf $(BIN)

# The four-namespace demo of the README; idempotent.
demo: build
	BIN=$(BIN) scripts/demo.sh up

demo-clean:
	BIN=$(BIN) scripts/demo.sh clean

.PHONY: demo demo-clean

# Port forwarding benchmark on veths: XDP_REDIRECT ceiling, Linux bridge, xvs.
bench-ports: build
	BIN=$(BIN) bench/ports.sh

.PHONY: bench-ports

# Two hosts, two tenants, overlapping addresses (REWRITE=1 for IP rewrite).
demo-wnv: build
	BIN=$(BIN) REWRITE=$(REWRITE) scripts/demo-wnv.sh up

demo-wnv-clean:
	BIN=$(BIN) scripts/demo-wnv.sh clean

.PHONY: demo-wnv demo-wnv-clean

# iperf3 across two hosts: VSID 0 pass-through, NVGRE, IP rewrite.
bench-wnv: build
	BIN=$(BIN) bench/wnv.sh

.PHONY: bench-wnv

# Extension overhead: none / pcapcapture / aclfilter (cached), interleaved rounds.
bench-extensions:
	bench/extensions.sh

.PHONY: bench-extensions

# vhost-user against TAP ports and a direct DPDK pair, 64B, dpdk-testpmd.
bench-vhostuser: build
	BIN=$(BIN) bench/vhostuser.sh

.PHONY: bench-vhostuser
