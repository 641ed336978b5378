package store

import (
	"context"
	"encoding/json"
	"testing"

	"moim/chatlog"
)

// A system message's structured fields come back from the store as they
// were written, so history older than the recent window renders alike.
func TestSystemFieldsAreKept(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			d := chatlog.NewDraft(5, 0, "", "민수님이 들어왔습니다.", "sys-joined-7-1", chatlog.KindSystem, 0, 1000)
			d.WithSystem(json.RawMessage(`{"event":"joined","user":7,"user_name":"민수"}`))
			e, err := chatlog.DecodeEntry(map[string]any{chatlog.FieldMessage: string(d.Encode(1))})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Insert(ctx, []chatlog.Entry{e}); err != nil {
				t.Fatal(err)
			}
			msgs, err := st.After(ctx, 5, 0, 10)
			if err != nil || len(msgs) != 1 {
				t.Fatalf("after: %d messages, %v", len(msgs), err)
			}
			var m chatlog.Message
			if err := json.Unmarshal(msgs[0], &m); err != nil {
				t.Fatal(err)
			}
			if m.Kind != chatlog.KindSystem || m.System["event"] != "joined" || m.System["user_name"] != "민수" || m.Body != "민수님이 들어왔습니다." {
				t.Fatalf("stored system message %s", msgs[0])
			}
		})
	}
}
