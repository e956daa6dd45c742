package store

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// SaveFile saves a full image of the store to path without ever losing
// the previous image there (see writeFile).
func (s *Store) SaveFile(path string) error {
	_, err := s.saveFile(path, SaveOptions{}, nil)
	return err
}

// SaveFileWith is SaveFile with options (a delta), and describes the image.
func (s *Store) SaveFileWith(path string, o SaveOptions) (SaveInfo, error) {
	return s.saveFile(path, o, nil)
}

// saveFile is SaveFileWith; wrap, if not nil, wraps the file's writer
// (tests use it to fail or crash in the middle).
func (s *Store) saveFile(path string, o SaveOptions, wrap func(io.Writer) io.Writer) (info SaveInfo, err error) {
	err = writeFile(path, func(w io.Writer) error {
		if wrap != nil {
			w = wrap(w)
		}
		info, err = s.SaveWith(w, o)
		return err
	})
	return info, err
}

// writeFile writes path with write, atomically: into a temporary file in
// the same directory, fsynced, renamed over path, and the directory
// fsynced. A crash or an error before the rename leaves the old file as it
// was (and at worst a stray temporary file named path.tmp-*); after it the
// new file is durable.
func writeFile(path string, write func(io.Writer) error) (err error) {
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
	if err = write(bw); err != nil {
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

// LoadFile loads the full image at path (see LoadChain).
func LoadFile(path string, opts Options) (*Store, error) { return LoadFiles([]string{path}, opts) }

// LoadFiles loads a full image and its deltas, in order (see LoadChain).
func LoadFiles(paths []string, opts Options) (*Store, error) {
	rs := make([]io.Reader, len(paths))
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err // the files opened before close with the defers
		}
		defer f.Close()
		rs[i] = &fileReader{f: f, r: bufio.NewReaderSize(f, 256<<10)}
	}
	return LoadChain(rs, opts)
}

// fileReader is a buffered file that still tells its size (sizeOf).
type fileReader struct {
	f *os.File
	r *bufio.Reader
}

func (fr *fileReader) Read(p []byte) (int, error) { return fr.r.Read(p) }

func (fr *fileReader) Len() int {
	if fi, err := fr.f.Stat(); err == nil {
		return int(fi.Size())
	}
	return 0
}
