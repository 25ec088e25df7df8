package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pigp/pigp/blob"
)

// Open heads the object and returns a reader over it. The object is read
// in ranged GETs of ReadChunk bytes: the chunk a ReadAt needs and the
// ReadAhead chunks after it are fetched at once, so that a sequential
// reader (SFTP clients keep many reads in flight) finds its next bytes
// already arrived. Memory per open object is bounded by ReadAhead+3
// chunks, whatever the object's size, and chunk buffers are reused across
// objects. Every GET carries If-Match with the ETag seen at Open: a
// replaced object fails instead of mixing contents.
func (s *Store) Open(ctx context.Context, key string) (blob.Object, error) {
	if err := blob.CheckKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(s.objectKey(key))}, s.timeout())
	if err != nil {
		return nil, s.fail("open", key, err)
	}
	size := aws.ToInt64(out.ContentLength)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &object{
		s: s, key: key, size: size, etag: out.ETag,
		chunkSize: max(1, min(s.cfg.ReadChunk, size)),
		keep:      s.cfg.ReadAhead + 3,
		ctx:       rctx, cancel: cancel,
		chunks: map[int64]*chunk{},
	}, nil
}

type object struct {
	s         *Store
	key       string
	size      int64
	etag      *string
	chunkSize int64
	keep      int // chunks kept before the least recently used is dropped

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc

	mu     sync.Mutex
	chunks map[int64]*chunk
	tick   int64
	closed bool
}

type chunk struct {
	done chan struct{} // closed when data or err is set
	data []byte
	err  error

	// Under object.mu:
	used    int64 // tick of the last read
	refs    int   // readers copying from data (or waiting for it)
	evicted bool  // no longer in object.chunks: data goes back to the pool once refs is 0
}

func (o *object) Size() int64 { return o.size }

// Close stops the GETs in flight and releases the chunks.
func (o *object) Close() error {
	o.mu.Lock()
	if !o.closed {
		o.closed = true
		for _, c := range o.chunks {
			o.dropLocked(c)
		}
		o.chunks = nil
	}
	o.mu.Unlock()
	o.cancel()
	return nil
}

// ReadAt reads len(p) bytes at off from the chunks that hold them.
func (o *object) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("blob read %s: negative offset", o.key)
	}
	n := 0
	for n < len(p) && off < o.size {
		idx := off / o.chunkSize
		c, err := o.chunk(idx)
		if err != nil {
			return n, err
		}
		k := copy(p[n:], c.data[off-idx*o.chunkSize:])
		o.release(c)
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// chunk returns chunk idx once it arrived, starting its GET and those of
// the ReadAhead chunks after it when they are not under way. A chunk that
// failed is forgotten, so that the next read asks again.
func (o *object) chunk(idx int64) (*chunk, error) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil, fmt.Errorf("blob read %s: %w", o.key, os.ErrClosed)
	}
	o.tick++
	c := o.startLocked(idx)
	c.used = o.tick
	c.refs++
	for i := 1; i <= o.s.cfg.ReadAhead; i++ {
		o.startLocked(idx + int64(i))
	}
	o.evictLocked()
	o.mu.Unlock()

	select {
	case <-c.done:
	case <-o.ctx.Done():
		o.release(c)
		return nil, fmt.Errorf("blob read %s: %w", o.key, os.ErrClosed)
	}
	if c.err != nil {
		o.mu.Lock()
		if o.chunks[idx] == c {
			delete(o.chunks, idx)
		}
		o.mu.Unlock()
		o.release(c)
		return nil, c.err
	}
	return c, nil
}

// release ends a reader's use of c.
func (o *object) release(c *chunk) {
	o.mu.Lock()
	c.refs--
	o.recycleLocked(c)
	o.mu.Unlock()
}

// dropLocked takes c out of use: its buffer returns to the pool once no
// reader holds it and its GET is over.
func (o *object) dropLocked(c *chunk) {
	c.evicted = true
	o.recycleLocked(c)
}

