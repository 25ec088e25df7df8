// pigp: pooled packet buffers (see ../PIGP.md).

package ssh

import (
	"sync"
	"sync/atomic"
)

// packetBufSize is the capacity of a pooled packet: a channel data message
// carrying channelMaxPacket bytes (1 byte of type, 4 of channel, 4 of
// length), with room to spare. Larger packets are allocated.
const packetBufSize = channelMaxPacket + 64

var packetPool = sync.Pool{New: func() any {
	packetBufsMade.Add(1)
	return new([packetBufSize]byte)
}}

// packetBufsMade counts the buffers the pool had to make (tests).
var packetBufsMade atomic.Int64

// copyPacket returns a copy of packet: a channel's data, in a buffer of the
// pool when it fits (the channel gives it back once read); any other
// message, which nothing gives back, in a buffer of its own size.
func copyPacket(packet []byte) []byte {
	var fresh []byte
	if len(packet) > 0 && (packet[0] == msgChannelData || packet[0] == msgChannelExtendedData) {
		fresh = getPacketBuf(len(packet))
	} else {
		fresh = make([]byte, len(packet)) // as upstream
	}
	copy(fresh, packet)
	return fresh
}

// getPacketBuf returns a buffer of n bytes, from the pool when it fits.
// Its content is not cleared: the caller overwrites all n bytes.
func getPacketBuf(n int) []byte {
	if n > packetBufSize {
		return make([]byte, n)
	}
	return packetPool.Get().(*[packetBufSize]byte)[:n]
}

// putPacketBuf gives back a buffer of getPacketBuf once nothing refers to
// it any more. Buffers of another capacity are left to the collector.
func putPacketBuf(b []byte) {
	if cap(b) != packetBufSize {
		return
	}
	packetPool.Put((*[packetBufSize]byte)(b[:packetBufSize]))
}
