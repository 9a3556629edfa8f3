// Command rogue is a test extension that breaks the protocol in the way
// its first argument names, to play the attacker against the switch:
//
//	move-consumer-index   a filter that moves its down ring's consumer
//	                      index past the switch's producer index
//	move-producer-index   a filter that moves its up ring's producer
//	                      index far ahead of what it wrote
//	saturate-doorbell     a filter that clears O_NONBLOCK on its doorbell,
//	                      fills it (through the descriptor and through a
//	                      reopened /proc/self/fd one), says it sleeps and
//	                      never reads a frame
//	inject-out-of-scope   a filter that passes each frame and injects a
//	                      copy on the port named by its second argument
//	forward-out-of-vsid   a forwarding extension that sends each frame to
//	                      the port named by its second argument
//
// The switch must stay up, keep forwarding elsewhere, and count, fail and
// restart it as the mode calls for.
package main

import (
	"context"
	"encoding/binary"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/extensions/api/pb"
	"github.com/xvswitch/xvs/extensions/internal/shm"
	"github.com/xvswitch/xvs/internal/sysio"
)

var mode, target = arg(1), arg(2)

func arg(i int) string {
	if len(os.Args) > i {
		return os.Args[i]
	}
	return ""
}

type server struct {
	pb.UnimplementedExtensionServer
}

func (server) Info(context.Context, *pb.InfoRequest) (*pb.InfoReply, error) {
	k := api.KindFilter
	if mode == "forward-out-of-vsid" {
		k = api.KindForward
	}
	return &pb.InfoReply{ApiVersion: api.ProtocolVersion, Name: "rogue", Kind: uint32(k)}, nil
}

func (server) Start(_ context.Context, req *pb.StartRequest) (*pb.StartReply, error) {
	f := os.NewFile(uintptr(req.ShmFd), "shm")
	r, err := shm.Open(f)
	if err != nil {
		return nil, err
	}
	port := uint16(api.NoPort)
	for _, p := range req.Ports {
		if p.Name == target {
			port = uint16(p.Index)
		}
	}
	st, err := sysio.Stat(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	mem, err := sysio.Map(int(f.Fd()), 0, int(st.Size))
	if err != nil {
		return nil, err
	}
	go serve(r, mem, int(req.DoorbellFd), port)
	return &pb.StartReply{}, nil
}

func (server) SetPorts(context.Context, *pb.PortsRequest) (*pb.Empty, error) { return &pb.Empty{}, nil }
func (server) Stats(context.Context, *pb.Empty) (*pb.StatsReply, error)      { return &pb.StatsReply{}, nil }
func (server) Stop(context.Context, *pb.Empty) (*pb.Empty, error)            { return &pb.Empty{}, nil }

// index is a shared ring index of channel c at offset off of its control
// block, written behind the Ring type's back.
func index(r *shm.Region, mem []byte, c, off int) *uint32 {
	base := api.HeaderSize + c*api.ChannelSize(r.RingSize(), r.SlotSize())
	return (*uint32)(unsafe.Pointer(&mem[base+off]))
}

func serve(r *shm.Region, mem []byte, bell int, port uint16) {
	for c := range r.Channels() {
		ch := r.Channel(c)
		ch.Down.AttachConsumer()
		ch.Up.AttachProducer()
	}
	if mode == "saturate-doorbell" {
		saturate(bell)
		r.SetSleeping(true)
		select {} // never reads a frame
	}
	var d api.Desc
	for {
		idle := true
		for c := range r.Channels() {
			ch := r.Channel(c)
			for ch.Down.Next(&d) {
				idle = false
				switch mode {
				case "move-consumer-index":
					// past everything the switch published
					atomic.StoreUint32(index(r, mem, c, api.OffDownConsumer), atomic.LoadUint32(index(r, mem, c, api.OffDownProducer))+1000)
					continue
				case "move-producer-index":
					atomic.StoreUint32(index(r, mem, c, api.OffUpProducer), atomic.LoadUint32(index(r, mem, c, api.OffUpConsumer))+1<<30)
					continue
				}
				u, _, ok := ch.Up.Reserve()
				if !ok {
					continue
				}
				*u = api.Desc{Cookie: d.Cookie, Type: api.TypeVerdict, Verdict: api.VerdictPass, Flags: api.FlagNoCache}
				switch mode {
				case "forward-out-of-vsid":
					u.Verdict, u.NPorts = api.VerdictForward, 1
					u.Ports[0] = port
				case "inject-out-of-scope":
					in, slot, ok := ch.Up.Reserve()
					if !ok {
						continue
					}
					b, _ := ch.Down.Slot(&d)
					n := copy(slot, b)
					in.Type, in.Dir, in.InPort, in.OutPort, in.Len = api.TypeInject, uint8(api.Ingress), port, api.NoPort, uint32(n)
				}
			}
			if mode != "move-consumer-index" {
				ch.Down.Release()
			}
			if mode != "move-producer-index" {
				ch.Up.Publish()
			}
		}
		if idle {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// saturate makes a write to the doorbell block for whoever shares its
// file description: it clears O_NONBLOCK and fills it, through the
// descriptor (an eventfd: its counter to the maximum) and through a
// descriptor of its own opened on it (a pipe: until it is full).
func saturate(bell int) {
	if fl, err := unix.FcntlInt(uintptr(bell), unix.F_GETFL, 0); err == nil {
		unix.FcntlInt(uintptr(bell), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	var max [8]byte
	binary.NativeEndian.PutUint64(max[:], 1<<64-2)
	unix.Write(bell, max[:]) // on an eventfd: counter full; elsewhere it fails
	w, err := unix.Open("/proc/self/fd/"+strconv.Itoa(bell), unix.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	junk := make([]byte, 4096)
	for {
		if _, err := unix.Write(w, junk); err != nil {
			break
		}
	}
	// Its own descriptor blocking as well, in case the switch's were it.
	unix.FcntlInt(uintptr(w), unix.F_SETFL, 0)
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: api.Handshake,
		Plugins:         api.Plugins(server{}),
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
