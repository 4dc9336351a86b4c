package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// KeyError is a value in agent.yaml that cannot be used: which key, on
// which line, and what a good value looks like. yaml.v3's own messages
// ("cannot unmarshal !!seq into map[string]string") name neither the key
// nor a fix.
type KeyError struct {
	File string // the file read; empty for Parse
	Line int    // 1-based; 0 when not known
	Key  string // dotted path: supervisor.ready_timeout, labels.env
	Msg  string
}

// Error is "file:line: key: message", the form editors jump to.
func (e *KeyError) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
	case e.File != "":
		return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Key, e.Msg)
	}
	return e.Key + ": " + e.Msg
}

// Decode fills the struct v points to from the YAML document b, key by
// key, so that every error is a *KeyError naming its key. Keys are the
// yaml tags of the struct's fields (a field added is known without more
// code); other keys are refused. agent.yaml and molt serve's config file
// are read with it.
func Decode(b []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: decode into %T, want a pointer to a struct", v)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty, or only comments
	}
	return decodeStruct(doc.Content[0], rv.Elem(), "")
}

var durationType = reflect.TypeFor[Duration]()

func decodeStruct(n *yaml.Node, v reflect.Value, prefix string) error {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	fields := yamlFields(v.Type())
	if n.Kind != yaml.MappingNode {
		key := strings.TrimSuffix(prefix, ".")
		if key == "" {
			return &KeyError{Line: n.Line, Key: "(top level)", Msg: fmt.Sprintf("%s, want keys and values (e.g. server: https://molt.example.com:8443)", shown(n))}
		}
		return &KeyError{Line: n.Line, Key: key, Msg: fmt.Sprintf("%s, want a mapping of %s", shown(n), strings.Join(sortedKeys(fields), ", "))}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := prefix + k.Value
		if line, dup := seen[k.Value]; dup {
			return &KeyError{Line: k.Line, Key: key, Msg: fmt.Sprintf("given twice (first on line %d)", line)}
		}
		seen[k.Value] = k.Line
		idx, ok := fields[k.Value]
		if !ok {
			return &KeyError{Line: k.Line, Key: key, Msg: unknownKey(k.Value, fields)}
		}
		f := v.Field(idx)
		if f.Kind() == reflect.Struct && f.Type() != durationType {
			if err := decodeStruct(val, f, key+"."); err != nil {
				return err
			}
			continue
		}
		if err := decodeValue(val, f, key); err != nil {
			return err
		}
	}
	return nil
}

// decodeValue decodes one value into f, or says what key wants instead.
func decodeValue(n *yaml.Node, f reflect.Value, key string) error {
	n = resolve(n)
	t := f.Type()
	if t.Kind() == reflect.Map && n.Kind == yaml.MappingNode {
		// Each entry on its own, so a bad one is named: labels.env.
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			ev := reflect.New(t.Elem()).Elem()
			if err := decodeValue(val, ev, key+"."+k.Value); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k.Value), ev)
		}
		f.Set(m)
		return nil
	}
	if isInt(t) && n.ShortTag() != "!!int" {
		// yaml.v3 would truncate 1.5 to 1.
		return &KeyError{Line: n.Line, Key: key, Msg: wantFor(n, t, nil)}
	}
	p := reflect.New(t)
	if err := n.Decode(p.Interface()); err != nil {
		if _, ok := err.(*yaml.TypeError); ok || t == durationType {
			return &KeyError{Line: n.Line, Key: key, Msg: wantFor(n, t, err)}
		}
		return &KeyError{Line: n.Line, Key: key, Msg: err.Error()}
	}
	f.Set(p.Elem())
	return nil
}

// wantFor says what was given and what a good value of type t looks like.
func wantFor(n *yaml.Node, t reflect.Type, err error) string {
	if t == durationType {
		return err.Error() // Duration's own message has the example
	}
	if isInt(t) {
		return fmt.Sprintf("%s is not a whole number (e.g. 500)", shown(n))
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return fmt.Sprintf("%s is not true or false", shown(n))
	case reflect.String:
		return fmt.Sprintf("%s, want a single value (a string; quote it if it has a ':' or starts with '[' or '{')", shown(n))
	case reflect.Slice:
		return fmt.Sprintf("%s, want a list (e.g. [a, b], or one \"- a\" line per item)", shown(n))
	case reflect.Map:
		return fmt.Sprintf("%s, want a mapping of names to values (e.g. {env: prod, role: db})", shown(n))
	}
	return fmt.Sprintf("%s cannot be used here", shown(n))
}

// isInt says whether t (or what it points to) is a plain integer; a type
// with its own UnmarshalYAML (Duration) says itself what it takes.
func isInt(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return true
	}
	return false
}

// shown describes a node as an operator would see it in the file.
func shown(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return fmt.Sprintf("%q", n.Value)
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// yamlFields maps the yaml key of each field of struct type t to its index.
func yamlFields(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out[name] = i
		}
	}
	return out
}

func sortedKeys(fields map[string]int) []string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func unknownKey(key string, fields map[string]int) string {
	known := sortedKeys(fields)
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		for _, k := range known {
			if len(k) >= 4 && (strings.HasPrefix(key, k) || (strings.HasPrefix(k, key) && len(key) >= 4)) {
				best = k // listen_addr: listen; trusted: trusted_keys
				break
			}
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key; did you mean %s? (known: %s)", best, strings.Join(known, ", "))
	}
	return fmt.Sprintf("unknown key (known: %s)", strings.Join(known, ", "))
}

// editDistance is the Levenshtein distance, for suggesting a misspelt key.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
