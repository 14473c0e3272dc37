package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Value is one documented key of values.yaml: a row of the README's table.
type Value struct {
	Key         string // dotted path, e.g. image.agent.tag
	Type        string // string, int, float, bool, list, object or null
	Default     string // the YAML default as compact JSON, or an @default override
	Description string
}

const (
	descMarker    = "# --"
	defaultMarker = "# @default --"
)

// ParseValues returns the documented values of a values.yaml in file order.
//
// A key is documented by a comment block directly above it whose last
// paragraph starts with "# --"; the lines after the marker continue the
// description, and "# @default -- text" replaces the rendered default (for a
// default computed by the templates). A mapping whose keys carry descriptions
// is descended into; a mapping without them is one row with the whole map as
// its default. Every other key must be documented: an undocumented value is an
// error, so adding a value without describing it fails `chartdoc -check`.
func ParseValues(src []byte) ([]Value, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("parse values: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("values: top level is not a mapping (line %d)", root.Line)
	}
	var out []Value
	var errs []error
	walk(root, "", &out, &errs)
	return out, errors.Join(errs...)
}

func walk(m *yaml.Node, prefix string, out *[]Value, errs *[]error) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := prefix + keySegment(k.Value)
		desc, def, documented := parseComment(k.HeadComment)
		if v.Kind == yaml.MappingNode && hasDocumentedKey(v) {
			if documented {
				*errs = append(*errs, fmt.Errorf("values line %d: %s has a description and so do keys below it; describe one or the other", k.Line, key))
			}
			walk(v, key+".", out, errs)
			continue
		}
		if !documented {
			*errs = append(*errs, fmt.Errorf("values line %d: %s has no description: add a %q comment directly above it", k.Line, key, descMarker))
			continue
		}
		if def == "" {
			var err error
			if def, err = renderDefault(v); err != nil {
				*errs = append(*errs, fmt.Errorf("values line %d: %s: %w", k.Line, key, err))
				continue
			}
		}
		*out = append(*out, Value{Key: key, Type: typeOf(v), Default: def, Description: desc})
	}
}

// keySegment quotes a key that itself contains a dot (kubernetes.io/os), so
// the dotted path stays unambiguous, as helm-docs does.
func keySegment(k string) string {
	if strings.ContainsAny(k, ". ") {
		return fmt.Sprintf("%q", k)
	}
	return k
}

func hasDocumentedKey(m *yaml.Node) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if _, _, ok := parseComment(m.Content[i].HeadComment); ok {
			return true
		}
		if v := m.Content[i+1]; v.Kind == yaml.MappingNode && hasDocumentedKey(v) {
			return true
		}
	}
	return false
}

// parseComment extracts the description after the last "# --" marker of a
// head comment. Plain comments before the marker stay private to values.yaml.
// Lines join with spaces; an empty comment line starts a new paragraph.
func parseComment(head string) (desc, def string, ok bool) {
	lines := strings.Split(head, "\n")
	start := -1
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if l == descMarker || strings.HasPrefix(l, descMarker+" ") {
			start = i
		}
	}
	if start < 0 {
		return "", "", false
	}
	var paras [][]string
	cur := []string{strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[start]), descMarker))}
	for _, l := range lines[start+1:] {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, defaultMarker) {
			def = strings.TrimSpace(strings.TrimPrefix(l, defaultMarker))
			continue
		}
		text := strings.TrimSpace(strings.TrimPrefix(l, "#"))
		if text == "" {
			paras = append(paras, cur)
			cur = nil
			continue
		}
		cur = append(cur, text)
	}
	paras = append(paras, cur)
	var parts []string
	for _, p := range paras {
		if s := strings.Join(p, " "); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "<br><br>"), def, true
}

func typeOf(v *yaml.Node) string {
	switch v.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "object"
	case yaml.AliasNode:
		return typeOf(v.Alias)
	}
	switch v.ShortTag() {
	case "!!int":
		return "int"
	case "!!float":
		return "float"
	case "!!bool":
		return "bool"
	case "!!null":
		return "null"
	}
	return "string"
}

// renderDefault renders a default as compact JSON in a code span, the form a
// user types after --set-json and unambiguous about "" versus null.
func renderDefault(v *yaml.Node) (string, error) {
	var x any
	if err := v.Decode(&x); err != nil {
		return "", fmt.Errorf("decode default: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return "", fmt.Errorf("render default: %w", err)
	}
	return "`" + strings.TrimSuffix(buf.String(), "\n") + "`", nil
}
