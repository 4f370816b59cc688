//go:build !linux

package ring

// Live is a live capture; only Linux has one.
type Live struct{}

// OpenLive returns ErrUnsupported: live capture needs Linux's AF_PACKET.
func OpenLive(LiveConfig) (*Live, error) { return nil, ErrUnsupported }

func (l *Live) Interfaces() []Interface { return nil }
func (l *Live) Sources() []Source       { return nil }
func (l *Live) Stats() []IfaceStats     { return nil }
func (l *Live) Stop()                   {}
func (l *Live) Close() error            { return nil }

// LinkUp reports nothing: there is no live capture.
func (l *Live) LinkUp(int) (up, known bool) { return false, false }

// CPUs returns nil: pinning needs Linux.
func CPUs() ([]int, error) { return nil, ErrUnsupported }

// PinThread returns ErrUnsupported.
func PinThread(int) error { return ErrUnsupported }
