package apa

import (
	"fmt"
	"hash/maphash"
	"testing"
)

func TestRefSetFindsEveryDuplicateWithItsRequest(t *testing.T) {
	s := newRefSet()
	for n := 1; n <= MaxDemandes; n++ {
		if prev, dup := s.add([]byte(fmt.Sprintf("DOS-%06d", n)), n); dup {
			t.Fatalf("request %d: distinct reference taken for a duplicate of request %d", n, prev)
		}
	}
	for _, n := range []int{1, 2, 4242, MaxDemandes} {
		if prev, dup := s.add([]byte(fmt.Sprintf("DOS-%06d", n)), MaxDemandes); !dup || prev != n {
			t.Errorf("DOS-%06d again: got (%d, %v), want (%d, true)", n, prev, dup, n)
		}
	}
	// Past the limit references are still looked up, but not kept.
	if _, dup := s.add([]byte("NEW"), MaxDemandes+1); dup {
		t.Error("a new reference past the limit is a duplicate")
	}
	if _, dup := s.add([]byte("NEW"), MaxDemandes+2); dup {
		t.Error("a reference past the limit was kept")
	}
	if _, dup := s.add([]byte("DOS-000007"), MaxDemandes+3); !dup {
		t.Error("a duplicate past the limit was not found")
	}
}

// TestRefSetFirstHashCollision makes a reference's first hash collide with
// another one's: it must not be a duplicate, and must be found exactly later.
func TestRefSetFirstHashCollision(t *testing.T) {
	s := newRefSet()
	h1 := maphash.Bytes(s.seed1, []byte("B"))
	s.refs[h1] = 7 // as if reference of request 7, whose second hash differs, were there
	if prev, dup := s.add([]byte("B"), 8); dup {
		t.Fatalf("B taken for a duplicate of request %d", prev)
	}
	if prev, dup := s.add([]byte("B"), 9); !dup || prev != 8 {
		t.Fatalf("B again: got (%d, %v), want (8, true)", prev, dup)
	}
	if _, dup := s.add([]byte("C"), 10); dup {
		t.Fatal("C taken for a duplicate")
	}
}

func BenchmarkRefSet(b *testing.B) {
	refs := make([][]byte, MaxDemandes)
	for i := range refs {
		refs[i] = []byte(fmt.Sprintf("2026-94-DOSSIER-%08d", i))
	}
	b.ReportAllocs()
	for b.Loop() {
		s := newRefSet()
		for i, r := range refs {
			s.add(r, i+1)
		}
	}
}
