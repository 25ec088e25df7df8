//go:build !race

// pigp

package ssh

const raceEnabled = false
