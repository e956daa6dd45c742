package store

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// SaveFile saves the store to path without ever losing the previous image
// there: it writes a temporary file in the same directory, fsyncs it,
// renames it over path and fsyncs the directory. A crash or an error
// before the rename leaves the old file as it was (and at worst a stray
// temporary file named path.tmp-*); after it the new image is durable.
func (s *Store) SaveFile(path string) error { return s.saveFile(path, nil) }

// saveFile is SaveFile; wrap, if not nil, wraps the file's writer (tests
// use it to fail or crash in the middle).
func (s *Store) saveFile(path string, wrap func(io.Writer) io.Writer) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Large writes go straight from the snapshot's memory to the file;
	// the buffer only gathers the small ones.
	bw := bufio.NewWriterSize(f, 256<<10)
	var w io.Writer = bw
	if wrap != nil {
		w = wrap(bw)
	}
	if err = s.Save(w); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// LoadFile loads the image at path (see Load).
func LoadFile(path string, opts Options) (*Store, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Load(bufio.NewReaderSize(f, 256<<10), opts)
}
