package detectors

// Type is the detector that fired: event.action on the wire. The names
// are stable API (DESIGN.md section 4); a change is a schema change.
type Type uint8

const (
	TypeNone Type = iota
	TypeSynackRetransmitAfterAck
	TypeInvalidAck
	TypeRstAfterInvalidAck
	TypeRstIgnored
	TypeRequestUnanswered
	TypeSynUnanswered
	TypeTSRegression
	TypePortReuseRejected
	TypeConnectionRefused
	TypeFailedConnectionRate
	TypeRstStorm
	NumTypes
)

var typeNames = [NumTypes]string{
	TypeNone:                     "none",
	TypeSynackRetransmitAfterAck: "synack_retransmit_after_ack",
	TypeInvalidAck:               "invalid_ack",
	TypeRstAfterInvalidAck:       "rst_after_invalid_ack",
	TypeRstIgnored:               "rst_ignored",
	TypeRequestUnanswered:        "request_unanswered",
	TypeSynUnanswered:            "syn_unanswered",
	TypeTSRegression:             "ts_regression",
	TypePortReuseRejected:        "port_reuse_rejected",
	TypeConnectionRefused:        "connection_refused",
	TypeFailedConnectionRate:     "failed_connection_rate",
	TypeRstStorm:                 "rst_storm",
}

func (t Type) String() string {
	if t < NumTypes {
		return typeNames[t]
	}
	return "unknown"
}

// Cause is the probable cause: event.reason on the wire.
type Cause uint8

const (
	CauseNone Cause = iota
	CauseTCPDeferAccept
	CauseAcceptQueueOverflow
	CauseAckLostBeforeServer
	CauseSeqTranslationMiddlebox
	CauseAckOfUnseenSegment
	CauseRstInWindow
	CauseRstOutOfWindow
	CauseServerDiscarding
	CausePathBlackhole
	CausePAWSNATTimestamps
	CauseListenQueueOverflow
	CauseSilentDrop
	CauseNATTimestamps
	CauseTimeWaitPAWS
	CauseTimeWaitSeq
	CauseNoListener
	CauseRstStorm
	NumCauses
)

var causeNames = [NumCauses]string{
	CauseNone:                    "",
	CauseTCPDeferAccept:          "tcp_defer_accept",
	CauseAcceptQueueOverflow:     "accept_queue_overflow",
	CauseAckLostBeforeServer:     "ack_lost_before_server",
	CauseSeqTranslationMiddlebox: "seq_translation_middlebox",
	CauseAckOfUnseenSegment:      "ack_of_unseen_segment",
	CauseRstInWindow:             "rst_in_window",
	CauseRstOutOfWindow:          "rst_out_of_window",
	CauseServerDiscarding:        "server_discarding",
	CausePathBlackhole:           "path_blackhole",
	CausePAWSNATTimestamps:       "paws_nat_timestamps",
	CauseListenQueueOverflow:     "listen_queue_overflow",
	CauseSilentDrop:              "silent_drop",
	CauseNATTimestamps:           "nat_timestamps",
	CauseTimeWaitPAWS:            "time_wait_paws",
	CauseTimeWaitSeq:             "time_wait_seq",
	CauseNoListener:              "no_listener",
	CauseRstStorm:                "rst_storm",
}

func (c Cause) String() string {
	if c < NumCauses {
		return causeNames[c]
	}
	return "unknown"
}

// Severity is event.severity: 1 notice, 2 warning, 3 critical.
type Severity uint8

const (
	SeverityNotice   Severity = 1
	SeverityWarning  Severity = 2
	SeverityCritical Severity = 3
)

func (s Severity) String() string {
	switch s {
	case SeverityNotice:
		return "notice"
	case SeverityWarning:
		return "warning"
	case SeverityCritical:
		return "critical"
	}
	return "unknown"
}

// ParseSeverity returns the severity named s (notice, warning, critical).
func ParseSeverity(s string) (Severity, bool) {
	for v := SeverityNotice; v <= SeverityCritical; v++ {
		if s == v.String() {
			return v, true
		}
	}
	return 0, false
}

