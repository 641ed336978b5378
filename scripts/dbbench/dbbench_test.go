package main

import (
	"moim/chatlog"

	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The benchmark runs against the real MariaDB named by MOIM_TEST_MYSQL_DSN
// (make test starts it), the MongoDB-wire store MOIM_TEST_MONGO_URI names
// when set (FerretDB from make test, MongoDB in the GitHub workflow), and
// always against dbbench's own FerretDB on SQLite.
// PostgreSQL is not installed by CI, so -ferret pg is exercised by the
// measured runs in docs/DB-ANALYSIS.md, not here.
func TestTinyRunAnswersEveryReadCorrectly(t *testing.T) {
	dsn := os.Getenv("MOIM_TEST_MYSQL_DSN")
	if dsn == "" {
		t.Fatal("MOIM_TEST_MYSQL_DSN is not set: this test needs a real MariaDB; run `make test`, which starts one, or scripts/services.sh")
	}
	db := "dbbench_t" + strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	// Small: FerretDB on SQLite scans every message per read, and the race
	// detector slows that scan fifty-fold.
	args := []string{"-messages", "600", "-rooms", "6", "-fill-batch", "200", "-batches", "1,10,100", "-append-max", "100",
		"-duration", "200ms", "-conc", "2", "-db", db, "-ferret", "sqlite", "-mysql", dsn}
	want := []string{"mysql", "ferretdb-sqlite"}
	if uri := os.Getenv("MOIM_TEST_MONGO_URI"); uri != "" {
		args = append(args, "-mongo", uri)
		want = append(want[:len(want)-1], "mongodb", "ferretdb-sqlite")
	}
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	var out, log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := benchAll(ctx, o, &out, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if len(results) != len(want) {
		t.Fatalf("got %d results, want %v", len(results), want)
	}
	phases := []string{"fill 0→600, batches of 200", "append, batches of 1", "append, batches of 10", "append, batches of 100",
		"last 50 of a room", "50 before seq N", "after seq N (sync)", "search in a room"}
	for i, r := range results {
		if r.Target != want[i] {
			t.Errorf("result %d is %s, want %s", i, r.Target, want[i])
		}
		if len(r.Phases) != len(phases) {
			t.Fatalf("%s: %d phases, want %d", r.Target, len(r.Phases), len(phases))
		}
		appended := int64(0)
		for j, p := range r.Phases {
			if p.Name != phases[j] {
				t.Errorf("%s: phase %d is %q, want %q", r.Target, j, p.Name, phases[j])
			}
			if p.Ops < 1 || p.Wrong != 0 || p.P50ms <= 0 || p.P50ms > p.P99ms || p.Seconds <= 0 || p.BenchCPU < 0 {
				t.Errorf("%s: %s: implausible %+v", r.Target, p.Name, p)
			}
			switch {
			case j == 0 && p.Msgs != 600:
				t.Errorf("%s: fill wrote %d messages, want 600", r.Target, p.Msgs)
			case j >= 1 && j <= 3:
				size := []int64{1, 10, 100}[j-1]
				if p.Msgs > 100 {
					t.Errorf("%s: %s wrote %d messages, past -append-max 100", r.Target, p.Name, p.Msgs)
				}
				if p.Msgs != int64(p.Ops)*size {
					t.Errorf("%s: %s: %d messages in %d ops", r.Target, p.Name, p.Msgs, p.Ops)
				}
				appended += p.Msgs
			case p.Name == "last 50 of a room" && p.Msgs != 50*int64(p.Ops):
				// Every room holds more than 50 (600 over 6 rooms).
				t.Errorf("%s: last 50 returned %d messages in %d ops", r.Target, p.Msgs, p.Ops)
			}
		}
		if r.Stored != 600+appended || r.Disk.Rows != r.Stored {
			t.Errorf("%s: stored %d, rows %d, want %d", r.Target, r.Stored, r.Disk.Rows, 600+appended)
		}
		if per := float64(r.Disk.Data+r.Disk.Index) / float64(r.Stored); per < 30 || per > 20000 {
			t.Errorf("%s: %.0f disk bytes per message", r.Target, per)
		}
		if !strings.Contains(out.String(), "== "+r.Target+": ") {
			t.Errorf("no table for %s in\n%s", r.Target, out.String())
		}
	}
	for _, p := range phases {
		if n := strings.Count(out.String(), p+"  "); n != len(want) {
			t.Errorf("row %q printed %d times, want %d", p, n, len(want))
		}
	}
	if dsn != "" {
		cfg, _ := mysql.ParseDSN(dsn)
		cfg.DBName = ""
		server, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		var n int
		if err := server.QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", db).Scan(&n); err != nil || n != 0 {
			t.Errorf("database %s left behind (%d, %v)", db, n, err)
		}
	}
}

func TestCheckCatchesWrongAnswers(t *testing.T) {
	msg := func(room, seq int64) []byte {
		b, _ := json.Marshal(chatlog.Message{Type: "msg", Room: room, Seq: seq})
		return b
	}
	q := query{room: 7, want: 2, first: 10}
	for _, c := range []struct {
		got [][]byte
		ok  bool
	}{
		{[][]byte{msg(7, 10), msg(7, 9)}, true},
		{[][]byte{msg(7, 10)}, false},                       // too few
		{[][]byte{msg(7, 9), msg(7, 8)}, false},             // wrong first seq
		{[][]byte{msg(8, 10), msg(8, 9)}, false},            // another room
		{[][]byte{msg(7, 10), msg(7, 9), msg(7, 8)}, false}, // too many
		{[][]byte{[]byte("not json"), msg(7, 9)}, false},    // garbage
	} {
		if err := check(q, c.got); (err == nil) != c.ok {
			t.Errorf("check(%s) = %v, want ok=%v", bytes.Join(c.got, []byte(" ")), err, c.ok)
		}
	}
	if err := check(query{room: 7}, nil); err != nil {
		t.Errorf("empty answer to an empty query: %v", err)
	}
}

// The corpus is the answer key: seqs per room run 1..max without gaps and
// the match counts are exactly the bodies containing the search term.
func TestCorpusKnowsEveryRoom(t *testing.T) {
	for _, w := range words {
		if strings.Contains(strings.ToLower(w), searchTerm) {
			t.Fatalf("vocabulary word %q contains the search term", w)
		}
	}
	c := newCorpus(50, 3)
	seqs := map[int64][]int64{}
	matches := map[int64]int32{}
	last := map[int64]int64{}
	for range 10 {
		for _, m := range c.batch(500) {
			seqs[m.Room] = append(seqs[m.Room], m.Seq)
			if strings.Contains(m.Message.Body, searchTerm) {
				matches[m.Room]++
				last[m.Room] = m.Seq
			}
		}
	}
	for r := int64(1); r <= 50; r++ {
		for i, s := range seqs[r] {
			if s != int64(i+1) {
				t.Fatalf("room %d: seq %d at position %d", r, s, i)
			}
		}
		if c.maxSeq[r-1] != int64(len(seqs[r])) || c.matches[r-1] != matches[r] || c.lastMatch[r-1] != last[r] {
			t.Errorf("room %d: corpus says max %d, %d matches (last %d); bodies say %d, %d (last %d)",
				r, c.maxSeq[r-1], c.matches[r-1], c.lastMatch[r-1], len(seqs[r]), matches[r], last[r])
		}
	}
	if c.total != 5000 {
		t.Errorf("total %d", c.total)
	}
}

func TestFlags(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"-help"}, &out, &out); code != 0 {
		t.Errorf("-help exits %d", code)
	}
	for _, f := range []string{"-mysql", "-mongo", "-ferret", "-pg", "-messages", "-rooms", "-batches", "-duration", "-markdown"} {
		if !strings.Contains(out.String(), "\n  "+f+" ") && !strings.Contains(out.String(), "\n  "+f+"\n") {
			t.Errorf("-help does not document %s", f)
		}
	}
	for _, bad := range [][]string{{"-ferret", "mysql"}, {"-batches", "0"}, {"-db", "Bad-Name"}, {"-ferret", "none"}, {"extra"}} {
		out.Reset()
		if code := run(context.Background(), bad, &out, &out); code != 2 {
			t.Errorf("%v exits %d, want 2 (%s)", bad, code, out.String())
		}
	}
}
