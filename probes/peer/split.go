package peer

import (
	"errors"
	"fmt"
	"strings"
)

// SplitPrefix splits what the person typed after --peer into words the way a
// POSIX shell splits words, but with no expansion at all: white space
// separates words, single quotes keep everything literal, double quotes keep
// everything literal except \" and \\, and a backslash outside quotes escapes
// the next character (a backslash before a line break joins the lines). Glob
// characters and ~ are ordinary characters.
//
// The words are run without a shell, so what only a shell understands
// (; | & < > ( ) ` $ unquoted) is refused with a sentence rather than passed
// on as a literal word that would fail in a confusing way on the peer.
func SplitPrefix(s string) ([]string, error) {
	var (
		words []string
		word  strings.Builder
		in    bool // a word has started (it may be empty: '')
	)
	end := func() {
		if in {
			words = append(words, word.String())
			word.Reset()
			in = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0:
			return nil, errors.New("the peer command contains a NUL byte, which no command can receive: remove it")
		case strings.IndexByte(" \t\n\r\v\f", c) >= 0:
			end()
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, unclosed("single")
			}
			word.WriteString(s[i+1 : i+1+j])
			in, i = true, i+1+j
		case c == '"':
			in = true
			for i++; ; i++ {
				if i >= len(s) {
					return nil, unclosed("double")
				}
				if s[i] == '"' {
					break
				}
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				word.WriteByte(s[i])
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("the peer command ends with a backslash that escapes nothing: remove it, or quote it")
			}
			i++
			if s[i] != '\n' { // backslash-newline is a line continuation, as in sh
				word.WriteByte(s[i])
				in = true
			}
		case strings.IndexByte(operators, c) >= 0:
			j := i + 1
			for j < len(s) && j < i+3 && strings.IndexByte(operators, s[j]) >= 0 {
				j++
			}
			return nil, refused(s[i:j])
		default:
			word.WriteByte(c)
			in = true
		}
	}
	end()
	if len(words) == 0 {
		return nil, errors.New("the peer command is empty: give the command that reaches the other host, such as 'ssh db1 sudo' or 'ip netns exec server'")
	}
	return words, nil
}

// operators are the characters a shell would act on rather than pass on.
const operators = ";|&<>()`$"

func unclosed(kind string) error {
	return fmt.Errorf("the peer command has a %s quote that is not closed: close it (the peer command runs without a shell, so quotes only group words)", kind)
}

func refused(op string) error {
	var advice string
	switch op[0] {
	case '|':
		advice = "put the pipeline in a script on the peer, or quote it"
	case ';', '&':
		advice = "give one command (put several in a script on the peer), or quote it"
	case '<', '>':
		advice = "asym reads the peer's output itself; quote it if it belongs to a word"
	case '$', '`':
		advice = "nothing is expanded, so write the value itself, or quote it"
	default:
		advice = "quote it if it belongs to a word"
	}
	return fmt.Errorf("the peer command runs without a shell, so %s cannot be used: %s", op, advice)
}
