// pigp: tests of the pooled packet buffers (packetpool.go, ../PIGP.md).

package ssh

import (
	"crypto/rand"
	"crypto/sha256"
	"io"
	"runtime"
	"runtime/debug"
	"testing"
)

// pooledPipe connects a client and a server over a pipe with the given
// cipher; the client opens a channel. It returns both sides of the channel.
func pooledPipe(t testing.TB, cipher string) (client, server Channel) {
	t.Helper()
	c1, c2, err := netPipe()
	if err != nil {
		t.Fatal(err)
	}
	serverConf := ServerConfig{NoClientAuth: true}
	serverConf.Ciphers = []string{cipher}
	serverConf.AddHostKey(testSigners["ecdsa"])
	type accepted struct {
		ch  Channel
		err error
	}
	done := make(chan accepted, 1)
	go func() {
		s, err := newServer(c2, &serverConf)
		if err != nil {
			done <- accepted{err: err}
			return
		}
		t.Cleanup(func() { s.Close() })
		n, err := s.Accept()
		if err != nil {
			done <- accepted{err: err}
			return
		}
		ch, reqs, err := n.Accept()
		if err == nil {
			go DiscardRequests(reqs)
		}
		done <- accepted{ch, err}
	}()
	clientConf := ClientConfig{User: "user", HostKeyCallback: InsecureIgnoreHostKey()}
	clientConf.Ciphers = []string{cipher}
	conn, _, reqs, err := NewClientConn(c1, "", &clientConf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go DiscardRequests(reqs)
	ch, in, err := conn.OpenChannel("pool", nil)
	if err != nil {
		t.Fatal(err)
	}
	go DiscardRequests(in)
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	return ch, a.ch
}

// readInPieces reads r to EOF in reads of the given sizes, in turn, and
// returns the SHA-256 and length of what it read.
func readInPieces(r io.Reader, sizes []int) ([32]byte, int, error) {
	h := sha256.New()
	buf := make([]byte, 128<<10)
	total := 0
	for i := 0; ; i++ {
		n, err := r.Read(buf[:sizes[i%len(sizes)]])
		h.Write(buf[:n])
		total += n
		if err == io.EOF {
			var sum [32]byte
			copy(sum[:], h.Sum(nil))
			return sum, total, nil
		}
		if err != nil {
			return [32]byte{}, total, err
		}
	}
}

// TestPooledPacketsCarryTheData sends random data and stderr through a
// channel in writes of awkward sizes and reads both back in reads of other
// awkward sizes (a packet read in several pieces, a read spanning several
// packets): every byte arrives, in order, although each packet's buffer is
// reused as soon as it has been read.
func TestPooledPacketsCarryTheData(t *testing.T) {
	for _, cipher := range []string{CipherAES128GCM, CipherChaCha20Poly1305, "aes128-ctr"} {
		t.Run(cipher, func(t *testing.T) {
			client, server := pooledPipe(t, cipher)
			data := make([]byte, 6<<20+12345)
			stderr := make([]byte, 1<<20+7)
			rand.Read(data)
			rand.Read(stderr)
			type result struct {
				sum [32]byte
				n   int
				err error
			}
			gotData, gotErr := make(chan result, 1), make(chan result, 1)
			go func() {
				s, n, err := readInPieces(server, []int{7, 32768, 100000, 3, 65536, 1})
				gotData <- result{s, n, err}
			}()
			go func() {
				s, n, err := readInPieces(server.Stderr(), []int{1000, 40000})
				gotErr <- result{s, n, err}
			}()
			writes := []int{1, 1000, 32768, 32769, 70000, 5}
			for i, off, eoff := 0, 0, 0; off < len(data) || eoff < len(stderr); i++ {
				n := min(writes[i%len(writes)], len(data)-off)
				if _, err := client.Write(data[off : off+n]); err != nil {
					t.Fatal(err)
				}
				off += n
				m := min(writes[(i+3)%len(writes)], len(stderr)-eoff)
				if _, err := client.Stderr().Write(stderr[eoff : eoff+m]); err != nil {
					t.Fatal(err)
				}
				eoff += m
			}
			client.CloseWrite()
			for _, c := range []struct {
				name string
				got  chan result
				want []byte
			}{{"data", gotData, data}, {"stderr", gotErr, stderr}} {
				r := <-c.got
				if r.err != nil {
					t.Fatalf("%s: %v", c.name, r.err)
				}
				if r.n != len(c.want) || r.sum != sha256.Sum256(c.want) {
					t.Errorf("%s: read %d bytes with SHA-256 %x, want %d bytes with %x", c.name, r.n, r.sum, len(c.want), sha256.Sum256(c.want))
				}
			}
		})
	}
}

// TestPooledPacketsAreReused checks that the data packets a channel has
// read go back to the pool: 16 MiB (512 full packets) are received with
// only a few packet buffers ever made. Upstream allocates one per packet.
func TestPooledPacketsAreReused(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // the collector would empty the pool
	client, server := pooledPipe(t, CipherAES128GCM)
	const total = 16 << 20
	before := packetBufsMade.Load()
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, server, total)
		done <- err
	}()
	chunk := make([]byte, 1<<20)
	for sent := 0; sent < total; sent += len(chunk) {
		if _, err := client.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// At most a window's worth (64 packets) can be waiting to be read at
	// once; a few more are on their way through the transport. Under the
	// race detector the pool drops a quarter of what it is given: still
	// far from one buffer per packet.
	limit := int64(80)
	if raceEnabled {
		limit = 256
	}
	if made := packetBufsMade.Load() - before; made > limit {
		t.Errorf("%d packet buffers made to receive %d packets, want at most %d", made, total/channelMaxPacket, limit)
	}
}

// BenchmarkChannelData is the packet path of an SFTP upload: one op is one
// full channel data packet (32 KiB) encrypted by the client, decrypted by
// the server and read from the channel. Allocations per op are those of
// both sides; in steady state there are none.
func BenchmarkChannelData(b *testing.B) {
	for _, cipher := range []string{CipherAES128GCM, CipherChaCha20Poly1305} {
		b.Run(cipher, func(b *testing.B) {
			client, server := pooledPipe(b, cipher)
			chunk := make([]byte, channelMaxPacket)
			// Warm up: the pools, the window, the goroutines' stacks.
			go client.Write(make([]byte, 4<<20))
			if _, err := io.CopyN(io.Discard, server, 4<<20); err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 1)
			b.SetBytes(channelMaxPacket)
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			go func() {
				buf := make([]byte, channelMaxPacket)
				for i := 0; i < b.N; i++ {
					if _, err := io.ReadFull(server, buf); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for i := 0; i < b.N; i++ {
				if _, err := client.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			// allocs/op rounds down: the exact figure, window adjustments
			// (one per 512 KiB read) and all.
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N), "allocs/packet")
		})
	}
}
