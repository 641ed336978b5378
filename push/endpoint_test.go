package push

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheckEndpoint(t *testing.T) {
	for _, c := range []struct {
		endpoint string
		loopback bool
		ok       bool
	}{
		{"https://fcm.googleapis.com/fcm/send/abc", false, true},
		{"https://updates.push.services.mozilla.com/wpush/v2/abc", false, true},
		{"https://93.184.216.34/push", false, true},
		{"http://fcm.googleapis.com/fcm/send/abc", false, false},
		{"http://127.0.0.1:8080/push", false, false},
		{"http://127.0.0.1:8080/push", true, true},
		{"http://localhost:8080/push", true, true},
		{"https://localhost/push", false, false},
		{"https://[::1]/push", false, false},
		{"http://push.example.com/x", true, false},
		{"http://10.1.2.3/push", true, false},
		{"https://10.1.2.3/push", false, false},
		{"https://192.168.0.1/push", false, false},
		{"https://100.64.0.1/push", false, false},
		{"https://169.254.169.254/latest", false, false},
		{"https://[fe80::1]/push", false, false},
		{"https://[::ffff:127.0.0.1]/push", false, false},
		{"https://0.0.0.0/push", false, false},
		{"https://user:pw@push.example.com/x", false, false},
		{"ftp://push.example.com/x", false, false},
		{"/relative", false, false},
	} {
		err := CheckEndpoint(c.endpoint, c.loopback)
		if (err == nil) != c.ok {
			t.Errorf("CheckEndpoint(%q, loopback %v) = %v, want ok %v", c.endpoint, c.loopback, err, c.ok)
		}
	}
}

// TestClientRefusesPrivateAddresses checks the dialer's guard, which
// holds whatever a name resolves to when the post is made.
func TestClientRefusesPrivateAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(201) }))
	defer srv.Close()
	local := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	if _, err := newClient(time.Second, false).Post(local, "text/plain", nil); !errors.Is(err, errEndpoint) {
		t.Fatalf("post to %s without loopback allowed: %v, want refused", local, err)
	}
	resp, err := newClient(time.Second, true).Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatalf("post to %s with loopback allowed: %v", srv.URL, err)
	}
	resp.Body.Close()
}
