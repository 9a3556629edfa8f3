// Package afxdp is a port on an AF_XDP socket.
package afxdp
