package vhostuser

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xvswitch/xvs/internal/sysio"
)

// This file holds the package's own system calls, those of the
// front-end's unix socket: messages with descriptors in SCM_RIGHTS, and
// the socket file. It also maps guest memory, and closes descriptors,
// through internal/sysio, which holds the eventfd and epoll calls of the
// rest of the package too.

// conn is one front-end connection. It is used by one goroutine (the
// port's protocol goroutine), except Close, which may come from any.
type conn struct {
	c   *net.UnixConn
	hdr [hdrSize]byte
	buf [maxPayload]byte
	oob []byte
	out []byte
}

func newConn(c *net.UnixConn) *conn {
	// Room for more descriptors than a message may carry, so that a
	// front-end sending too many is told so rather than having them
	// silently truncated.
	return &conn{c: c, oob: make([]byte, unix.CmsgSpace(4*(maxFDs+8))), out: make([]byte, 0, hdrSize+maxPayload)}
}

// errPeerGone is wrapped by read when the front-end closed the connection
// between messages: the ordinary end of a session, not a protocol error.
var errPeerGone = errors.New("front-end closed the connection")

// read reads one message: the header with recvmsg, which also collects the
// descriptors the front-end attached to it, then the payload. The payload
// aliases the conn's buffer until the next read; the caller owns the
// descriptors. On error every descriptor received is closed.
func (c *conn) read() (m message, err error) {
	n, oobn, flags, _, err := c.c.ReadMsgUnix(c.hdr[:], c.oob)
	var fds []int
	if oobn > 0 {
		var perr error
		fds, perr = parseRights(c.oob[:oobn])
		if err == nil {
			err = perr
		}
	}
	defer func() {
		if err != nil {
			closeFDs(fds)
		}
	}()
	switch {
	case err != nil && n == 0 && (errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET)):
		return message{}, errPeerGone
	case err != nil:
		return message{}, fmt.Errorf("vhost-user: read: %w", err)
	case n == 0:
		return message{}, errPeerGone
	case flags&unix.MSG_CTRUNC != 0:
		return message{}, fmt.Errorf("vhost-user: %w: descriptors truncated (more than %d)", ErrMalformed, maxFDs+8)
	}
	if n < hdrSize {
		if _, err := io.ReadFull(c.c, c.hdr[n:]); err != nil {
			return message{}, fmt.Errorf("vhost-user: %w: short header (%d bytes): %w", ErrMalformed, n, err)
		}
	}
	h := header(c.hdr[:])
	if err := h.check(); err != nil {
		return message{}, err
	}
	size := int(h.size())
	if _, err := io.ReadFull(c.c, c.buf[:size]); err != nil {
		return message{}, fmt.Errorf("vhost-user: %w: %v: short payload (want %d bytes): %w", ErrMalformed, h.request(), size, err)
	}
	if len(fds) > maxFDs {
		return message{}, fmt.Errorf("vhost-user: %w: %v: %d descriptors, at most %d", ErrMalformed, h.request(), len(fds), maxFDs)
	}
	return message{Req: h.request(), Flags: h.flags(), Payload: c.buf[:size:size], FDs: fds}, nil
}

// parseRights returns the descriptors of every SCM_RIGHTS message in oob.
// Descriptors are returned even with an error, for the caller to close.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("vhost-user: %w: control message: %w", ErrMalformed, err)
	}
	var fds []int
	for i := range msgs {
		if msgs[i].Header.Level != unix.SOL_SOCKET || msgs[i].Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return fds, fmt.Errorf("vhost-user: %w: SCM_RIGHTS: %w", ErrMalformed, err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// write sends a reply. The reply flag and version are set here.
func (c *conn) write(req Request, payload []byte) error {
	c.out = appendMessage(c.out[:0], message{Req: req, Flags: flagReply, Payload: payload})
	if _, err := c.c.Write(c.out); err != nil {
		return fmt.Errorf("vhost-user: reply to %v: %w", req, err)
	}
	return nil
}

// Close closes the connection; a read in progress returns.
func (c *conn) Close() error { return c.c.Close() }

// closeFDs closes descriptors received from the front-end that are not
// kept.
func closeFDs(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			sysio.Close(fd)
		}
	}
}

// closeFD closes fd if it is one (>= 0).
func closeFD(fd int) {
	if fd >= 0 {
		sysio.Close(fd)
	}
}

// fileID identifies a file by its device and inode: a socket file
// removed and created again, by us or anyone, has another.
type fileID struct{ dev, ino uint64 }

// lstatID returns the identity of the file at path (not following a
// symbolic link).
func lstatID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fileID{}, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, nil
}

