//go:build race

// pigp

package ssh

// raceEnabled: sync.Pool drops a quarter of what it is given under the race
// detector, on purpose.
const raceEnabled = true
