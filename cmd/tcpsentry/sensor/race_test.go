//go:build race

package sensor

// raceEnabled is true under the race detector: tests scale down.
const raceEnabled = true
