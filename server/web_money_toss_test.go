package main

import (
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// tossCheckoutStandIn stands in for Toss Payments as a browser meets it.
// The machine has no internet, so it serves, from its own origin: a small
// JS file in place of Toss's SDK (js.tosspayments.com/v2/standard) that
// keeps the documented requestPayment contract (the browser leaves for
// Toss's payment window, then comes back to successUrl with paymentKey,
// orderId and amount, or to failUrl with code, message and orderId); that
// payment window, with pay and cancel buttons; and, through
// tossConfirmStandIn, the confirm API the server calls with the secret key.
type tossCheckoutStandIn struct {
	api *tossConfirmStandIn
}

const tossSDKStandIn = `// Stand-in for Toss Payments' JS SDK v2, served by a Moim test.
window.TossPayments = function (clientKey) {
  return {
    payment: function (opts) {
      return {
        requestPayment: function (req) {
          var q = new URLSearchParams({ clientKey: clientKey, customerKey: opts.customerKey, method: req.method,
            orderId: req.orderId, orderName: req.orderName, amount: String(req.amount.value), currency: req.amount.currency,
            successUrl: req.successUrl, failUrl: req.failUrl });
          location.href = %q + "/checkout?" + q.toString();
          return new Promise(function () {});
        },
      };
    },
  };
};
`

var tossWindow = template.Must(template.New("checkout").Parse(`<!doctype html><html lang="ko"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width"><title>토스페이먼츠 (stand-in)</title></head>
<body data-testid="toss-window"><h1>{{.Name}}</h1><p data-testid="toss-amount">{{.Amount}}</p>
<a data-testid="toss-pay" href="/checkout/pay?{{.Query}}">결제하기</a>
<a data-testid="toss-cancel" href="/checkout/cancel?{{.Query}}">취소</a></body></html>`))

func (s *tossCheckoutStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	back := func(to string, params url.Values) {
		sep := "?"
		if strings.Contains(to, "?") {
			sep = "&"
		}
		http.Redirect(w, r, to+sep+params.Encode(), http.StatusFound)
	}
	switch r.URL.Path {
	case "/v2/standard":
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprintf(w, tossSDKStandIn, "http://"+r.Host)
	case "/favicon.ico":
		w.WriteHeader(http.StatusNoContent)
	case "/checkout":
		if q.Get("clientKey") != "test_ck_moim" || q.Get("method") != "CARD" || q.Get("currency") != "KRW" {
			http.Error(w, "bad checkout request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = tossWindow.Execute(w, map[string]any{"Name": q.Get("orderName"), "Amount": q.Get("amount"), "Query": template.URL(r.URL.RawQuery)})
	case "/checkout/pay":
		amount, err := strconv.ParseInt(q.Get("amount"), 10, 64)
		if err != nil {
			http.Error(w, "bad amount", http.StatusBadRequest)
			return
		}
		key := "tpk_" + q.Get("orderId")
		s.api.pay(key, q.Get("orderId"), amount)
		back(q.Get("successUrl"), url.Values{"paymentType": {"NORMAL"}, "paymentKey": {key}, "orderId": {q.Get("orderId")}, "amount": {q.Get("amount")}})
	case "/checkout/cancel":
		back(q.Get("failUrl"), url.Values{"code": {"PAY_PROCESS_CANCELED"}, "message": {"사용자에 의해 결제가 취소되었습니다."}, "orderId": {q.Get("orderId")}})
	default:
		s.api.ServeHTTP(w, r)
	}
}

// tossNode is a test node's config whose payments go through Toss at
// the stand-in (checkout window, SDK and API), the API's stand-in and
// its URL.
func tossNode(t *testing.T) (Config, *tossConfirmStandIn, string) {
	t.Helper()
	api := &tossConfirmStandIn{paid: map[string]map[string]any{}}
	srv := httptest.NewServer(&tossCheckoutStandIn{api: api})
	t.Cleanup(srv.Close)
	cfg := testConfig(t)
	cfg.Payments, cfg.TossSecretKey, cfg.TossClientKey, cfg.TossAPI, cfg.TossSDK = "toss", "test_sk_moim", "test_ck_moim", srv.URL, srv.URL+"/v2/standard"
	return cfg, api, srv.URL
}

// TestWebTossCheckoutInChromium runs web/e2e/money-toss.mjs in Debian's
// Chromium against Toss's stand-in: a top-up through the checkout is
// confirmed by the server and lands in the wallet (desktop); a cancelled
// checkout says so, credits nothing and ends its top-up at once, and a
// checkout left unfinished is listed pending and cancelled from the
// wallet (phone).
func TestWebTossCheckoutInChromium(t *testing.T) {
	cfg, api, _ := tossNode(t)
	runBrowserFlow(t, "money-toss.mjs", cfg, "toss-checkout-desktop.png", "toss-confirmed-desktop.png", "toss-checkout-phone.png", "toss-cancelled-phone.png", "toss-pending-phone.png")
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.confirms != 1 || len(api.paid) != 1 {
		t.Fatalf("Toss saw %d confirms of %d payments, want the one paid checkout confirmed once", api.confirms, len(api.paid))
	}
}

// TestCheckoutScriptAllowedOnlyWithToss: the page's Content-Security-Policy
// lets it load Toss's SDK (and talk to and frame its origin) only when the
// server's provider is Toss.
func TestCheckoutScriptAllowedOnlyWithToss(t *testing.T) {
	policy := func(cfg Config) string {
		t.Helper()
		n := startTestNode(t, cfg)
		resp, err := http.Get(n.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Content-Security-Policy")
	}
	cfg, _, origin := tossNode(t)
	toss := policy(cfg)
	for _, want := range []string{"script-src 'self' " + origin + ";", "connect-src 'self' " + origin + ";", "frame-src " + origin + ";", "frame-ancestors 'none'"} {
		if !strings.Contains(toss, want) {
			t.Errorf("with Toss the policy %q lacks %q", toss, want)
		}
	}
	sandbox := testConfig(t)
	sandbox.TossSDK = cfg.TossSDK // named, but not the provider
	if p := policy(sandbox); strings.Contains(p, origin) || strings.Contains(p, "script-src") || !strings.Contains(p, "default-src 'self'") {
		t.Errorf("with the sandbox the policy %q lets another origin in", p)
	}
}
