// Package uploads is the uploads folder: one file per image, named by its
// id, written after the database commit as a fast copy of the BLOB. The
// database is the record and the commit is what makes an upload durable;
// the folder is a cache that the blob service checks and repairs from the
// database copy. Writes are atomic (temp file, rename), so a reader never
// sees half a file under an id's name, and not synced to disk: after a
// crash a file may be missing or damaged, and is repaired when it is read
// or reconciled.
package uploads

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/extagram/extagram/internal/contract"
)

// TempPrefix starts the names of files being written; anything with it
// left behind by a crash is garbage.
const TempPrefix = ".tmp-"

// Dir is an uploads folder.
type Dir struct {
	path string
}

// Open returns the uploads folder at path, creating it (0750) if needed.
func Open(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("uploads: no folder given")
	}
	if err := os.MkdirAll(path, 0o750); err != nil {
		return nil, fmt.Errorf("uploads: create %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("uploads: %w", err)
	}
	return &Dir{path: abs}, nil
}

// Path is the folder's absolute path.
func (d *Dir) Path() string { return d.path }

// file is the path of an image's file. Only a parsed contract.ID gets here,
// so nothing a client sends becomes part of a path.
func (d *Dir) file(id contract.ID) string { return filepath.Join(d.path, id.String()) }

// Read returns the bytes of an image's file; errors.Is(err, fs.ErrNotExist)
// when there is none.
func (d *Dir) Read(id contract.ID) ([]byte, error) {
	b, err := os.ReadFile(d.file(id))
	if err != nil {
		return nil, fmt.Errorf("uploads: read %s: %w", id, err)
	}
	return b, nil
}

// Write stores data as the image's file atomically. It does not wait for
// the disk (no fsync): the file is a copy that the blob service verifies
// and repairs, and the upload is already durable in the database.
func (d *Dir) Write(id contract.ID, data []byte) (err error) {
	f, err := os.CreateTemp(d.path, TempPrefix+id.String()+"-*")
	if err != nil {
		return fmt.Errorf("uploads: write %s: %w", id, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("uploads: write %s: %w", id, err)
	}
	if err = f.Chmod(0o640); err != nil {
		return fmt.Errorf("uploads: write %s: %w", id, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("uploads: close %s: %w", id, err)
	}
	if err = os.Rename(tmp, d.file(id)); err != nil {
		return fmt.Errorf("uploads: rename %s: %w", id, err)
	}
	return nil
}

// Identity tells one version of a file from another without reading it:
// a file rewritten or replaced gets another inode, size or modification
// time. A verified file whose identity has not changed need not be
// verified again.
type Identity struct {
	Size    int64
	ModTime int64 // nanoseconds
	Inode   uint64
	Device  uint64
}

// IdentityOf returns the identity of a file from its FileInfo.
func IdentityOf(fi fs.FileInfo) Identity {
	id := Identity{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.Inode, id.Device = uint64(st.Ino), uint64(st.Dev)
	}
	return id
}

// Open opens an image's file for reading and returns its identity;
// errors.Is(err, fs.ErrNotExist) when there is none.
func (d *Dir) Open(id contract.ID) (*os.File, Identity, error) {
	f, err := os.Open(d.file(id))
	if err != nil {
		return nil, Identity{}, fmt.Errorf("uploads: open %s: %w", id, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Identity{}, fmt.Errorf("uploads: stat %s: %w", id, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, Identity{}, fmt.Errorf("uploads: %s is not a regular file", id)
	}
	return f, IdentityOf(fi), nil
}

// Remove deletes an image's file; a missing file is not an error.
func (d *Dir) Remove(id contract.ID) error {
	if err := os.Remove(d.file(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("uploads: remove %s: %w", id, err)
	}
	return nil
}

// Stat returns the file info of an image's file.
func (d *Dir) Stat(id contract.ID) (fs.FileInfo, error) {
	return os.Stat(d.file(id))
}

// IsTemp reports whether a folder entry name is a temp file.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// Check reports whether the folder can still be read: it exists and is a
// folder. It does not list it, so it stays cheap however many files the
// folder holds.
func (d *Dir) Check() error {
	fi, err := os.Stat(d.path)
	if err != nil {
		return fmt.Errorf("uploads: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("uploads: %s is not a folder", d.path)
	}
	return nil
}
