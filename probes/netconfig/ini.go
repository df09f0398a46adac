package netconfig

// The INI dialects of systemd units and NetworkManager keyfiles.

import "strings"

// lines splits text into lines, joining a line that ends with a backslash
// to the next one (systemd.syntax(7), interfaces(5)).
func lines(text string) []string {
	var out []string
	cur := ""
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimRight(l, "\r")
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
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

// keyValue is one key=value line of an INI section.
type keyValue struct{ section, key, value string }

// parseINI reads [Section] headers and key=value lines, skipping whole-line
// comments (# and ;), in file order: a key may repeat (systemd's Gateway=,
// Name=), and repeating a section ([Route] twice) starts a new one, which
// index tells apart.
func parseINI(text string) (kvs []keyValue, index []int) {
	section, n := "", -1
	for _, l := range lines(text) {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			section = strings.TrimSpace(l[1 : len(l)-1])
			n++
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || section == "" {
			continue
		}
		kvs = append(kvs, keyValue{section, strings.TrimSpace(k), strings.TrimSpace(v)})
		index = append(index, n)
	}
	return kvs, index
}
