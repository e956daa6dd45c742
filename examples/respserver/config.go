package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// savePoint is one rule of the save parameter: save when at least
// changes writes happened in the last seconds seconds.
type savePoint struct {
	seconds int64
	changes uint64
}

// config is the server's configuration: what CONFIG GET reports and
// CONFIG SET changes. Its lock is never held on a command's hot path.
type config struct {
	mu sync.Mutex
	// +checklocks:mu
	dir string
	// +checklocks:mu
	dbfilename string
	// +checklocks:mu
	save []savePoint
	// +checklocks:mu
	hz int
	// saveDelta: a save after the first writes a delta (save-delta yes).
	// +checklocks:mu
	saveDelta bool

	port       int // read only
	bind       string
	maxclients int
}

// defaultSave is Redis's default: an hour and a change, five minutes and
// 100 changes, a minute and 10000 changes.
const defaultSave = "3600 1 300 100 60 10000"

func newConfig(dir, dbfilename, save string, port int, bind string) (*config, error) {
	points, err := parseSave(save)
	if err != nil {
		return nil, err
	}
	c := &config{port: port, bind: bind, maxclients: 10000}
	c.mu.Lock()
	c.dir, c.dbfilename, c.save, c.hz = dir, dbfilename, points, 10
	c.mu.Unlock()
	return c, nil
}

// parseSave parses the save parameter: pairs of seconds and changes, or
// "" for none.
func parseSave(v string) ([]savePoint, error) {
	f := strings.Fields(v)
	if len(f)%2 != 0 {
		return nil, errors.New("Invalid save parameters")
	}
	var points []savePoint
	for i := 0; i < len(f); i += 2 {
		secs, err1 := strconv.ParseInt(f[i], 10, 64)
		changes, err2 := strconv.ParseUint(f[i+1], 10, 64)
		if err1 != nil || err2 != nil || secs < 1 {
			return nil, errors.New("Invalid save parameters")
		}
		points = append(points, savePoint{secs, changes})
	}
	return points, nil
}

func (c *config) savePoints() []savePoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.save
}

func (c *config) dumpPath() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return filepath.Join(c.dir, c.dbfilename)
}

// chainFiles returns the directory and the name the saves use.
func (c *config) chainFiles() (dir, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dir, c.dbfilename
}

func (c *config) deltas() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.saveDelta
}

func (c *config) hzValue() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hz
}

func (c *config) maxClients() int { return c.maxclients }

// param is one parameter: how to read it, and how to set it (nil: read
// only, as Redis's immutable parameters).
type param struct {
	get func(c *config) string
	set func(c *config, v string) error
}

var params = map[string]param{
	"save": {
		get: func(c *config) string {
			var f []string
			for _, p := range c.savePoints() {
				f = append(f, strconv.FormatInt(p.seconds, 10), strconv.FormatUint(p.changes, 10))
			}
			return strings.Join(f, " ")
		},
		set: func(c *config, v string) error {
			points, err := parseSave(v)
			if err == nil {
				c.mu.Lock()
				c.save = points
				c.mu.Unlock()
			}
			return err
		},
	},
	// Incremental saves: with yes, a save writes a delta (the pages
	// written since the previous save) after the chain's full image (see
	// persist.go and the README).
	"save-delta": {
		get: func(c *config) string {
			if c.deltas() {
				return "yes"
			}
			return "no"
		},
		set: func(c *config, v string) error {
			var on bool
			switch {
			case strings.EqualFold(v, "yes"):
				on = true
			case strings.EqualFold(v, "no"):
			default:
				return errors.New("argument must be 'yes' or 'no'")
			}
			c.mu.Lock()
			c.saveDelta = on
			c.mu.Unlock()
			return nil
		},
	},
	"appendonly": {
		get: func(*config) string { return "no" },
		set: func(_ *config, v string) error {
			if !strings.EqualFold(v, "no") {
				return errors.New("this server has no append-only file")
			}
			return nil
		},
	},
	"dir": {
		get: func(c *config) string { c.mu.Lock(); defer c.mu.Unlock(); return c.dir },
		set: func(c *config, v string) error {
			if fi, err := os.Stat(v); err != nil || !fi.IsDir() {
				return fmt.Errorf("No such file or directory")
			}
			c.mu.Lock()
			c.dir = v
			c.mu.Unlock()
			return nil
		},
	},
	"dbfilename": {
		get: func(c *config) string { c.mu.Lock(); defer c.mu.Unlock(); return c.dbfilename },
		set: func(c *config, v string) error {
			if v == "" || strings.ContainsRune(v, '/') {
				return errors.New("dbfilename can't be a path, just a filename")
			}
			c.mu.Lock()
			c.dbfilename = v
			c.mu.Unlock()
			return nil
		},
	},
	"hz": {
		get: func(c *config) string { return strconv.Itoa(c.hzValue()) },
		set: func(c *config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 500 {
				return errors.New("argument must be between 1 and 500 inclusive")
			}
			c.mu.Lock()
			c.hz = n
			c.mu.Unlock()
			return nil
		},
	},
	"port":               {get: func(c *config) string { return strconv.Itoa(c.port) }},
	"bind":               {get: func(c *config) string { return c.bind }},
	"maxclients":         {get: func(c *config) string { return strconv.Itoa(c.maxclients) }},
	"databases":          {get: func(*config) string { return "1" }},
	"timeout":            {get: func(*config) string { return "0" }},
	"maxmemory":          {get: func(*config) string { return "0" }},
	"maxmemory-policy":   {get: func(*config) string { return "noeviction" }},
	"proto-max-bulk-len": {get: func(*config) string { return strconv.Itoa(maxBulkLen) }},
	"io-threads":         {get: func(*config) string { return "1" }},
}

// paramNames returns the parameters matching a CONFIG GET pattern, sorted.
func paramNames(pattern []byte) []string {
	var names []string
	for name := range params {
		if globMatch(pattern, []byte(name), true) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}
