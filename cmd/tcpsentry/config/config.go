// Package config reads tcpsentry's YAML configuration file and applies it
// to a command's flag.FlagSet: a key is a flag's long name, and its value
// goes through the flag's own Set, so the file is checked exactly as the
// command line is. Flags given on the command line win over the file.
//
// Per-event-type settings (enabled, severity) and the thresholds that
// belong to one detector live under "detectors:", keyed by event type.
// Errors name the file, the line and the key, on one line.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tcpsentry/tcpsentry/detectors"
)

// DefaultPath is where tcpsentry run looks for its file.
const DefaultPath = "/etc/tcpsentry/tcpsentry.yaml"

// Layout says where the flags of a command live in the file.
type Layout struct {
	// Detectors are the keys under "detectors:", one per event type, in
	// the order of the default file.
	Detectors []Detector
	// Sections group the top-level keys of the default file, in order.
	// Flags in none of them follow under "Other settings".
	Sections []Section
	// Skip names flags that are not settings of the file (--config).
	Skip []string
	// Lists names the repeatable flags, which take a YAML list.
	Lists []string
	// Local names flags whose default depends on the machine (host
	// name, user): the default file has them commented out, so that one
	// file serves many sensors.
	Local []string
}

// Detector is one event type's entry under "detectors:".
type Detector struct {
	Type detectors.Type
	// Flags are the thresholds of this detector, written under it.
	Flags []string
}

// Section is a heading of the default file and the flags under it.
type Section struct {
	Title string
	Flags []string
}

// Keys of an event type's entry besides its threshold flags.
const (
	keyDetectors = "detectors"
	keyEnabled   = "enabled"
	keySeverity  = "severity"
	// severityDefault keeps the detector's own severity.
	severityDefault = "default"
)

// owner returns the type a threshold flag is written under, if any.
func (l *Layout) owner(flagName string) (detectors.Type, bool) {
	for _, d := range l.Detectors {
		if slices.Contains(d.Flags, flagName) {
			return d.Type, true
		}
	}
	return 0, false
}

// Error is a problem in a file: File:Line: Key: Msg.
type Error struct {
	File string
	Line int
	Key  string // dotted path; empty when the problem is not a key's
	Msg  string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
}

// File is a parsed configuration file.
type File struct {
	// Path is the file's name as given.
	Path string
	// Values are the flag settings in file order.
	Values []Value
	// Types are the per-type settings the file makes.
	Types []TypeSetting
}

// Value is one flag's setting: several values for a list.
type Value struct {
	Flag  string
	Key   string // as the file spells its path, for errors
	Items []Item
}

// Item is one scalar and its line.
type Item struct {
	Text string
	Line int
}

// TypeSetting is what the file says of one event type; a nil field is
// not set.
type TypeSetting struct {
	Type     detectors.Type
	Enabled  *bool
	Severity *detectors.Severity // 0: the detector's own
}

// Read reads and parses the file at path.
func Read(path string, fs *flag.FlagSet, lay *Layout) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, fs, lay)
}

// Parse parses data, the file named name. fs holds every flag a key may
// name (the run command's); the values are not checked until Apply.
func Parse(name string, data []byte, fs *flag.FlagSet, lay *Layout) (*File, error) {
	f := &File{Path: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return f, nil // empty: every setting has its default
	}
	root := deref(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return f, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: name, Line: root.Line, Msg: "want settings as key: value lines"}
	}
	p := parser{file: f, fs: fs, lay: lay}
	err := p.mapping(root, "", func(k, v *yaml.Node, path string) error {
		if k.Value == keyDetectors {
			return p.detectors(v)
		}
		fl := fs.Lookup(k.Value)
		if fl == nil || slices.Contains(lay.Skip, k.Value) {
			return p.unknown(k, path)
		}
		if t, ok := lay.owner(k.Value); ok {
			return &Error{File: name, Line: k.Line, Msg: fmt.Sprintf("unknown key %q (it goes under %s: %s:)", path, keyDetectors, t)}
		}
		return p.value(k.Value, path, v)
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

type parser struct {
	file *File
	fs   *flag.FlagSet
	lay  *Layout
}

func (p *parser) errorf(n *yaml.Node, key, format string, args ...any) error {
	return &Error{File: p.file.Path, Line: n.Line, Key: key, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) unknown(k *yaml.Node, path string) error {
	return &Error{File: p.file.Path, Line: k.Line, Msg: fmt.Sprintf("unknown key %q", path)}
}

// mapping calls each for every key of n, a mapping, rejecting keys that
// are not plain strings and duplicates.
func (p *parser) mapping(n *yaml.Node, prefix string, each func(k, v *yaml.Node, path string) error) error {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return &Error{File: p.file.Path, Line: k.Line, Msg: "a key must be a name"}
		}
		path := k.Value
		if prefix != "" {
			path = prefix + "." + k.Value
		}
		if first, ok := seen[k.Value]; ok {
			return &Error{File: p.file.Path, Line: k.Line, Key: path, Msg: fmt.Sprintf("set twice (first on line %d)", first)}
		}
		seen[k.Value] = k.Line
		if err := each(k, v, path); err != nil {
			return err
		}
	}
	return nil
}

// value records flag name's setting from v.
func (p *parser) value(name, path string, v *yaml.Node) error {
	val := Value{Flag: name, Key: path}
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return p.errorf(v, path, `no value (write "" for an empty one)`)
		}
		val.Items = []Item{{v.Value, v.Line}}
	case yaml.SequenceNode:
		if !slices.Contains(p.lay.Lists, name) {
			return p.errorf(v, path, "takes one value, not a list")
		}
		for _, it := range v.Content {
			it = deref(it)
			if it.Kind != yaml.ScalarNode || it.Tag == "!!null" {
				return p.errorf(it, path, "a list item must be a single value")
			}
			val.Items = append(val.Items, Item{it.Value, it.Line})
		}
	default:
		return p.errorf(v, path, "takes a value, not a mapping")
	}
	p.file.Values = append(p.file.Values, val)
	return nil
}

