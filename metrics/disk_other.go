//go:build !unix

package metrics

func diskSpace(string) (uint64, uint64, error) { return 0, 0, errUnsupported }
