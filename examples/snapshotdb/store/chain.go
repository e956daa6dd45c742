package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/anonfolio/anonfolio/snapshot"
)

// A Chain keeps a store's saves in a directory as a full image and the
// deltas that follow it, so that most saves write only what changed:
//
//	NAME.chain        the manifest: a first line "anonfolio-chain 1",
//	                  then the chain's files, the full image first
//	NAME.SEQ.full     a full image
//	NAME.SEQ.delta    a delta: the pages written since the file before it
//
// SEQ grows by one with every image, so a file name is never reused. A
// save writes its image (atomically: writeFile), then replaces the
// manifest (atomically), then removes the files the manifest no longer
// names: a crash at any point leaves a manifest naming a whole chain,
// the new one or the previous one. Without a manifest, NAME alone is a
// full image (what a save without deltas writes, and a Chain still reads).
type Chain struct {
	Dir  string // the directory of the chain's files
	Name string // the files' base name
	// MaxDeltas: a save makes a full image instead of a delta once the
	// chain holds this many deltas; 0 means 16. A full image is also
	// made when the deltas together outgrow the full image.
	MaxDeltas int

	mu sync.Mutex

	// files is the chain the manifest names; synced: the store's last
	// successful save (or load) is its last file, so a delta follows it.
	// +checklocks:mu
	files []string
	// +checklocks:mu
	synced bool
	// +checklocks:mu
	seq int
}

const chainHeader = "anonfolio-chain 1"

func (c *Chain) manifest() string        { return filepath.Join(c.Dir, c.Name+".chain") }
func (c *Chain) path(file string) string { return filepath.Join(c.Dir, file) }

// Load opens the store the directory holds: the manifest's chain, or
// else NAME alone; os.ErrNotExist if there is neither. A manifest that
// names a missing file, or files that do not follow each other, is an
// error (ErrBrokenChain, ErrCorrupt, or the file's), never a half load.
func (c *Chain) Load(opts Options) (*Store, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	files, err := readManifest(c.manifest())
	switch {
	case errors.Is(err, os.ErrNotExist):
		s, err := LoadFile(c.path(c.Name), opts)
		c.files, c.synced = nil, false
		return s, err
	case err != nil:
		return nil, err
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = c.path(f)
	}
	s, err := LoadFiles(paths, opts)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) { // not "no save at all": a chain with a file missing
			err = fmt.Errorf("%w: %s names %w", ErrBrokenChain, c.manifest(), err)
		}
		return nil, err
	}
	c.files, c.synced, c.seq = files, true, maxSeq(files)
	return s, nil
}

// Save saves s into the chain: a delta if delta is set and the chain
// allows one, else a full image. Without delta, and with no manifest in
// the directory, it writes NAME as SaveFile does (no chain at all). It
// reports what it wrote.
func (c *Chain) Save(s *Store, delta bool) (SaveInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files == nil {
		if files, err := readManifest(c.manifest()); err == nil {
			c.files, c.seq = files, maxSeq(files)
		} else if !errors.Is(err, os.ErrNotExist) {
			return SaveInfo{}, err
		}
	}
	if !delta && c.files == nil {
		c.synced = false
		return s.SaveFileWith(c.path(c.Name), SaveOptions{})
	}
	full := !delta || !c.synced || len(c.files) == 0 || len(c.files)-1 >= c.maxDeltas() || c.deltasOutgrow()
	info, file, err := c.saveImage(s, full)
	if !full && errors.Is(err, snapshot.ErrNoBase) {
		full = true
		info, file, err = c.saveImage(s, true)
	}
	if err != nil {
		if info.Bytes > 0 || errors.Is(err, errManifest) {
			c.synced = false // the store's baseline may be an image the manifest does not name
		}
		return info, err
	}
	old := c.files
	files := append([]string(nil), old...)
	if full {
		files = []string{file}
	} else {
		files = append(files, file)
	}
	if err := writeManifest(c.manifest(), files); err != nil {
		c.synced = false
		os.Remove(c.path(file))
		return info, fmt.Errorf("%w: %w", errManifest, err)
	}
	c.files, c.synced = files, true
	if full { // the previous chain, and a NAME from saves without deltas
		for _, f := range old {
			os.Remove(c.path(f))
		}
		os.Remove(c.path(c.Name))
	}
	return info, nil
}

var errManifest = errors.New("store: writing the chain's manifest") // +checklocksignore: read only

// saveImage writes the chain's next image.
//
// +checklocks:c.mu
func (c *Chain) saveImage(s *Store, full bool) (SaveInfo, string, error) {
	c.seq++
	kind := "delta"
	if full {
		kind = "full"
	}
	file := fmt.Sprintf("%s.%d.%s", c.Name, c.seq, kind)
	info, err := s.SaveFileWith(c.path(file), SaveOptions{Delta: !full})
	return info, file, err
}

func (c *Chain) maxDeltas() int {
	if c.MaxDeltas > 0 {
		return c.MaxDeltas
	}
	return 16
}

// deltasOutgrow reports whether the chain's deltas are larger together
// than its full image: loading would read more than a full image.
//
// +checklocks:c.mu
func (c *Chain) deltasOutgrow() bool {
	var full, deltas int64
	for i, f := range c.files {
		fi, err := os.Stat(c.path(f))
		if err != nil {
			return true
		}
		if i == 0 {
			full = fi.Size()
		} else {
			deltas += fi.Size()
		}
	}
	return deltas > full
}

// Files returns the chain's files as the manifest names them (nil if
// there is no manifest).
func (c *Chain) Files() ([]string, error) {
	files, err := readManifest(c.manifest())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return files, err
}

// readManifest reads a manifest's file names.
func readManifest(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() || sc.Text() != chainHeader {
		return nil, fmt.Errorf("%w: %s is not a chain manifest", ErrBrokenChain, path)
	}
	var files []string
	for sc.Scan() {
		f := sc.Text()
		if f == "" || strings.ContainsAny(f, `/\`) || f == "." || f == ".." {
			return nil, fmt.Errorf("%w: %s names %q", ErrBrokenChain, path, f)
		}
		files = append(files, f)
	}
	if len(files) == 0 || !strings.HasSuffix(files[0], ".full") {
		return nil, fmt.Errorf("%w: %s does not start with a full image", ErrBrokenChain, path)
	}
	return files, nil
}

// writeManifest replaces the manifest at path, atomically.
func writeManifest(path string, files []string) error {
	return writeFile(path, func(w io.Writer) error {
		_, err := io.WriteString(w, chainHeader+"\n"+strings.Join(files, "\n")+"\n")
		return err
	})
}

// maxSeq returns the largest SEQ of files named NAME.SEQ.KIND.
func maxSeq(files []string) int {
	n := 0
	for _, f := range files {
		parts := strings.Split(f, ".")
		if len(parts) >= 3 {
			if k, err := strconv.Atoi(parts[len(parts)-2]); err == nil {
				n = max(n, k)
			}
		}
	}
	return n
}
