package store

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/anonfolio/anonfolio/cow"
)

// Limits on keys and values: Redis's proto-max-bulk-len.
const (
	MaxKeyLen   = 512 << 20
	MaxValueLen = 512 << 20
)

// The root region: the superblock in its first page, then one page per
// shard holding the shard's header.
const (
	superMagic    = "ANFKVDB\x00"
	layoutVersion = 3 // 3: the records in package slab's blocks

	// Superblock fields. It is written once, when the store is created.
	supMagic     = 0  // superMagic
	supVersion   = 8  // uint32
	supShardBits = 12 // uint32
	supSeed      = 16 // uint64: the hash seed
	supShards    = 24 // cow.Addr: the first shard header
	supSlab      = 32 // cow.Addr: the allocator's root (slab.Open finds it there)
	supSlabLen   = 40 // uint64: the bytes the allocator reserved from its root
	supMaxRecord = 48 // uint64: Options.MaxRecord, the allocator's largest block
	supPageSize  = 56 // uint32
	supCRC       = 60 // uint32: CRC-32C of the bytes before it
	supLen       = 64

	maxShardBits = 8 // at most 256 shards
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Shard header fields, each a uint64. The Go side caches them (dictState)
// and writes every change through, so the space always holds the truth.
const (
	shT0       = 0  // table 0: the bucket array
	shT0Exp    = 8  // log2 of its buckets
	shT1       = 16 // table 1, being filled by an incremental rehash; 0 if none
	shT1Exp    = 24 //
	shRehash   = 32 // the next bucket of table 0 to move
	shCount    = 40 // keys
	shTTL      = 48 // the TTL array: record addresses of the keys with a TTL
	shTTLCap   = 56 // its capacity, in entries
	shTTLLen   = 64 // its length
	shardHdrSz = 72
)

// A record: one key and its value, in one block of the allocator.
//
//	0  next    tagged pointer to the next record of its bucket chain
//	8  expire  int64, unix milliseconds; 0: no TTL
//	16 hash    uint32: the low 32 bits of the key's hash (its bucket)
//	20 klen    uint32
//	24 vlen    uint32
//	28 ttlIdx  uint32: its slot in the shard's TTL array, if it has a TTL
//	32 key, then value
const (
	recNext   = 0
	recExpire = 8
	recHash   = 16
	recKlen   = 20
	recVlen   = 24
	recTTLIdx = 28
	recHdr    = 32
)

// A tagged pointer, as buckets and next fields hold them: the record's
// address (below 2^47: cow's address space) and, in the top 16 bits, the
// record's length if it is below 64 KiB, so that a reader fetches the whole
// record in one ReadAt; 0 there means "read the header first".
const (
	tagShift = 48
	addrMask = 1<<tagShift - 1
	maxTag   = 1<<16 - 1
)

func tagPtr(addr cow.Addr, recLen int) uint64 {
	t := uint64(0)
	if recLen <= maxTag {
		t = uint64(recLen)
	}
	return uint64(addr) | t<<tagShift
}

func untag(p uint64) (cow.Addr, int) { return cow.Addr(p & addrMask), int(p >> tagShift) }

// recordLen is the bytes a record of klen and vlen takes.
func recordLen(klen, vlen int) int { return recHdr + klen + vlen }

// recHeader is a decoded record header.
type recHeader struct {
	next   uint64
	expire int64
	hash   uint32
	klen   uint32
	vlen   uint32
	ttlIdx uint32
}

func decodeRec(b []byte) recHeader {
	le := binary.LittleEndian
	return recHeader{
		next:   le.Uint64(b[recNext:]),
		expire: int64(le.Uint64(b[recExpire:])),
		hash:   le.Uint32(b[recHash:]),
		klen:   le.Uint32(b[recKlen:]),
		vlen:   le.Uint32(b[recVlen:]),
		ttlIdx: le.Uint32(b[recTTLIdx:]),
	}
}

func (r *recHeader) encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[recNext:], r.next)
	le.PutUint64(b[recExpire:], uint64(r.expire))
	le.PutUint32(b[recHash:], r.hash)
	le.PutUint32(b[recKlen:], r.klen)
	le.PutUint32(b[recVlen:], r.vlen)
	le.PutUint32(b[recTTLIdx:], r.ttlIdx)
}