// listen creates the socket at path for front-ends to connect to, with
// the given mode, and returns the identity of the socket file. A stale
// socket (one nobody listens on: xvs or a VM went away without removing
// it) is removed first; a live one, or a path that is not a socket, is an
// error rather than something to delete. Closing the listener leaves the
// file: remove it with removeSocket, which checks it is still the one
// created here.
//
// The file never appears at path with another mode. bind creates it with
// 0777 less the umask, which is the whole process's and so cannot be
// changed for one bind; chmod after bind would leave a window in which a
// front-end (or a user the mode keeps out) finds the socket with the
// umask's mode. So the socket is bound to a temporary name beside path,
// given its mode there, and renamed into place; the rename keeps the
// inode, so the identity is the temporary file's. The rename does not
// replace a file that appeared at path meanwhile: that is an error, and
// the port's next check deals with the file as with any other.
func listen(path string, mode os.FileMode) (*net.UnixListener, fileID, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fileID{}, fmt.Errorf("vhost-user: socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, 100*time.Millisecond); err == nil {
			c.Close()
			return nil, fileID{}, fmt.Errorf("vhost-user: socket %s: in use: another process listens on it", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fileID{}, fmt.Errorf("vhost-user: remove stale socket %s: %w", path, err)
		}
	}
	l, tmp, err := listenTemp(path)
	if err != nil {
		return nil, fileID{}, fmt.Errorf("vhost-user: listen on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	id, err := lstatID(tmp)
	if err == nil {
		err = os.Chmod(tmp, mode)
	}
	if err == nil {
		err = renameNoReplace(tmp, path)
	}
	if err != nil {
		l.Close()
		removeSocket(tmp, id)
		removeSocket(path, id)
		return nil, fileID{}, fmt.Errorf("vhost-user: socket %s: %w", path, err)
	}
	return l, id, nil
}

// listenTemp listens on a unix socket at a new temporary name in path's
// directory, and returns it and the name. The name is no longer than
// path's own can be (sun_path's limit; see tempName).
//
// The socket's inode is given mode 0 before bind: on Linux bind gives
// the file that mode less the umask, so that until listen sets its mode
// nobody but a privileged process can connect through the temporary name
// either.
func listenTemp(path string) (*net.UnixListener, string, error) {
	dir, _ := filepath.Split(path) // with its trailing slash; "" for the working directory
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) { err = unix.Fchmod(int(fd), 0) }); cerr != nil {
			return cerr
		}
		if err != nil {
			return os.NewSyscallError("fchmod", err)
		}
		return nil
	}}
	var err error
	for range 8 {
		tmp := dir + tempName(maxSocketLen-len(dir))
		if tmp == path {
			err = unix.EEXIST
			continue
		}
		var l net.Listener
		if l, err = lc.Listen(context.Background(), "unix", tmp); err == nil {
			return l.(*net.UnixListener), tmp, nil
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			break
		}
	}
	return nil, "", err
}

// tempName returns a random file name of n bytes, at most 16: ".xvs-"
// then random letters and digits from 12 bytes (7 of them random), so
// that a name left by a crash says whose it is; shorter names are random
// after a leading dot, and one byte is just random.
func tempName(n int) string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	n = max(1, min(n, 16))
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[rand.IntN(len(chars))]
	}
	switch {
	case n >= 12:
		copy(b, ".xvs-")
	case n >= 2:
		b[0] = '.'
	}
	return string(b)
}

// renameNoReplace renames oldpath to newpath, failing (with an error
// matching os.ErrExist) if newpath exists. Where the kernel or the
// filesystem lacks RENAME_NOREPLACE, a hard link and an unlink do the
// same: link does not replace either, and keeps the inode.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		err = linkUnlink(oldpath, newpath)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// linkUnlink is renameNoReplace by link and unlink.
func linkUnlink(oldpath, newpath string) error {
	if err := unix.Link(oldpath, newpath); err != nil {
		return err
	}
	return unix.Unlink(oldpath)
}

// removeSocket removes the socket file at path if it is still id, the
// one listen created: a file someone else put there since is left alone.
func removeSocket(path string, id fileID) {
	if got, err := lstatID(path); err == nil && got == id && id != (fileID{}) {
		os.Remove(path)
	}
}

// dial connects to a front-end's socket.
func dial(path string) (*net.UnixConn, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("vhost-user: connect to %s: %w", path, err)
	}
	return c, nil
}

// peerUID is the uid of the process at the other end of c, from
// SO_PEERCRED (the credentials it had when it listened or connected).
func peerUID(c *net.UnixConn) (uint32, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, fmt.Errorf("vhost-user: SO_PEERCRED: %w", cerr)
	}
	return cred.Uid, nil
}

// mapRegion maps a guest memory region: r.Size bytes at r.MmapOffset of
// fd, shared and writable. It returns the whole mapping (for unmap) and the
// region's bytes within it. The mapping starts and ends on the file's
// block size (the huge page size on hugetlbfs, whose mappings must be
// aligned to it), and the file must hold the whole region: touching a
// mapped page past the end of a file raises SIGBUS, which would kill the
// switch.
func mapRegion(fd int, r memRegion) (whole, mem []byte, err error) {
	st, err := sysio.Stat(fd)
	if err != nil {
		return nil, nil, err
	}
	if !st.Regular() {
		return nil, nil, fmt.Errorf("%w: fd is not a regular file (mode %#o)", ErrMalformed, st.Mode)
	}
	end := r.MmapOffset + r.Size // cannot wrap: decodeMemTable checked
	if st.Size < 0 || uint64(st.Size) < end {
		return nil, nil, fmt.Errorf("%w: region ends at offset %#x of a %d-byte file", ErrMalformed, end, st.Size)
	}
	align := uint64(os.Getpagesize())
	if bs := uint64(st.BlockSize); bs > align && bs&(bs-1) == 0 {
		align = bs
	}
	start := r.MmapOffset &^ (align - 1)
	length := (end - start + align - 1) &^ (align - 1)
	if length > 1<<47 || start > 1<<62 {
		return nil, nil, fmt.Errorf("%w: region of %#x bytes at offset %#x is too large", ErrMalformed, r.Size, r.MmapOffset)
	}
	whole, err = sysio.Map(fd, int64(start), int(length))
	if err != nil {
		return nil, nil, err
	}
	off := r.MmapOffset - start
	return whole, whole[off : off+r.Size : off+r.Size], nil
}

// unmap releases a mapping made by mapRegion.
func unmap(whole []byte) error {
	if err := sysio.Unmap(whole); err != nil {
		return fmt.Errorf("vhost-user: %w", err)
	}
	return nil
}
