// Command garbage is a test extension that claims to be a filter and
// answers every request with random descriptors: wrong cookies, slots,
// offsets, lengths, types and verdicts, and sometimes a right cookie with
// a wrong slot. The switch must count them and carry on.
package main

import (
	"context"
	"math/rand/v2"
	"os"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/xvswitch/xvs/extensions/api"
	"github.com/xvswitch/xvs/extensions/api/pb"
	"github.com/xvswitch/xvs/extensions/internal/shm"
)

type server struct {
	pb.UnimplementedExtensionServer
}

func (server) Info(context.Context, *pb.InfoRequest) (*pb.InfoReply, error) {
	return &pb.InfoReply{ApiVersion: api.ProtocolVersion, Name: "garbage", Kind: uint32(api.KindFilter)}, nil
}

func (server) Start(_ context.Context, req *pb.StartRequest) (*pb.StartReply, error) {
	r, err := shm.Open(os.NewFile(uintptr(req.ShmFd), "shm"))
	if err != nil {
		return nil, err
	}
	go serve(r)
	return &pb.StartReply{}, nil
}

func (server) SetPorts(context.Context, *pb.PortsRequest) (*pb.Empty, error) { return &pb.Empty{}, nil }
func (server) Stats(context.Context, *pb.Empty) (*pb.StatsReply, error)      { return &pb.StatsReply{}, nil }
func (server) Stop(context.Context, *pb.Empty) (*pb.Empty, error)            { return &pb.Empty{}, nil }

func serve(r *shm.Region) {
	for c := range r.Channels() {
		ch := r.Channel(c)
		ch.Down.AttachConsumer()
		ch.Up.AttachProducer()
	}
	var d api.Desc
	for {
		idle := true
		for c := range r.Channels() {
			ch := r.Channel(c)
			for ch.Down.Next(&d) {
				idle = false
				for range 1 + rand.IntN(3) {
					u, slot, ok := ch.Up.Reserve()
					if !ok {
						break
					}
					for i := range slot[:min(len(slot), 64)] {
						slot[i] = byte(rand.Uint32())
					}
					*u = api.Desc{
						Cookie: rand.Uint64(), Slot: rand.Uint32(), Offset: rand.Uint32(), Len: rand.Uint32(),
						Type: uint8(rand.IntN(6)), Verdict: uint8(rand.IntN(6)), Flags: uint8(rand.Uint32()),
						NPorts: uint8(rand.Uint32()), InPort: uint16(rand.Uint32()), OutPort: uint16(rand.Uint32()),
						Dir: uint8(rand.IntN(3)),
					}
					for i := range u.Ports {
						u.Ports[i] = uint16(rand.Uint32())
					}
					switch rand.IntN(4) {
					case 0: // the right cookie, a bad slot
						u.Cookie, u.Type, u.Verdict = d.Cookie, api.TypeVerdict, api.VerdictModified
					case 1: // the right cookie, a forward verdict from a filter
						u.Cookie, u.Type, u.Verdict = d.Cookie, api.TypeVerdict, api.VerdictForward
					}
				}
			}
			ch.Down.Release()
			ch.Up.Publish()
		}
		if idle {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: api.Handshake,
		Plugins:         api.Plugins(server{}),
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