// severityNotes says the severity each type is emitted with when
// Config.Severity does not replace it.
var severityNotes = [NumTypes]string{
	TypeSynackRetransmitAfterAck: "warning",
	TypeInvalidAck:               "warning; notice when the cause is ack_of_unseen_segment",
	TypeRstAfterInvalidAck:       "warning",
	TypeRstIgnored:               "warning",
	TypeRequestUnanswered:        "warning",
	TypeSynUnanswered:            "warning; critical when the cause is paws_nat_timestamps",
	TypeTSRegression:             "notice",
	TypePortReuseRejected:        "warning",
	TypeConnectionRefused:        "notice",
	TypeFailedConnectionRate:     "warning",
	TypeRstStorm:                 "warning",
}

// SeverityNote says in words the severity t's events have by default.
func (t Type) SeverityNote() string {
	if t < NumTypes {
		return severityNotes[t]
	}
	return ""
}

// EvidenceKey names one value in tcpsentry.evidence. Names are stable API.
type EvidenceKey uint8

const (
	EvNone EvidenceKey = iota
	EvSynRetransmits
	EvWaitMs
	EvRstDelayMs
	EvSynackRetransmitsAfterAck
	EvHandshakeToFirstDataMs
	EvSynackRetransmitDelayMs
	EvClientUnackedBytes
	EvAck
	EvExpectedAckMin
	EvExpectedAckMax
	EvAckDistance
	EvRstSeq
	EvRstInWindow
	EvReceiverNextSeq
	EvReceiverWindow
	EvSegmentsAfterRst
	EvIgnoredMs
	EvRetransmits
	EvSeq
	EvBytes
	EvTSval
	EvPredictedTSval
	EvRegressionTicks
	EvClockHz
	EvPreviousTSval
	EvSincePreviousMs
	EvFailures
	EvRefused
	EvUnanswered
	EvWindowS
	EvRatePerS
	EvRstEndings
	EvEndings
	EvRstSharePct
	NumEvidenceKeys
)

var evidenceNames = [NumEvidenceKeys]string{
	EvNone:                      "none",
	EvSynRetransmits:            "syn_retransmits",
	EvWaitMs:                    "wait_ms",
	EvRstDelayMs:                "rst_delay_ms",
	EvSynackRetransmitsAfterAck: "synack_retransmits_after_ack",
	EvHandshakeToFirstDataMs:    "handshake_to_first_data_ms",
	EvSynackRetransmitDelayMs:   "synack_retransmit_delay_ms",
	EvClientUnackedBytes:        "client_unacked_bytes",
	EvAck:                       "ack",
	EvExpectedAckMin:            "expected_ack_min",
	EvExpectedAckMax:            "expected_ack_max",
	EvAckDistance:               "ack_distance",
	EvRstSeq:                    "rst_seq",
	EvRstInWindow:               "rst_in_window",
	EvReceiverNextSeq:           "receiver_next_seq",
	EvReceiverWindow:            "receiver_window",
	EvSegmentsAfterRst:          "segments_after_rst",
	EvIgnoredMs:                 "ignored_for_ms",
	EvRetransmits:               "retransmits",
	EvSeq:                       "seq",
	EvBytes:                     "bytes",
	EvTSval:                     "tsval",
	EvPredictedTSval:            "predicted_tsval",
	EvRegressionTicks:           "regression_ticks",
	EvClockHz:                   "clock_hz",
	EvPreviousTSval:             "previous_tsval",
	EvSincePreviousMs:           "since_previous_ms",
	EvFailures:                  "failures",
	EvRefused:                   "refused",
	EvUnanswered:                "unanswered",
	EvWindowS:                   "window_s",
	EvRatePerS:                  "rate_per_s",
	EvRstEndings:                "rst_endings",
	EvEndings:                   "endings",
	EvRstSharePct:               "rst_share_pct",
}

func (k EvidenceKey) String() string {
	if k < NumEvidenceKeys {
		return evidenceNames[k]
	}
	return "unknown"
}

// Kind says how an evidence value is written.
type Kind uint8

const (
	KindInt   Kind = iota // an integer
	KindBool              // 0 false, otherwise true
	KindMilli             // thousandths, written as a decimal number
)

// Kind returns how k's value is written.
func (k EvidenceKey) Kind() Kind {
	switch k {
	case EvRstInWindow:
		return KindBool
	case EvRatePerS:
		return KindMilli
	}
	return KindInt
}
