package conformance

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/model"
	"github.com/anonfolio/anonfolio/snapshot"
)

// The differential test's snapshot operations. A Save of a space (full, or
// mostly a delta) is compared with the model's prediction (ErrNoBase,
// ErrClosed), then loaded at once into a replica: a new space for a full
// image, the replica at the delta's base for a delta. The replica must then
// hold exactly the model's copy of the space at the Save: the same regions
// (advice and PROT_NONE included), the same contents. ResetTo between two
// spaces is compared with the model's copy.

// maxReplicas bounds the replicas alive at once.
const maxReplicas = 2

// replica is a space images were loaded into.
type replica struct {
	s     *cow.Space
	image [16]byte     // the image it is at
	m     *model.Space // the model's copy of the saved space at that image
}

// imageIDs returns an image's identity and its base's (zero for a full
// image), from its header (see the package doc of snapshot).
func imageIDs(img []byte) (id, base [16]byte) {
	copy(id[:], img[16:32])
	copy(base[:], img[32:48])
	return id, base
}

func (d *differ) save(dc *decoder) {
	sl := d.slot(dc)
	// Mostly a delta when there is a base, now and then one without.
	c := dc.u8()
	delta := c&3 != 0 && (sl.m.Based() || c&0x70 == 0)
	d.record(opSave, sl, 0, 0, 0)
	if delta {
		d.cur.note = "delta"
	}
	var buf bytes.Buffer
	info, err := snapshot.Save(&buf, sl.s, snapshot.Options{Delta: delta})
	d.sameErr("Save", err, sl.m.CheckSave(delta))
	if err != nil {
		return
	}
	sl.m.Saved()
	img := buf.Bytes()
	d.cur.b, d.cur.c = uint64(info.Pages), uint64(len(img))
	id, base := imageIDs(img)
	var r *replica
	if delta {
		i := slices.IndexFunc(d.replicas, func(r *replica) bool { return r.image == base })
		if i < 0 {
			d.cur.note += ", no replica at its base"
			return
		}
		r = d.replicas[i]
		if len(d.replicas) < maxReplicas {
			// Keep the base for another branch (a Fork of the saved
			// space shares it).
			keep := d.newReplica()
			if err := keep.s.ResetTo(r.s); err != nil {
				d.fail("ResetTo a replica: %v", err)
			}
			keep.image, keep.m = r.image, r.m
		}
	} else {
		r = d.newReplica()
	}
	linfo, err := snapshot.Load(bytes.NewReader(img), r.s)
	if err != nil {
		d.fail("Load of the image just saved: %v", err)
	}
	if linfo.Pages != info.Pages || linfo.Bytes != int64(len(img)) {
		d.fail("Load says %+v, Save said %+v for %d bytes", linfo, info, len(img))
	}
	r.image, r.m = id, sl.m.Clone()
	d.compareReplica(r)
}

// newReplica returns a new, empty replica, closing the oldest if there
// are too many.
func (d *differ) newReplica() *replica {
	if len(d.replicas) >= maxReplicas {
		d.replicas[0].s.Close()
		d.replicas = d.replicas[1:]
	}
	r := &replica{s: d.e.Space(d.opts)}
	d.replicas = append(d.replicas, r)
	return r
}

// compareReplica compares a replica with the model's copy: the regions,
// and every page either one has populated that can be read.
func (d *differ) compareReplica(r *replica) {
	got, want := r.s.Regions(), r.m.Regions()
	if !slices.Equal(got, want) {
		d.fail("the replica's regions are %v, the model's %v", got, want)
	}
	page := make([]byte, d.g.ps)
	for _, reg := range want {
		if reg.Prot == cow.ProtNone {
			continue
		}
		for a := reg.Addr; a < reg.End(); a += cow.Addr(d.g.ps) {
			m, present := r.s.Pagemap(a)
			data, _ := r.m.Page(a)
			if (!present || m.Zero) && data == nil {
				continue // both read zero (checked for the library below, when it maps something)
			}
			if _, err := r.s.ReadAt(page, int64(a)); err != nil {
				d.fail("reading the replica at %#x: %v", uint64(a), err)
			}
			if data == nil {
				data = make([]byte, d.g.ps)
			}
			if i := firstDiff(page, data); i >= 0 {
				d.fail("the replica differs from the saved space's model at %#x: %q…, want %q…",
					uint64(a)+uint64(i), head(page[i:]), head(data[i:]))
			}
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

func (d *differ) resetTo(dc *decoder) {
	sl := d.slot(dc)
	c := int(dc.u8())
	d.record(opResetTo, sl, 0, 0, 0)
	var err, merr error
	if c == 0 {
		d.cur.note = "nil"
		err, merr = sl.s.ResetTo(nil), sl.m.ResetTo(nil)
	} else {
		other := d.slots[c%len(d.slots)]
		d.cur.note = fmt.Sprintf("to %d", other.id)
		if other.m.Pages() > d.g.budget {
			return
		}
		err, merr = sl.s.ResetTo(other.s), sl.m.ResetTo(other.m)
	}
	d.sameErr("ResetTo", err, merr)
}
