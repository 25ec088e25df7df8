package sftp

// pigp's tests of the patched allocator (PIGP.md).

import (
	"sync"
	"testing"
)

// TestAllocatorSharesPages: a page released by one session's allocator is
// given to another session (upstream kept it in the first session's list),
// and a session keeps no page once its requests are answered.
func TestAllocatorSharesPages(t *testing.T) {
	a, b := newAllocator(), newAllocator()
	shared := 0
	// sync.Pool may drop a page (a GC in between; one Put in four under
	// -race): of 100 pages, some reach the other session.
	for i := range uint32(100) {
		p := a.GetPage(i)
		if len(p) != maxMsgLength {
			t.Fatalf("page of %d bytes, want %d", len(p), maxMsgLength)
		}
		a.ReleasePages(i)
		if n := len(a.used); n != 0 {
			t.Fatalf("%d requests still hold pages after ReleasePages", n)
		}
		q := b.GetPage(i)
		if &q[0] == &p[0] {
			shared++
		}
		b.ReleasePages(i)
	}
	if shared == 0 {
		t.Fatal("no page released by one session went to the other")
	}
	t.Logf("%d of 100 pages went from one session to the other", shared)
}

// TestAllocatorPerRequest: pages stay with their request until it is
// released, and Free forgets pages still in use without giving them out.
func TestAllocatorPerRequest(t *testing.T) {
	a := newAllocator()
	p1, p2 := a.GetPage(1), a.GetPage(1)
	p3 := a.GetPage(2)
	if &p1[0] == &p2[0] || &p1[0] == &p3[0] || &p2[0] == &p3[0] {
		t.Fatal("pages in use handed out twice")
	}
	if n := len(a.used[1]); n != 2 {
		t.Fatalf("request 1 holds %d pages, want 2", n)
	}
	a.ReleasePages(1)
	if _, ok := a.used[1]; ok {
		t.Fatal("request 1 still recorded after ReleasePages")
	}
	if n := len(a.used[2]); n != 1 {
		t.Fatalf("request 2 holds %d pages, want 1", n)
	}
	a.Free()
	if len(a.used) != 0 {
		t.Fatal("Free left pages recorded")
	}
}

// TestAllocatorConcurrent: sessions getting and releasing pages at once
// never get a page another request holds (run with -race).
func TestAllocatorConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	held := map[*byte]bool{}
	for s := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := newAllocator()
			for i := range uint32(200) {
				p := a.GetPage(i)
				mu.Lock()
				if held[&p[0]] {
					mu.Unlock()
					t.Errorf("session %d: page in use handed out again", s)
					return
				}
				held[&p[0]] = true
				mu.Unlock()
				p[0] = byte(s)
				mu.Lock()
				delete(held, &p[0])
				mu.Unlock()
				a.ReleasePages(i)
			}
			a.Free()
		}()
	}
	wg.Wait()
}
