package detectors

import "testing"

// corWith is a corHarness whose Correlator has cfg.
func corWith(cfg Config) *corHarness {
	h := newCorHarness()
	h.cor = NewCorrelator(cfg, 1, func(e *Event) { h.got = append(h.got, *e) })
	return h
}

// TestDisabledTypeStillFeedsRate: a disabled syn_unanswered is not
// emitted, but its failures still make a failed_connection_rate, whose
// severity the configuration overrides.
func TestDisabledTypeStillFeedsRate(t *testing.T) {
	var cfg Config
	cfg.Disabled[TypeSynUnanswered] = true
	cfg.Severity[TypeFailedConnectionRate] = SeverityCritical
	h := corWith(cfg)
	for i := range 12 {
		at := int64(i+1) * sec / 2
		h.unanswered(v4(192, 0, 2, byte(i+1)), uint64(i+1), at-3*sec, at)
	}
	evs := h.end()
	if len(evs) != 1 || evs[0].Type != TypeFailedConnectionRate || evs[0].Severity != SeverityCritical {
		t.Fatalf("events %+v; want one critical failed_connection_rate", evs)
	}
	if v, _ := evs[0].Lookup(EvFailures); v != 10 {
		t.Errorf("failures %d, want 10", v)
	}
	if s := h.cor.Suppressed[TypeSynUnanswered]; s != 12 {
		t.Errorf("suppressed %d, want 12", s)
	}
	if h.cor.Counts[TypeSynUnanswered] != 0 || h.cor.Counts[TypeFailedConnectionRate] != 1 {
		t.Errorf("counts %v", h.cor.Counts)
	}
}

// TestSetConfigBetweenBatches: a Correlator takes a new threshold and
// type switch from the next item on; a fold window opened before the
// type was disabled does not report.
func TestSetConfigBetweenBatches(t *testing.T) {
	h := corWith(Config{})
	cli := v4(192, 0, 2, 1)
	// Two from one client fold: the second goes into the window's report.
	h.unanswered(cli, 1, 0, 1*sec)
	h.unanswered(cli, 2, 0, 2*sec)
	h.out.Publish(5 * sec)
	if len(h.got) != 1 {
		t.Fatalf("before: %+v", h.got)
	}
	var cfg Config
	cfg.FailedConnections = 3
	cfg.Disabled[TypeSynUnanswered] = true
	h.cor.SetConfig(cfg)
	for i := range 3 {
		h.unanswered(v4(192, 0, 2, byte(10+i)), uint64(10+i), 100*sec, 100*sec+int64(i)*sec)
	}
	evs := h.end()[1:]
	if len(evs) != 1 || evs[0].Type != TypeFailedConnectionRate {
		t.Fatalf("after: %+v; want one failed_connection_rate", evs)
	}
	// 3 after the switch, and the repeat folded before it.
	if s := h.cor.Suppressed[TypeSynUnanswered]; s != 4 {
		t.Errorf("suppressed %d, want 4", s)
	}
}

func TestConfigComparable(t *testing.T) {
	a, b := Config{}.Defaults(), Config{FailedConnections: DefaultFailedConnections}.Defaults()
	if a != b {
		t.Fatal("defaults differ")
	}
	b.Severity[TypeRstStorm] = SeverityNotice
	if a == b {
		t.Fatal("a severity change is not seen")
	}
}
