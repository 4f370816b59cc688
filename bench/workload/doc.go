// Package workload generates benchmark traffic with a known answer:
// ordinary HTTP-like connections by the hundred thousand or million, open
// at once, with keep-alive, loss and retransmissions, both close orders,
// IPv4 and IPv6, some 802.1Q-tagged — and, between dedicated addresses,
// instances of every anomaly of the detector catalogue, shaped as the
// real kernel scenarios of bench/netlab show them. Write returns the
// ground truth: every event tcpsentry must report about the capture, and
// Score measures recall and precision against it. Output is the same for
// the same options (and seed).
package workload
