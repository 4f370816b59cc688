package events

import (
	"encoding/base64"
	"encoding/hex"
	"net/netip"
	"testing"
)

// communityIDVectors are the TCP rows of the Community ID spec's baseline
// data, copied exactly: repository corelight/community-id-spec, files
// baseline/baseline_deflt.json (seed 0), baseline/baseline_seed1.json
// (seed 1) and the tables of baseline/README.md ("Default settings" and
// "A custom seed=1 value"), commit c4ec2bc40d65ddbcbdd642582bf5609797a80772.
// Each flow appears in both directions with the same ID, as in the data.
//
// The rows marked "python" are not from the spec. They cover the
// equal-address case (the ports decide the order) and were computed with
// an independent implementation, Python's hashlib and base64:
//
//	def cid(seed, af, s, d, sp, dp, proto=6):
//	    a, b = socket.inet_pton(af, s), socket.inet_pton(af, d)
//	    if (a, sp) > (b, dp): a, b, sp, dp = b, a, dp, sp
//	    data = struct.pack('!H', seed) + a + b + struct.pack('!BBHH', proto, 0, sp, dp)
//	    return '1:' + base64.b64encode(hashlib.sha1(data).digest()).decode()
//
// which reproduces every spec row above before giving the new ones.
var communityIDVectors = []struct {
	seed         uint16
	src, dst     string
	sport, dport uint16
	want         string
}{
	// baseline/README.md, default settings (seed 0).
	{0, "1.2.3.4", "5.6.7.8", 1122, 3344, "1:wCb3OG7yAFWelaUydu0D+125CLM="},
	{0, "5.6.7.8", "1.2.3.4", 3344, 1122, "1:wCb3OG7yAFWelaUydu0D+125CLM="},
	// baseline/baseline_deflt.json (seed 0).
	{0, "128.232.110.120", "66.35.250.204", 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="},
	{0, "66.35.250.204", "128.232.110.120", 80, 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="},
	{0, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", 63943, 25, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="},
	{0, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", 25, 63943, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="},
	// baseline/README.md, seed=1.
	{1, "1.2.3.4", "5.6.7.8", 1122, 3344, "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="},
	{1, "5.6.7.8", "1.2.3.4", 3344, 1122, "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="},
	// baseline/baseline_seed1.json.
	{1, "128.232.110.120", "66.35.250.204", 34855, 80, "1:3V71V58M3Ksw/yuFALMcW0LAHvc="},
	{1, "66.35.250.204", "128.232.110.120", 80, 34855, "1:3V71V58M3Ksw/yuFALMcW0LAHvc="},
	{1, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", 63943, 25, "1:eJYTW6AOzFLlSUoESovMjnu7rMw="},
	{1, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", 25, 63943, "1:eJYTW6AOzFLlSUoESovMjnu7rMw="},
	// python: equal addresses, the ports decide.
	{0, "10.0.0.1", "10.0.0.1", 8080, 80, "1:NYInnG4ZqIZG6i/y2qSwXnS92RI="},
	{0, "10.0.0.1", "10.0.0.1", 80, 8080, "1:NYInnG4ZqIZG6i/y2qSwXnS92RI="},
	{7, "::1", "::1", 40000, 443, "1:G5XUu23m8JsAqAr1lKDL4Oa8YP4="},
	// python: the addresses of the DESIGN.md section 3 example.
	{0, "192.0.2.7", "10.0.0.5", 51234, 80, "1:k7jgm193PbK/KICfks2Eyi6vuUo="},
}

// addr16 returns s as the [16]byte of a detectors.Endpoint and its family.
func addr16(t testing.TB, s string) (a [16]byte, family uint8) {
	t.Helper()
	ip := netip.MustParseAddr(s)
	if ip.Is4() {
		v4 := ip.As4()
		copy(a[:], v4[:])
		return a, 4
	}
	return ip.As16(), 6
}

func TestAppendCommunityIDVectors(t *testing.T) {
	for _, v := range communityIDVectors {
		src, fam := addr16(t, v.src)
		dst, _ := addr16(t, v.dst)
		got := string(AppendCommunityID(nil, v.seed, fam, src, dst, v.sport, v.dport, 6))
		if got != v.want {
			t.Errorf("seed %d %s:%d -> %s:%d: got %s, want %s", v.seed, v.src, v.sport, v.dst, v.dport, got, v.want)
		}
		if len(got) != CommunityIDLen {
			t.Errorf("len %d, want CommunityIDLen %d", len(got), CommunityIDLen)
		}
	}
}

// TestAppendCommunityIDNoBase64 checks the digest itself against the
// spec's "No base64-encoding" table (baseline/README.md).
func TestAppendCommunityIDNoBase64(t *testing.T) {
	src, fam := addr16(t, "1.2.3.4")
	dst, _ := addr16(t, "5.6.7.8")
	id := AppendCommunityID(nil, 0, fam, src, dst, 1122, 3344, 6)
	sum, err := base64.StdEncoding.DecodeString(string(id[2:]))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(sum), "c026f7386ef200559e95a53276ed03fb5db908b3"; got != want {
		t.Errorf("digest %s, want %s", got, want)
	}
}

// TestAppendCommunityIDIPv4Tail: only the first 4 bytes of an IPv4
// address count, whatever the rest of the array holds.
func TestAppendCommunityIDIPv4Tail(t *testing.T) {
	src, _ := addr16(t, "1.2.3.4")
	dst, _ := addr16(t, "5.6.7.8")
	want := string(AppendCommunityID(nil, 0, 4, src, dst, 1122, 3344, 6))
	for i := 4; i < 16; i++ {
		src[i], dst[i] = 0xff, byte(i)
	}
	if got := string(AppendCommunityID(nil, 0, 4, src, dst, 1122, 3344, 6)); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestAppendCommunityIDAppends(t *testing.T) {
	src, fam := addr16(t, "1.2.3.4")
	dst, _ := addr16(t, "5.6.7.8")
	got := string(AppendCommunityID([]byte("x="), 0, fam, src, dst, 1122, 3344, 6))
	if want := "x=1:wCb3OG7yAFWelaUydu0D+125CLM="; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

var sinkBytes []byte

func TestAppendCommunityIDNoAllocs(t *testing.T) {
	src, _ := addr16(t, "2001:470:e5bf:dead:4957:2174:e82c:4887")
	dst, _ := addr16(t, "2607:f8b0:400c:c03::1a")
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(1000, func() {
		sinkBytes = AppendCommunityID(buf[:0], 1, 6, src, dst, 63943, 25, 6)
	}); n != 0 {
		t.Errorf("AppendCommunityID allocates %v times per run", n)
	}
}

func BenchmarkAppendCommunityID(b *testing.B) {
	src, _ := addr16(b, "2001:470:e5bf:dead:4957:2174:e82c:4887")
	dst, _ := addr16(b, "2607:f8b0:400c:c03::1a")
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendCommunityID(buf[:0], 1, 6, src, dst, 63943, 25, 6)
	}
}
