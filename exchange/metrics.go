package exchange

// Metrics counts what the exchange does (nil: nothing counted). Label
// values are fixed words, never a login or a file name.
type Metrics interface {
	// Login counts an attempt by protocol (pigp.ProtocolSFTP, …) and
	// result: "success", "failure", "expired" or "throttled" (refused
	// without the password or key looked at: the guard blocks the client,
	// or too many password checks are waiting).
	Login(protocol, result string)
	// Deposit counts a deposit by result, "accepted" (with its size),
	// "duplicate" (a retry answered with the first deposit), "refused" or
	// "error".
	Deposit(result string, size int64)
	// Download counts a recorded download.
	Download()
}

func (s *Service) countLogin(protocol, result string) {
	if s.Metrics != nil {
		s.Metrics.Login(protocol, result)
	}
}

func (s *Service) countDeposit(result string, size int64) {
	if s.Metrics != nil {
		s.Metrics.Deposit(result, size)
	}
}
