package fees

import (
	"context"
	"fmt"

	"moim/api"
)

// TransferMember is a member-to-member transfer (송금) in the ledger.
const TransferMember = "transfer"

// Send moves money from the user's wallet to another user's, announced
// as a fee card in their 1:1 chat. Like every transfer it happens once per
// idempotency key, and an overdraft is refused and remembered.
func (f *Fees) Send(ctx context.Context, user, to, amount int64, memo, key string) (*Transfer, error) {
	memo, err := checkMemo(memo, false)
	if err := firstErr(err, f.checkAmount(amount), checkKey(key)); err != nil {
		return nil, err
	}
	if to == user {
		return nil, api.Validation("to_user_id must be someone else")
	}
	toName, err := f.rooms.DisplayName(ctx, to)
	if err != nil {
		return nil, api.NotFound("user")
	}
	fromName, err := f.rooms.DisplayName(ctx, user)
	if err != nil {
		return nil, err
	}
	room, err := f.rooms.DirectRoom(ctx, user, to)
	if err != nil {
		return nil, err
	}
	from, err := f.account(ctx, KindWallet, user, true)
	if err != nil {
		return nil, err
	}
	wallet, err := f.account(ctx, KindWallet, to, true)
	if err != nil {
		return nil, err
	}
	return f.transfer(ctx, &move{user: user, key: key, kind: TransferMember, from: from, to: wallet, amount: amount,
		room: room, member: to, memo: memo,
		// Neither balance is in the card: each party's wallet is their own.
		announce: func(_, _ int64) (string, map[string]any) {
			body := fmt.Sprintf("%s님이 %s님에게 %s원을 보냈습니다.", fromName, toName, won(amount))
			if memo != "" {
				body += " 메모: " + memo
			}
			return body, map[string]any{"event": TransferMember, "amount": amount, "currency": Currency, "from": user, "user": to, "memo": memo}
		}})
}
