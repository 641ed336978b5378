package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTransfers measures dues payments per second through the REST
// API with 50 concurrent clients, into one hot fund and spread over 100
// funds. Run it against MariaDB (scripts/services.sh) with:
//
//	go test -run '^$' -bench Transfers -benchtime 1x ./server
func BenchmarkTransfers(b *testing.B) {
	for _, funds := range []int{1, 100} {
		b.Run(fmt.Sprintf("funds=%d", funds), func(b *testing.B) {
			for range b.N {
				benchTransfers(b, funds)
			}
		})
	}
}

func benchTransfers(b *testing.B, funds int) {
	const clients, perClient = 50, 40
	n := startBenchNode(b, benchConfig(b))
	owner := n.user(b, "owner")
	payers := make([]*client, clients)
	ids := make([]int64, clients)
	for i := range payers {
		payers[i] = n.user(b, fmt.Sprint("payer", i))
		ids[i] = payers[i].id
	}
	owner.knows(ids...)
	rooms := make([]int64, funds)
	for r := range rooms {
		var v struct{ ID int64 }
		owner.must(201, "POST", "/api/rooms", map[string]any{"name": fmt.Sprint("fund ", r), "member_ids": ids}, &v)
		owner.must(201, "POST", urlf("/api/rooms/%d/fund", v.ID), map[string]any{"currency": "KRW"}, nil)
		rooms[r] = v.ID
	}
	for _, p := range payers {
		p.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 1_000_000, "idempotency_key": "d"}, nil)
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i, p := range payers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perClient {
				room := rooms[(i+k)%funds]
				if status, raw := p.raw("POST", urlf("/api/rooms/%d/fund/pay", room), map[string]any{"amount": 100, "idempotency_key": fmt.Sprint("p", k)}); status != 201 {
					b.Errorf("pay: %d %s", status, raw)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.ReportMetric(float64(done.Load())/elapsed.Seconds(), "transfers/s")
	n.stop()
}