func (r *recHeader) len() int { return recordLen(int(r.klen), int(r.vlen)) }

// mem is a handle on the store's memory: an Accessor (one goroutine's,
// faster: see reader.go), or else the Space itself. A concrete type, not
// an interface, so that the buffers passed to it stay on the stack.
type mem struct {
	acc *cow.Accessor
	sp  *cow.Space
}

func (m mem) ReadAt(p []byte, off int64) (int, error) {
	if m.acc != nil {
		return m.acc.ReadAt(p, off)
	}
	return m.sp.ReadAt(p, off)
}

func (m mem) WriteAt(p []byte, off int64) (int, error) {
	if m.acc != nil {
		return m.acc.WriteAt(p, off)
	}
	return m.sp.WriteAt(p, off)
}

// readU64 and writeU64 access one little-endian word of a space.
func readU64(sp mem, addr cow.Addr) (uint64, error) {
	var b [8]byte
	_, err := sp.ReadAt(b[:], int64(addr))
	return binary.LittleEndian.Uint64(b[:]), err
}

func writeU64(sp mem, addr cow.Addr, v uint64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	_, err := sp.WriteAt(b[:], int64(addr))
	return err
}

func writeU32(sp mem, addr cow.Addr, v uint32) error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	_, err := sp.WriteAt(b[:], int64(addr))
	return err
}

// superblock is the decoded superblock.
type superblock struct {
	shardBits uint32
	seed      uint64
	shards    cow.Addr
	slab      cow.Addr
	slabLen   uint64
	maxRecord uint64
	pageSize  uint32
}

func (sb *superblock) encode(b []byte) {
	le := binary.LittleEndian
	copy(b[supMagic:], superMagic)
	le.PutUint32(b[supVersion:], layoutVersion)
	le.PutUint32(b[supShardBits:], sb.shardBits)
	le.PutUint64(b[supSeed:], sb.seed)
	le.PutUint64(b[supShards:], uint64(sb.shards))
	le.PutUint64(b[supSlab:], uint64(sb.slab))
	le.PutUint64(b[supSlabLen:], sb.slabLen)
	le.PutUint64(b[supMaxRecord:], sb.maxRecord)
	le.PutUint32(b[supPageSize:], sb.pageSize)
	le.PutUint32(b[supCRC:], crc32.Checksum(b[:supCRC], castagnoli))
}

func decodeSuper(b []byte) (superblock, error) {
	le := binary.LittleEndian
	var sb superblock
	switch {
	case len(b) < supLen || string(b[:8]) != superMagic:
		return sb, corrupt("no store here: bad magic")
	case le.Uint32(b[supVersion:]) != layoutVersion:
		return sb, corrupt("layout version %d, want %d", le.Uint32(b[supVersion:]), layoutVersion)
	case le.Uint32(b[supCRC:]) != crc32.Checksum(b[:supCRC], castagnoli):
		return sb, corrupt("superblock checksum")
	}
	sb = superblock{
		shardBits: le.Uint32(b[supShardBits:]),
		seed:      le.Uint64(b[supSeed:]),
		shards:    cow.Addr(le.Uint64(b[supShards:])),
		slab:      cow.Addr(le.Uint64(b[supSlab:])),
		slabLen:   le.Uint64(b[supSlabLen:]),
		maxRecord: le.Uint64(b[supMaxRecord:]),
		pageSize:  le.Uint32(b[supPageSize:]),
	}
	if sb.shardBits > maxShardBits {
		return sb, corrupt("%d shard bits", sb.shardBits)
	}
	if sb.maxRecord < minMaxRecord || sb.maxRecord > maxMaxRecord || sb.maxRecord&(sb.maxRecord-1) != 0 {
		return sb, corrupt("records of up to %d bytes", sb.maxRecord)
	}
	return sb, nil
}

func leU64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
