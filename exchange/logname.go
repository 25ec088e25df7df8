package exchange

import (
	"fmt"
	"regexp"

	"github.com/pigp/pigp"
)

// callLike matches the names of the contract's form (2026_SIRET_stamp.xml),
// with the staging prefixes and suffixes of SFTP clients.
var callLike = regexp.MustCompile(`^(\.in\.)?[0-9]{4}_[0-9]{14}_[0-9]{14}\.xml(\.filepart|\.[0-9a-f]+\.partial)?$`)

// RefusedNameAttrs are the log attributes of an upload refused by its name
// (SFTP and the portal). A name of the contract's form is logged with the
// reason; any other name, chosen freely by the client, may carry personal
// data (a beneficiary's name), so only its length and the error code are
// logged. The audit trail keeps it literally.
func RefusedNameAttrs(name string, err error) []any {
	if callLike.MatchString(name) {
		return []any{"name", name, "reason", pigp.ErrorMessage(err)}
	}
	return []any{"name", fmt.Sprintf("(%d caractères, voir le journal d'audit)", len(name)), "code", pigp.ErrorCode(err)}
}
