package blob

// Kinds of stored contents: the first component of their keys.
const (
	KindDeposit  = "depots"   // the contents of deposits
	KindResponse = "retraits" // responses and reports published in /retrait
)

// Key returns the key of the content id of the given kind:
// "depots/ab/ab12…". The two-character directory spreads the filesystem
// store's objects; id is a server-generated identifier (pigp.NewID), never
// a client's name.
func Key(kind, id string) string {
	shard := id
	if len(shard) > 2 {
		shard = shard[:2]
	}
	return kind + "/" + shard + "/" + id
}
