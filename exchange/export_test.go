package exchange

// CloseUploadFile closes the temporary file of u behind its back, so that
// tests can make every later operation on it fail.
func CloseUploadFile(u *Upload) error { return u.temp.File.Close() }
