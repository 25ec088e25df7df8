package sftp

// pigp patch (see PIGP.md): the pages come from one pool shared by every
// request server of the process, and go back to it as soon as the request
// that used them is answered. Upstream keeps, per session, every page the
// session ever used until the session ends: up to two pages per request
// in flight (a read's request and its data), 256 KiB each, for as long as
// a client keeps its session open.

import (
	"sync"
)

// pages holds the free pages of every allocator; sync.Pool lets the
// garbage collector take back the ones no session has used for two cycles.
var pages = sync.Pool{New: func() any {
	b := make([]byte, maxMsgLength)
	return &b
}}

type allocator struct {
	sync.Mutex
	// map key is the request order
	used map[uint32][]*[]byte
}

func newAllocator() *allocator {
	return &allocator{
		used: make(map[uint32][]*[]byte),
	}
}

// GetPage returns a free page of the shared pool, or a new one.
// The slice have a fixed size = maxMsgLength, this value is suitable for both
// receiving new packets and reading the files to serve
func (a *allocator) GetPage(requestOrderID uint32) []byte {
	p := pages.Get().(*[]byte)
	a.Lock()
	a.used[requestOrderID] = append(a.used[requestOrderID], p)
	a.Unlock()
	return *p
}

// ReleasePages gives the pages of the given request back to the shared pool.
func (a *allocator) ReleasePages(requestOrderID uint32) {
	a.Lock()
	used := a.used[requestOrderID]
	delete(a.used, requestOrderID)
	a.Unlock()
	for _, p := range used {
		pages.Put(p)
	}
}

// Free forgets the pages still in use (requests never answered): they go
// to the garbage collector, not back to the pool.
// Call this method when the allocator is not needed anymore
func (a *allocator) Free() {
	a.Lock()
	defer a.Unlock()

	a.used = make(map[uint32][]*[]byte)
}
