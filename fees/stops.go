package fees

// The named points between the steps of a money move where a process can
// die with its work half done. Production code passes them and nothing
// happens; the crash model check (crash_model_test.go) stops there, as a
// killed process would, then runs the start-up reconciliation and checks
// that no money was made, lost or left held.
const (
	// StopTopUpConfirmed: the provider approved a top-up (or the sandbox
	// confirmed it at checkout); the wallet is not yet credited.
	StopTopUpConfirmed = "topup:confirmed"
	// StopTopUpCredited: the credit is committed; the payment still reads
	// pending.
	StopTopUpCredited = "topup:credited"
	// StopWithdrawalStarted: the withdrawal's payment row exists; nothing
	// is held yet.
	StopWithdrawalStarted = "withdrawal:started"
	// StopWithdrawalHeld: the amount is held; the provider was not asked.
	StopWithdrawalHeld = "withdrawal:held"
	// StopWithdrawalPaidOut: the provider paid out; the hold is not yet
	// settled in the ledger.
	StopWithdrawalPaidOut = "withdrawal:paid-out"
	// StopWithdrawalSettled: the hold is settled or released in the
	// ledger; the payment still reads pending.
	StopWithdrawalSettled = "withdrawal:settled"
	// StopLedgerUncommitted: a ledger transaction wrote everything and has
	// not committed (a crash rolls it back).
	StopLedgerUncommitted = "ledger:uncommitted"
	// StopLedgerCommitted: a ledger transaction committed; its caller has
	// not heard.
	StopLedgerCommitted = "ledger:committed"
)

// reached marks a named point; see stop on Fees.
func (f *Fees) reached(point string) {
	if f.stop != nil {
		f.stop(point)
	}
}
