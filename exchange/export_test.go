package exchange

import "github.com/pigp/pigp"

// CloseUploadFile closes the temporary file of u (an upload of
// BeginDeposit) behind its back, so that tests can make every later
// operation on it fail.
func CloseUploadFile(u pigp.Upload) error { return u.(*upload).temp.File.Close() }
