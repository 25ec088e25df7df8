package exchange

// Metrics counts what the exchange does (nil: nothing counted). Label
// values are fixed words, never a login or a file name.
type Metrics interface {
	// Login counts an attempt by protocol (pigp.ProtocolSFTP, …) and
	// result: "success", "failure" or "expired".
	Login(protocol, result string)
	// Deposit counts a deposit by result, "accepted" (with its size),
	// "refused" or "error".
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