func (o *object) recycleLocked(c *chunk) {
	if !c.evicted || c.refs > 0 || c.data == nil {
		return
	}
	o.s.putBuf(c.data)
	c.data = nil
}

func (o *object) startLocked(idx int64) *chunk {
	if idx*o.chunkSize >= o.size {
		return nil
	}
	if c := o.chunks[idx]; c != nil {
		return c
	}
	c := &chunk{done: make(chan struct{}), used: o.tick}
	o.chunks[idx] = c
	go o.fetch(idx, c)
	return c
}

// evictLocked drops the least recently read chunks that have arrived while
// more than keep are held. Chunks in flight stay: a reader may wait on them.
func (o *object) evictLocked() {
	for len(o.chunks) > o.keep {
		var victim int64 = -1
		for idx, c := range o.chunks {
			select {
			case <-c.done:
			default:
				continue
			}
			if victim < 0 || c.used < o.chunks[victim].used {
				victim = idx
			}
		}
		if victim < 0 {
			return
		}
		o.dropLocked(o.chunks[victim])
		delete(o.chunks, victim)
	}
}

// fetch GETs chunk idx. The SDK retries a request that fails; a body cut
// off mid-way, or an attempt that ran out of time, is asked again here,
// up to MaxAttempts times with backoff.
func (o *object) fetch(idx int64, c *chunk) {
	start := idx * o.chunkSize
	buf := o.s.getBuf(min(o.chunkSize, o.size-start))
	var err error
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		var retry bool
		if retry, err = o.get(buf, start); err == nil {
			break
		}
		if !retry || attempt >= o.s.cfg.MaxAttempts || o.ctx.Err() != nil {
			if o.ctx.Err() != nil {
				err = fmt.Errorf("blob read %s: %w", o.key, os.ErrClosed)
			}
			err = o.s.fail("read", o.key, err)
			break
		}
		select {
		case <-time.After(backoff):
		case <-o.ctx.Done():
		}
		backoff = min(2*backoff, o.s.cfg.MaxBackoff)
	}
	o.mu.Lock()
	if err != nil {
		o.s.putBuf(buf)
		c.err = err
	} else {
		c.data = buf
		o.recycleLocked(c) // closed meanwhile
	}
	close(c.done)
	o.mu.Unlock()
}

// get reads [start, start+len(buf)) into buf. retry reports a failure worth
// another attempt: the body broke off or the attempt ran out of time (the
// SDK has already retried failures before the body).
func (o *object) get(buf []byte, start int64) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(o.ctx, o.s.cfg.RequestTimeout)
	defer cancel()
	out, err := o.s.client.GetObject(ctx, &awss3.GetObjectInput{
		Bucket:  &o.s.cfg.Bucket,
		Key:     aws.String(o.s.objectKey(o.key)),
		Range:   aws.String(fmt.Sprintf("bytes=%d-%d", start, start+int64(len(buf))-1)),
		IfMatch: o.etag,
	})
	if err != nil {
		return o.ctx.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded), err
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n != int64(len(buf)) {
		return false, fmt.Errorf("range %d+%d: the server sent %d bytes", start, len(buf), n)
	}
	if _, err := io.ReadFull(out.Body, buf); err != nil {
		return o.ctx.Err() == nil, fmt.Errorf("range %d+%d: %w", start, len(buf), err)
	}
	return false, nil
}

// getBuf returns a buffer of n bytes, from the pool when n is ReadChunk.
func (s *Store) getBuf(n int64) []byte {
	if n == s.cfg.ReadChunk {
		if b, ok := s.bufs.Get().(*[]byte); ok {
			return *b
		}
	}
	return make([]byte, n)
}

// putBuf gives a ReadChunk buffer back to the pool.
func (s *Store) putBuf(b []byte) {
	if int64(len(b)) == s.cfg.ReadChunk {
		s.bufs.Put(&b)
	}
}
