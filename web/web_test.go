package web

import "testing"

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                         false,
		"gzip":                     true,
		"gzip, deflate, br, zstd":  true,
		"br, GZIP":                 true,
		"gzip;q=0":                 false,
		"gzip; q=0.0":              false,
		"gzip;q=0.5, identity":     true,
		"deflate, br":              false,
		"x-gzip":                   false,
		"gzip;q=nonsense":          false,
		"identity;q=1, gzip;q=0.1": true,
	} {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}
