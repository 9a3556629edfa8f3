package sysio

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MemFD makes an anonymous memory file of size bytes (memfd_create(2),
// closed on exec) for sharing with another process, which maps it from a
// descriptor it inherited. name is shown in /proc/PID/fd and maps
// ("memfd:name"); it need not be unique.
//
// With seal the file's size is sealed once set (F_SEAL_SHRINK,
// F_SEAL_GROW, then F_SEAL_SEAL so no one can lift them): a process it is
// shared with cannot truncate it, which would make every access of ours
// to a mapped page beyond the new end raise SIGBUS. Its contents stay
// writable by everyone who maps it.
func MemFD(name string, size int, seal bool) (*os.File, error) {
	flags := unix.MFD_CLOEXEC
	if seal {
		flags |= unix.MFD_ALLOW_SEALING
	}
	fd, err := unix.MemfdCreate(name, flags)
	if err != nil {
		return nil, fmt.Errorf("memfd_create %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("size memfd %s to %d bytes: %w", name, size, err)
	}
	if seal {
		const seals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			f.Close()
			return nil, fmt.Errorf("seal the size of memfd %s: %w", name, err)
		}
	}
	return f, nil
}

// Map maps length bytes of the file fd from offset, shared and readable
// and writable (mmap(2) with MAP_SHARED): stores are seen by every process
// that maps the same file. offset must be a multiple of the page size (of
// the huge page size on hugetlbfs). The caller must not touch the
// mapping beyond the end of the file (SIGBUS), nor after [Unmap].
func Map(fd int, offset int64, length int) ([]byte, error) {
	b, err := unix.Mmap(fd, offset, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %#x bytes at offset %#x of fd %d: %w", length, offset, fd, err)
	}
	return b, nil
}

// Unmap releases a mapping made by [Map]; b must be the whole slice Map
// returned. Nothing may use the mapping afterwards.
func Unmap(b []byte) error {
	if err := unix.Munmap(b); err != nil {
		return fmt.Errorf("munmap %#x bytes: %w", len(b), err)
	}
	return nil
}

// FileStat is what mapping a file needs to know of it.
type FileStat struct {
	Size      int64  // bytes
	BlockSize int64  // the preferred I/O size: on hugetlbfs, the huge page size
	Mode      uint32 // st_mode: the file's type and permission bits
}

// Regular reports whether the file is a regular file (memfd, hugetlbfs
// and tmpfs files are).
func (s FileStat) Regular() bool { return s.Mode&unix.S_IFMT == unix.S_IFREG }

// Stat describes the file open as fd (fstat(2)).
func Stat(fd int) (FileStat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return FileStat{}, newFDError("fstat fd", fd, err)
	}
	return FileStat{Size: st.Size, BlockSize: int64(st.Blksize), Mode: st.Mode}, nil
}
