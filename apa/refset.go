package apa

import "hash/maphash"

// refSet remembers the ReferenceDossier of each request of a file, to find
// duplicates (E009): a 16-byte entry a request, about 23 bytes with the
// map's own overhead (2.3 MB for MaxDemandes), instead of ~45 for a map of
// strings. A reference is kept as 111 bits of two seeded hashes, with the
// number of its request in the remaining 17 bits. Two different references
// would have to agree on all 111 bits to be taken for one another: about
// one chance in 10²⁴ for a file of MaxDemandes requests, far below the rate
// of undetected hardware errors (the seeds change with each validation).
// References that share only the first hash (for a full file, about one
// chance in 4·10⁹) are kept whole in a small exact map.
type refSet struct {
	seed1, seed2 maphash.Seed
	refs         map[uint64]uint64 // first hash → top 47 bits of the second | request number
	others       map[string]int    // references whose first hash was taken by another
}

const refNumberBits = 17

// A request number must fit in refNumberBits.
var _ [1<<refNumberBits - 1 - MaxDemandes]struct{}

func newRefSet() *refSet {
	return &refSet{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(), refs: make(map[uint64]uint64)}
}

// expect sizes the set for n references, when none is kept yet: the
// declared NombreDemandes, so that the set does not grow by copies.
func (s *refSet) expect(n int) {
	if len(s.refs) == 0 && n > 0 {
		s.refs = make(map[uint64]uint64, min(n, MaxDemandes))
	}
}

// add records that request number n carries ref, unless an earlier request
// already did: then it returns that request's number. Past MaxDemandes
// (a file refused by E006) references are looked up but no longer kept.
func (s *refSet) add(ref []byte, n int) (prev int, dup bool) {
	const numbers = 1<<refNumberBits - 1
	h1 := maphash.Bytes(s.seed1, ref)
	h2 := maphash.Bytes(s.seed2, ref) &^ numbers
	v, taken := s.refs[h1]
	if taken && v&^numbers == h2 {
		return int(v & numbers), true
	}
	if prev, ok := s.others[string(ref)]; ok {
		return prev, true
	}
	if n > MaxDemandes {
		return 0, false
	}
	if !taken {
		s.refs[h1] = h2 | uint64(n)
		return 0, false
	}
	if s.others == nil {
		s.others = make(map[string]int)
	}
	s.others[string(ref)] = n
	return 0, false
}
