// Command xdp-redirect is the in-kernel ceiling of bench/ports.sh: an XDP
// program on one device that XDP_REDIRECTs every frame to another device,
// with no userspace on the path. It runs until SIGINT or SIGTERM and
// detaches on exit (the attachment is a BPF link, so also if killed).
// With --both it also redirects what arrives on the second device to the
// first, for traffic both ways (bench/ports.sh's closed loop, TCP).
//
//	xdp-redirect --from DEV --to DEV [--both]
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "xdp-redirect: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	from := flag.String("from", "", "device whose received frames are redirected")
	to := flag.String("to", "", "device the frames are sent out of")
	generic := flag.Bool("generic", false, "attach in generic (skb) mode instead of native")
	both := flag.Bool("both", false, "also redirect frames arriving on --to to --from")
	flag.Parse()
	if *from == "" || *to == "" {
		return errors.New("--from and --to are required")
	}
	src, err := net.InterfaceByName(*from)
	if err != nil {
		return fmt.Errorf("--from %s: %w", *from, err)
	}
	dst, err := net.InterfaceByName(*to)
	if err != nil {
		return fmt.Errorf("--to %s: %w", *to, err)
	}
	flags := link.XDPDriverMode
	if *generic {
		flags = link.XDPGenericMode
	}
	paths := [][2]*net.Interface{{src, dst}}
	if *both {
		paths = append(paths, [2]*net.Interface{dst, src})
	}
	for _, p := range paths {
		// return bpf_redirect(to, 0)
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name:    "xvs_redirect",
			Type:    ebpf.XDP,
			License: "GPL",
			Instructions: asm.Instructions{
				asm.Mov.Imm(asm.R1, int32(p[1].Index)),
				asm.Mov.Imm(asm.R2, 0),
				asm.FnRedirect.Call(),
				asm.Return(),
			},
		})
		if err != nil {
			return fmt.Errorf("load program: %w", err)
		}
		defer prog.Close()
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: p[0].Index, Flags: flags})
		if err != nil {
			return fmt.Errorf("attach to %s: %w", p[0].Name, err)
		}
		defer l.Close()
		fmt.Printf("redirecting %s -> %s\n", p[0].Name, p[1].Name)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}
