package detectors

// Folding bounds the events of one (type, client, server, port), but a
// flood from many clients (a SYN flood from random sources) brings a new
// client with nearly every SYN and folds nothing: one syn_unanswered or
// connection_refused per SYN would reach the event stream, the SIEM and
// whoever is on call. The Correlator therefore also limits the events it
// writes of each type with a token bucket on capture time: EventRate a
// second, EventBurst at once. A type has its own bucket, so a flood of
// one type does not silence the others, nor the aggregate event that
// sums it up (failed_connection_rate names the flooded server:port).
// The limit acts on the output only, after folding and the
// cross-connection findings: an event it refuses still counts as a
// failure, still folds its repeats, and is counted in
// Correlator.RateLimited, so that the events written plus those refused
// are exactly the events written without a limit.

// bucket is one type's token bucket, in billionths of an event, so that
// a refill is exact in integers: an event's worth every 1e9/rate ns.
type bucket struct {
	tokens int64
	last   int64 // capture time of the last refill
	used   bool
}

// take takes one event out of b at capture time at, refilling it with
// rate events a second up to burst; false when it is empty. Time that
// runs backwards (the end-of-capture flush, reordered input) refills
// nothing.
func (b *bucket) take(at int64, rate, burst int) bool {
	full := int64(burst) * 1e9
	if !b.used {
		b.used, b.tokens, b.last = true, full, at
	}
	if dt := at - b.last; dt > 0 {
		b.last = at
		if r := int64(rate); dt > (full-b.tokens)/r {
			b.tokens = full
		} else {
			b.tokens += dt * r
		}
	}
	b.tokens = min(b.tokens, full) // a reload may have lowered the burst
	if b.tokens < 1e9 {
		return false
	}
	b.tokens -= 1e9
	return true
}
