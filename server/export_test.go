package server

// SetRekeyThreshold sets the SSH re-key threshold of s before Open
// (tests of transfers across key re-exchanges).
func SetRekeyThreshold(s *Server, bytes uint64) { s.rekeyThreshold = bytes }
