package persist

// Small readers for the formats the managers share: INI (systemd units,
// NetworkManager keyfiles), backslash-continued lines, and block YAML.

import "strings"

// joinContinued splits text into lines, joining a line that ends with a
// backslash to the next one (interfaces(5), systemd's unit syntax).
func joinContinued(text string) []string {
	var out []string
	cur := ""
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimRight(l, "\r")
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\")
			continue
		}
		out = append(out, cur+l)
		cur = ""
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

type kv struct{ key, value string }

type ini []struct {
	name string
	kvs  []kv
}

// parseINI reads systemd unit and NetworkManager keyfile syntax: [Section]
// headers, key=value lines, whole-line comments starting with # or ;.
func parseINI(text string) ini {
	var out ini
	for _, l := range joinContinued(text) {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			out = append(out, struct {
				name string
				kvs  []kv
			}{name: l[1 : len(l)-1]})
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || len(out) == 0 {
			continue
		}
		out[len(out)-1].kvs = append(out[len(out)-1].kvs, kv{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return out
}

func (s ini) section(name string) []kv {
	var out []kv
	for _, sec := range s {
		if sec.name == name {
			out = append(out, sec.kvs...)
		}
	}
	return out
}

func (s ini) get(section, key string) string {
	v := ""
	for _, e := range s.section(section) {
		if e.key == key {
			v = e.value
		}
	}
	return v
}

// yentry is one "key: value" of a YAML document with the keys above it.
type yentry struct {
	path  []string
	value string
}

// scanYAML reads the block-style mappings of a YAML document well enough to
// find netplan's device IDs, set-name, match name and renderer, and
// cloud-init's network config switch. It is not a YAML parser: flow-style
// collections and multi-line scalars are seen only as values.
func scanYAML(text string) []yentry {
	type level struct {
		indent int
		key    string
	}
	var stack []level
	var out []yentry
	for _, raw := range strings.Split(text, "\n") {
		raw = strings.TrimRight(raw, "\r")
		trimmed := strings.TrimLeft(raw, " ")
		if trimmed == "" || trimmed[0] == '#' || trimmed == "---" || trimmed == "..." {
			continue
		}
		indent := len(raw) - len(trimmed)
		content := trimmed
		for strings.HasPrefix(content, "- ") {
			// A sequence item: its mapping starts after the dash and
			// the blanks that follow it.
			rest := strings.TrimLeft(content[2:], " ")
			indent += len(content) - len(rest)
			content = rest
		}
		key, value, ok := yamlKey(content)
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		if !ok {
			continue
		}
		stack = append(stack, level{indent, key})
		p := make([]string, len(stack))
		for i, l := range stack {
			p[i] = l.key
		}
		out = append(out, yentry{path: p, value: value})
	}
	return out
}

// yamlKey splits `key: value # comment`, unquoting a quoted key or value.
func yamlKey(s string) (key, value string, ok bool) {
	var rest string
	switch {
	case s == "":
		return "", "", false
	case s[0] == '"' || s[0] == '\'':
		k, n, good := yamlQuoted(s)
		if !good {
			return "", "", false
		}
		rest = strings.TrimLeft(s[n:], " ")
		if !strings.HasPrefix(rest, ":") {
			return "", "", false
		}
		key, rest = k, rest[1:]
	default:
		i := strings.Index(s, ": ")
		switch {
		case i >= 0:
			key, rest = s[:i], s[i+1:]
		case strings.HasSuffix(s, ":"):
			key, rest = s[:len(s)-1], ""
		default:
			return "", "", false
		}
		if strings.HasPrefix(key, "#") {
			return "", "", false
		}
	}
	rest = strings.TrimSpace(rest)
	if rest != "" && (rest[0] == '"' || rest[0] == '\'') {
		if v, _, good := yamlQuoted(rest); good {
			return key, v, true
		}
	}
	if i := strings.Index(rest, " #"); i >= 0 {
		rest = strings.TrimSpace(rest[:i])
	}
	if strings.HasPrefix(rest, "#") {
		rest = ""
	}
	return key, rest, true
}

// yamlQuoted reads a quoted scalar at the start of s and returns its value
// and how many bytes it took.
func yamlQuoted(s string) (string, int, bool) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case q == '\'' && c == '\'':
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return b.String(), i + 1, true
		case q == '"' && c == '"':
			return b.String(), i + 1, true
		case q == '"' && c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}
