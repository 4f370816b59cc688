package config

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// WriteDefault writes a file that sets every flag of fs to its default,
// each under its usage text, and every event type enabled at its own
// severity. It is made from fs so that it cannot drift from the flags;
// header is its opening comment.
func WriteDefault(w io.Writer, fs *flag.FlagSet, lay *Layout, header string) error {
	var b strings.Builder
	comment(&b, "", header)
	done := map[string]bool{}
	for _, s := range lay.Skip {
		done[s] = true
	}
	for _, d := range lay.Detectors {
		for _, f := range d.Flags {
			done[f] = true
		}
	}
	section := func(title string, names []string) {
		var fls []*flag.Flag
		for _, n := range names {
			if fl := fs.Lookup(n); fl != nil && !done[n] {
				fls = append(fls, fl)
				done[n] = true
			}
		}
		if len(fls) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n# ---- %s ----\n", title)
		for _, fl := range fls {
			b.WriteByte('\n')
			setting(&b, "", fl, lay, "")
		}
	}
	for _, s := range lay.Sections {
		section(s.Title, s.Flags)
	}
	var rest []string
	fs.VisitAll(func(fl *flag.Flag) { rest = append(rest, fl.Name) })
	section("Other settings", rest)

	fmt.Fprintf(&b, "\n# ---- Detectors ----\n\n")
	comment(&b, "", "One entry per event type (docs/detectors.md): enabled: false stops its "+
		"events (the detector still runs, so a disabled syn_unanswered or connection_refused "+
		"still counts towards failed_connection_rate); severity: notice, warning or critical "+
		"replaces the type's own, default keeps it. A running 'tcpsentry run' applies this "+
		"section and fold on SIGHUP.")
	fmt.Fprintf(&b, "%s:\n", keyDetectors)
	for _, d := range lay.Detectors {
		fmt.Fprintf(&b, "  %s:\n", d.Type)
		fmt.Fprintf(&b, "    %s: true\n", keyEnabled)
		fmt.Fprintf(&b, "    %s: %s  # %s\n", keySeverity, severityDefault, d.Type.SeverityNote())
		for _, n := range d.Flags {
			if fl := fs.Lookup(n); fl != nil {
				setting(&b, "    ", fl, lay, d.Type.String()+": ")
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// setting writes one flag's usage, less prefix, as a comment and its
// default.
func setting(b *strings.Builder, indent string, fl *flag.Flag, lay *Layout, prefix string) {
	_, usage := flag.UnquoteUsage(fl)
	comment(b, indent, strings.TrimPrefix(usage, prefix))
	v := fl.DefValue
	switch {
	case slices.Contains(lay.Lists, fl.Name):
		v = "[]"
		if fl.DefValue != "" {
			v = "[" + quote(fl.DefValue) + "]"
		}
	case isString(fl) || v == "":
		v = quote(v)
	}
	if slices.Contains(lay.Local, fl.Name) {
		fmt.Fprintf(b, "%s# %s: %s  (default here; set it per sensor)\n", indent, fl.Name, v)
		return
	}
	fmt.Fprintf(b, "%s%s: %s\n", indent, fl.Name, v)
}

func isString(fl *flag.Flag) bool {
	g, ok := fl.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, ok = g.Get().(string)
	return ok
}

// quote writes s as a YAML scalar, quoted where YAML would read it as
// something else.
func quote(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// comment writes text as '#' lines of at most about 76 columns.
func comment(b *strings.Builder, indent, text string) {
	for _, para := range strings.Split(text, "\n") {
		line := indent + "#"
		for _, w := range strings.Fields(para) {
			if len(line)+1+len(w) > 76 && len(line) > len(indent)+1 {
				b.WriteString(line + "\n")
				line = indent + "#"
			}
			line += " " + w
		}
		b.WriteString(line + "\n")
	}
}
