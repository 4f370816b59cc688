//go:build !abtest

package sensor

import "github.com/tcpsentry/tcpsentry/ring"

// abBuild is false without the abtest tag: Process never asks abTrial,
// and the compiler drops the calls.
const abBuild = false

type abTrial struct{}

func (*abTrial) active() bool             { return false }
func (*abTrial) run(*Worker, *ring.Batch) {}
func (*abTrial) report()                  {}
