package sdk

import (
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/extensions/api/pb"
	"github.com/xvswitch/xvs/extensions/internal/shm"
)

// TestPlugin builds a real extension (testdata/testfilter), starts it the
// way the switch does — go-plugin client, the memfd and the eventfd as
// descriptors 3 and 4 — and takes it through Info, Start, a frame each
// way through shared memory, Stats and Stop.
func TestPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary: skipped with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not found: cannot build the test extension")
	}
	bin := filepath.Join(t.TempDir(), "testfilter")
	build := exec.Command(goTool, "build", "-o", bin, "./testdata/testfilter")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build test extension: %v\n%s", err, out)
	}

	region, err := shm.Create("plugin-test", 2, 64, 2048)
	if err != nil {
		t.Fatal(err)
	}
	defer region.Close()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	bell := os.NewFile(uintptr(efd), "doorbell") // owns efd
	defer bell.Close()

	logs := &syncBuffer{}
	cmd := exec.Command(bin)
	cmd.ExtraFiles = []*os.File{region.File(), bell} // become api.ShmFD and api.DoorbellFD
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  api.Handshake,
		Plugins:          api.Plugins(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "switch", Output: logs, Level: hclog.Debug}),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("start extension: %v", err)
	}
	raw, err := rpc.Dispense(api.PluginName)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	ext, ok := raw.(pb.ExtensionClient)
	if !ok {
		t.Fatalf("dispensed %T, want pb.ExtensionClient", raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	info, err := ext.Info(ctx, &pb.InfoRequest{ApiVersion: api.ProtocolVersion})
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Name != "testfilter" || api.Kind(info.Kind) != api.KindFilter || info.ApiVersion != api.ProtocolVersion {
		t.Errorf("Info = %v", info)
	}

	hello := mkFrame(0x42, 60)
	if _, err := ext.Start(ctx, &pb.StartRequest{
		Instance:   "tf",
		Config:     map[string]string{"hello": hex.EncodeToString(hello)},
		ShmFd:      api.ShmFD,
		DoorbellFd: api.DoorbellFD,
		Ports:      []*pb.Port{{Index: 7, Name: "vm7", Vsid: 5001}},
	}); err != nil {
		t.Fatalf("Start: %v", err)
	}

	// The frame the extension injected from its Start.
	h := &harness{t: t, region: region, efd: efd}
	d, b := h.recv(0)
	if d.Type != api.TypeInject || d.InPort != 7 || d.VSID != 5001 || string(b) != string(hello) {
		t.Errorf("injected %+v % x, want the hello frame in on port 7", d, b)
	}

	// A request on each channel and its verdict, through shared memory.
	for ci, tc := range []struct {
		tag     byte
		verdict uint8
		flags   uint8
	}{{0xdd, api.VerdictDrop, 0}, {0x01, api.VerdictPass, api.FlagNoCache}} {
		h.send(ci, api.Desc{Cookie: uint64(0xc0de + ci), Type: api.TypeRequest, VSID: 5001, InPort: 7, OutPort: api.NoPort}, mkFrame(tc.tag, 80))
		d, _ := h.recv(ci)
		if d.Type != api.TypeVerdict || d.Cookie != uint64(0xc0de+ci) || d.Verdict != tc.verdict || d.Flags != tc.flags {
			t.Errorf("channel %d: verdict %+v, want cookie %#x verdict %d flags %#x", ci, d, 0xc0de+ci, tc.verdict, tc.flags)
		}
	}

	st, err := ext.Stats(ctx, &pb.Empty{})
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.Counters["filtered"] != 2 || st.Counters["sdk_verdicts"] != 2 || st.Counters["sdk_injects"] != 1 {
		t.Errorf("Stats = %v", st.Counters)
	}
	if _, err := ext.Stop(ctx, &pb.Empty{}); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	client.Kill()
	if !client.Exited() {
		t.Errorf("the extension still runs after Kill")
	}
	// Its log reached the switch's logger, level and fields.
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "[INFO]  switch.testfilter: test filter started:") && strings.Contains(line, "instance=tf") {
			found = true
		}
	}
	if !found {
		t.Errorf("the extension's log line did not reach the switch's log at level info:\n%s", logs.String())
	}
}
