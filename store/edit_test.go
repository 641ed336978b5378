package store

import (
	"context"
	"encoding/json"
	"testing"

	"moim/chatlog"
)

// An edit replaces the stored body (history and search see the new text,
// with edited_at) unless the message was deleted.
func TestEditsReplaceTheBody(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if err := st.Insert(ctx, []chatlog.Entry{entry(9, 1, 7, "a", "회비는 3만원"), entry(9, 2, 7, "b", "gone")}); err != nil {
				t.Fatal(err)
			}
			if err := st.Tombstone(ctx, 9, []int64{2}); err != nil {
				t.Fatal(err)
			}
			var edits []chatlog.Entry
			for seq, body := range map[int64]string{1: "회비는 4만원", 2: "back"} {
				stored, err := st.After(ctx, 9, seq-1, 1)
				if err != nil || len(stored) != 1 {
					t.Fatalf("read %d: %v", seq, err)
				}
				raw, err := chatlog.Edited(stored[0], body, 5000)
				if err != nil {
					t.Fatal(err)
				}
				e, err := chatlog.DecodeEntry(map[string]any{chatlog.FieldEdit: string(raw)})
				if err != nil || !e.Edited {
					t.Fatalf("decoded edit %+v, %v", e, err)
				}
				edits = append(edits, e)
			}
			if err := st.Edit(ctx, edits); err != nil {
				t.Fatal(err)
			}
			msgs, err := st.After(ctx, 9, 0, 10)
			if err != nil || len(msgs) != 2 {
				t.Fatalf("after: %d, %v", len(msgs), err)
			}
			var m1, m2 chatlog.Message
			_ = json.Unmarshal(msgs[0], &m1)
			_ = json.Unmarshal(msgs[1], &m2)
			if m1.Body != "회비는 4만원" || m1.EditedAt != 5000 || m1.CID != "a" || m1.From != 7 {
				t.Fatalf("edited message %s", msgs[0])
			}
			if m2.Body != "" || !m2.Deleted || m2.EditedAt != 0 {
				t.Fatalf("a deleted message was edited: %s", msgs[1])
			}
			if found, err := st.Search(ctx, 9, "4만원", 10); err != nil || len(found) != 1 {
				t.Fatalf("search for the new text: %d, %v", len(found), err)
			}
			if found, err := st.Search(ctx, 9, "3만원", 10); err != nil || len(found) != 0 {
				t.Fatalf("search for the old text: %d, %v", len(found), err)
			}
		})
	}
}
