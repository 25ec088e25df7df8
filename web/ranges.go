package web

import (
	"fmt"
	"strconv"
	"strings"
)

// maxRanges bounds the ranges of one Range header: a browser or a
// download manager asks for one; many small ones only cost the server.
const maxRanges = 8

// checkRange checks a Range header against a file of size bytes before
// any arithmetic on its numbers: every number must fit in an int64, there
// are at most maxRanges ranges, each well formed, and at least one
// overlaps the file. It returns "" when the header may go to
// http.ServeContent, else the French reason of the refusal (416).
func checkRange(h string, size int64) string {
	const invalid = "Plage d'octets demandée invalide : "
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return invalid + "seule l'unité « bytes » est acceptée."
	}
	parts := strings.Split(spec, ",")
	if len(parts) > maxRanges {
		return fmt.Sprintf(invalid+"%d plages au plus par requête.", maxRanges)
	}
	number := func(s string) (int64, bool) {
		if s == "" || len(s) > 19 || strings.TrimLeft(s, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	overlap := false
	for _, p := range parts {
		p = strings.TrimSpace(p)
		first, last, ok := strings.Cut(p, "-")
		if !ok {
			return invalid + "chaque plage s'écrit début-fin, début- ou -longueur."
		}
		switch {
		case first == "": // -n: the last n bytes
			n, ok := number(last)
			if !ok {
				return invalid + "nombre hors limites ou mal formé."
			}
			overlap = overlap || (n > 0 && size > 0)
		default:
			start, ok := number(first)
			if !ok {
				return invalid + "nombre hors limites ou mal formé."
			}
			if last != "" {
				end, ok := number(last)
				if !ok {
					return invalid + "nombre hors limites ou mal formé."
				}
				if end < start {
					return invalid + "la fin d'une plage précède son début."
				}
			}
			overlap = overlap || start < size
		}
	}
	if !overlap {
		return fmt.Sprintf("Plage d'octets demandée hors du fichier (%d octets).", size)
	}
	return ""
}
