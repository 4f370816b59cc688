package events

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
)

// communityIDMaxInput is the longest Community ID v1 hash input: seed (2),
// two IPv6 addresses (32), protocol and padding (2), two ports (4).
const communityIDMaxInput = 2 + 16 + 16 + 2 + 4

// CommunityIDLen is the length of a Community ID v1 string: "1:" and the
// base64 form of a 20-byte SHA-1 digest.
const CommunityIDLen = 2 + 28

// AppendCommunityID appends the Community ID v1 of a flow to dst
// (https://github.com/corelight/community-id-spec): "1:" followed by the
// base64 (standard alphabet, padded) SHA-1 of the seed (2 bytes, big
// endian), the source and destination addresses, the protocol number, one
// zero byte of padding, and the source and destination ports (big endian).
// The endpoints are ordered first so that the numerically smaller
// (address, port) comes first; equal addresses are ordered by port. The
// same flow seen in either direction thus gets the same ID.
//
// family 4 hashes the first 4 bytes of each address; any other value hashes
// all 16 (the same convention as detectors.Endpoint.AddrOf). The ports are
// hashed for every proto, which is right for TCP, UDP and SCTP; ICMP and
// port-less protocols need the spec's other layouts, which tcpsentry does
// not emit. AppendCommunityID allocates nothing when dst has room for
// CommunityIDLen more bytes.
func AppendCommunityID(dst []byte, seed uint16, family uint8, srcIP, dstIP [16]byte, srcPort, dstPort uint16, proto uint8) []byte {
	n := 16
	if family == 4 {
		n = 4
	}
	a, b := srcIP[:n], dstIP[:n]
	if c := bytes.Compare(a, b); c > 0 || (c == 0 && srcPort > dstPort) {
		a, b = b, a
		srcPort, dstPort = dstPort, srcPort
	}

	var in [communityIDMaxInput]byte
	binary.BigEndian.PutUint16(in[0:], seed)
	i := 2
	i += copy(in[i:], a)
	i += copy(in[i:], b)
	in[i] = proto
	in[i+1] = 0
	binary.BigEndian.PutUint16(in[i+2:], srcPort)
	binary.BigEndian.PutUint16(in[i+4:], dstPort)
	sum := sha1.Sum(in[:i+6])

	dst = append(dst, '1', ':')
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}
