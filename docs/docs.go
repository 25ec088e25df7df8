// Package docs embeds the documentation served to départements: the
// cahier des charges (interface contract) in French.
package docs

import "embed"

// FS holds cahier-des-charges.md.
//
//go:embed cahier-des-charges.md
var FS embed.FS
