package s3

// PartSize exposes the part size chosen for an object of size bytes.
func (s *Store) PartSize(size int64) int64 { return s.partSize(size) }
