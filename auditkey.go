package pigp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AuditKeySize is the size of a generated audit key, in bytes.
const AuditKeySize = 32

// AuditKey is the secret of the audit chain. Each row's link is an
// HMAC-SHA256 under it of the row's canonical serialisation (which holds
// the previous link), and so are the chain's head and the checkpoints
// written outside the database. It is never stored in the database: whoever
// can write the database but not read the key cannot forge a link.
type AuditKey struct {
	k  []byte
	id string
}

// NewAuditKey returns the key made of b (at least AuditKeySize bytes).
func NewAuditKey(b []byte) (*AuditKey, error) {
	if len(b) < AuditKeySize {
		return nil, fmt.Errorf("audit key too short: %d bytes, at least %d needed", len(b), AuditKeySize)
	}
	k := &AuditKey{k: append([]byte(nil), b...)}
	k.id = k.mac("pigp-audit-key-id")[:16]
	return k, nil
}

// GenerateAuditKey returns a new random key.
func GenerateAuditKey() (*AuditKey, error) {
	b := make([]byte, AuditKeySize)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return NewAuditKey(b)
}

// ParseAuditKey reads a key written as hexadecimal digits (what Text
// returns; surrounding white space is ignored).
func ParseAuditKey(s string) (*AuditKey, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("audit key: not hexadecimal")
	}
	return NewAuditKey(b)
}

// Text returns the key as hexadecimal digits, the form of the key file.
func (k *AuditKey) Text() string { return hex.EncodeToString(k.k) }

// ID returns a public identifier of the key (16 hex digits, an HMAC of a
// fixed string): it tells which key a chain or a checkpoint is linked
// under without revealing it.
func (k *AuditKey) ID() string { return k.id }

// mac returns the hex HMAC-SHA256 of parts serialised as a JSON array.
func (k *AuditKey) mac(parts ...string) string {
	b, _ := json.Marshal(parts)
	m := hmac.New(sha256.New, k.k)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

// Link returns the link of a keyed (version 2) row: the hex HMAC-SHA256 of
// its canonical serialisation with the version "pigp-audit-v2" (the same
// fields as Canonical, previous link included).
func (k *AuditKey) Link(e *AuditEvent) string {
	m := hmac.New(sha256.New, k.k)
	m.Write(e.canonical("pigp-audit-v2"))
	return hex.EncodeToString(m.Sum(nil))
}

// AuditHead is the chain's head: its last row and link, the key it is
// linked under, its first keyed row, and an HMAC over all of them, so that
// a head moved back over a cut tail does not verify.
type AuditHead struct {
	LastID   int64
	LastHash string
	KeyID    string
	AnchorID int64
	MAC      string
}

// HeadMAC returns the MAC of h's fields (all but MAC).
func (k *AuditKey) HeadMAC(h *AuditHead) string {
	return k.mac("pigp-audit-head-v1", strconv.FormatInt(h.LastID, 10), h.LastHash, h.KeyID, strconv.FormatInt(h.AnchorID, 10))
}

// AuditCheckpoint attests, at a time, how many rows the chain had and the
// link of the last one, sealed with the key. Written outside the database
// (a log line, a file an operator keeps), it proves later that the trail
// was not cut back nor rewritten up to that row.
type AuditCheckpoint struct {
	Time  time.Time
	Rows  int64  // the id of the last row (ids are dense from 1)
	Last  string // that row's link
	KeyID string
	MAC   string
}

// auditCheckpointTag starts the text form of a checkpoint.
const auditCheckpointTag = "pigp-audit-checkpoint/1"

func (k *AuditKey) checkpointMAC(c *AuditCheckpoint) string {
	return k.mac(auditCheckpointTag, c.Time.UTC().Format(auditTimeFormat), strconv.FormatInt(c.Rows, 10), c.Last, c.KeyID)
}

// SignCheckpoint sets c's key id and seal.
func (k *AuditKey) SignCheckpoint(c *AuditCheckpoint) {
	c.Time = c.Time.UTC().Truncate(time.Microsecond)
	c.KeyID = k.ID()
	c.MAC = k.checkpointMAC(c)
}

// CheckCheckpoint reports whether c was sealed with k.
func (k *AuditKey) CheckCheckpoint(c *AuditCheckpoint) bool {
	return c.KeyID == k.ID() && hmac.Equal([]byte(c.MAC), []byte(k.checkpointMAC(c)))
}

// String returns the checkpoint's one-line text form:
//
//	pigp-audit-checkpoint/1 at=2026-05-04T10:20:00.000000Z rows=1234 last=<64 hex> key=<16 hex> mac=<64 hex>
func (c *AuditCheckpoint) String() string {
	return fmt.Sprintf("%s at=%s rows=%d last=%s key=%s mac=%s", auditCheckpointTag,
		c.Time.UTC().Format(auditTimeFormat), c.Rows, c.Last, c.KeyID, c.MAC)
}

// ParseAuditCheckpoint reads a checkpoint from a line holding its text
// form anywhere (a log line in text or JSON, pasted as is).
func ParseAuditCheckpoint(line string) (*AuditCheckpoint, error) {
	i := strings.Index(line, auditCheckpointTag+" ")
	if i < 0 {
		return nil, fmt.Errorf("no %s in the line", auditCheckpointTag)
	}
	c := &AuditCheckpoint{}
	seen := map[string]bool{}
	for _, f := range strings.Fields(line[i+len(auditCheckpointTag):]) {
		k, v, ok := strings.Cut(strings.Trim(f, `"`), "=")
		if !ok || seen[k] {
			break
		}
		var err error
		switch k {
		case "at":
			c.Time, err = time.Parse(auditTimeFormat, v)
		case "rows":
			c.Rows, err = strconv.ParseInt(v, 10, 64)
		case "last":
			c.Last = v
		case "key":
			c.KeyID = v
		case "mac":
			c.MAC = v
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %v", err)
		}
		seen[k] = true
		if k == "mac" {
			break
		}
	}
	if len(seen) != 5 || c.Rows < 0 || len(c.Last) != 64 || len(c.MAC) != 64 {
		return nil, fmt.Errorf("checkpoint: incomplete (%s at= rows= last= key= mac=)", auditCheckpointTag)
	}
	return c, nil
}
