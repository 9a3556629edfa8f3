// Command xdp-redirect is the in-kernel ceiling of bench/ports.sh: an XDP
// program on one device that XDP_REDIRECTs every frame to another device,
// with no userspace on the path. It runs until SIGINT or SIGTERM and
// detaches on exit (the attachment is a BPF link, so also if killed).
//
//	xdp-redirect --from DEV --to DEV
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
	// return bpf_redirect(dst.Index, 0)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "xvs_redirect",
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, int32(dst.Index)),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirect.Call(),
			asm.Return(),
		},
	})
	if err != nil {
		return fmt.Errorf("load program: %w", err)
	}
	defer prog.Close()
	flags := link.XDPDriverMode
	if *generic {
		flags = link.XDPGenericMode
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: src.Index, Flags: flags})
	if err != nil {
		return fmt.Errorf("attach to %s: %w", *from, err)
	}
	defer l.Close()
	fmt.Printf("redirecting %s -> %s\n", *from, *to)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}
