package filter

import (
	"fmt"
	"strings"
	"testing"
)

func BenchmarkPerfScratch(b *testing.B) {
	var parts []string
	for i := 0; i < 25; i++ {
		parts = append(parts, fmt.Sprint(i+1))
	}
	e := "port " + strings.Join(parts, " or ")
	for b.Loop() {
		Compile(e, 1, Options{})
	}
}