// detectors reads the "detectors:" mapping.
func (p *parser) detectors(v *yaml.Node) error {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		return p.errorf(v, keyDetectors, "want one entry per event type (syn_unanswered: ...)")
	}
	return p.mapping(v, keyDetectors, func(k, tv *yaml.Node, path string) error {
		t, ok := typeNamed(k.Value)
		if !ok {
			return &Error{File: p.file.Path, Line: k.Line, Msg: fmt.Sprintf("unknown key %q (not an event type: %s)", path, typeList())}
		}
		ts := TypeSetting{Type: t}
		if tv.Kind == yaml.ScalarNode && tv.Tag == "!!null" {
			return nil
		}
		if tv.Kind != yaml.MappingNode {
			return p.errorf(tv, path, "want enabled, severity and thresholds under it")
		}
		err := p.mapping(tv, path, func(k, v *yaml.Node, path string) error {
			switch k.Value {
			case keyEnabled:
				b, err := strconv.ParseBool(scalar(v))
				if err != nil || v.Kind != yaml.ScalarNode {
					return p.errorf(v, path, "not true or false: %q", scalar(v))
				}
				ts.Enabled = &b
			case keySeverity:
				s := scalar(v)
				var sev detectors.Severity
				if s != severityDefault {
					if sev, ok = detectors.ParseSeverity(s); !ok || v.Kind != yaml.ScalarNode {
						return p.errorf(v, path, "not a severity: %q (say notice, warning, critical or default)", s)
					}
				}
				ts.Severity = &sev
			default:
				if owner, ok := p.lay.owner(k.Value); !ok || owner != t {
					if ok {
						return &Error{File: p.file.Path, Line: k.Line, Msg: fmt.Sprintf("unknown key %q (%s is a setting of %s)", path, k.Value, owner)}
					}
					return p.unknown(k, path)
				}
				return p.value(k.Value, path, v)
			}
			return nil
		})
		if err != nil {
			return err
		}
		p.file.Types = append(p.file.Types, ts)
		return nil
	})
}

// Apply sets the file's values on fs, except for the flags set on the
// command line (fs.Visit), those fs does not have (another command's)
// and, when only is not nil, those it rejects. Errors name the line and
// key.
func (f *File) Apply(fs *flag.FlagSet, only func(name string) bool) error {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for _, v := range f.Values {
		fl := fs.Lookup(v.Flag)
		if fl == nil || set[v.Flag] || only != nil && !only(v.Flag) {
			continue
		}
		for _, it := range v.Items {
			if err := fs.Set(v.Flag, it.Text); err != nil {
				return &Error{File: f.Path, Line: it.Line, Key: v.Key, Msg: describe(fl, it.Text, err)}
			}
		}
	}
	return nil
}

// Where says where the file sets flag name: its key and the line of its
// last value (the one in force), for errors about the value that no
// single flag's Set can find.
func (f *File) Where(name string) (key string, line int, ok bool) {
	for _, v := range slices.Backward(f.Values) {
		if v.Flag == name && len(v.Items) > 0 {
			return v.Key, v.Items[len(v.Items)-1].Line, true
		}
	}
	return "", 0, false
}

// ApplyTypes sets the per-type switches and severities on cfg.
func (f *File) ApplyTypes(cfg *detectors.Config) {
	for _, ts := range f.Types {
		if ts.Enabled != nil {
			cfg.Disabled[ts.Type] = !*ts.Enabled
		}
		if ts.Severity != nil {
			cfg.Severity[ts.Type] = *ts.Severity
		}
	}
}

// describe turns a flag's Set error into the reason for a file: the
// standard flag types only say "parse error".
func describe(fl *flag.Flag, text string, err error) string {
	msg := err.Error()
	if msg != "parse error" && msg != "value out of range" {
		return msg
	}
	if msg == "value out of range" {
		return fmt.Sprintf("out of range: %q", text)
	}
	g, ok := fl.Value.(flag.Getter)
	if !ok {
		return msg
	}
	switch g.Get().(type) {
	case bool:
		return fmt.Sprintf("not true or false: %q", text)
	case time.Duration:
		return fmt.Sprintf("not a duration: %q (say 500ms, 10s or 5m)", text)
	case int, int64, uint, uint64, float64:
		return fmt.Sprintf("not a number: %q", text)
	}
	return msg
}

// yamlError turns the YAML library's syntax error into file:line: msg.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	// "line N: reason"
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, reason, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(n); err == nil {
				return &Error{File: name, Line: line, Msg: reason}
			}
		}
	}
	return fmt.Errorf("%s: %s", name, msg)
}

// deref follows a YAML alias.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func scalar(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

func typeNamed(s string) (detectors.Type, bool) {
	for t := detectors.TypeNone + 1; t < detectors.NumTypes; t++ {
		if t.String() == s {
			return t, true
		}
	}
	return 0, false
}

func typeList() string {
	var names []string
	for t := detectors.TypeNone + 1; t < detectors.NumTypes; t++ {
		names = append(names, t.String())
	}
	return strings.Join(names, ", ")
}
