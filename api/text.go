package api

import (
	"strings"
	"unicode"
)

// Name characters that are format characters (Unicode Cf) yet needed:
// the zero-width joiner and non-joiner build emoji sequences (👨‍👩‍👧) and
// some scripts' words; tag characters spell subdivision flags (🏴󠁧󠁢󠁳󠁣󠁴󠁿).
func neededFormat(r rune) bool {
	return r == '\u200c' || r == '\u200d' || (r >= 0xe0020 && r <= 0xe007f)
}

// UnsafeNameRune reports whether r may not appear in a display or room
// name: control characters, line and paragraph separators, private-use
// and unassigned code points, and format characters such as right-to-left
// overrides and zero-width spaces, which make one name look like another
// or reorder the text around it.
func UnsafeNameRune(r rune) bool {
	switch {
	case unicode.Is(unicode.Cf, r):
		return !neededFormat(r)
	case unicode.IsControl(r), unicode.In(r, unicode.Zl, unicode.Zp, unicode.Co, unicode.Cs):
		return true
	}
	return r == unicode.ReplacementChar || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Zs)
}

// SafeName reports whether s has no rune UnsafeNameRune refuses.
func SafeName(s string) bool { return strings.IndexFunc(s, UnsafeNameRune) < 0 }

// likeEscaper makes user text literal inside LIKE; '!' is the escape
// character because a backslash means different things in MySQL and SQLite.
var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

// EscapeLike makes s literal inside a LIKE pattern with ESCAPE '!'.
func EscapeLike(s string) string { return likeEscaper.Replace(s) }
