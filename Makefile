# The one command that checks everything: formatting, vet, and every test
# with the race detector, against real services (README.md, "Tests").
GO ?= go

.PHONY: test check fmt-check vet run

# test starts the services not already named by MOIM_TEST_* (redis-server,
# MariaDB, a Redis Cluster, FerretDB), runs check, and stops them.
test:
	scripts/test.sh $(MAKE) --no-print-directory check

# The hub, persistence and sync tests again on a Redis Cluster, when one
# is named (scripts/redis-cluster.sh; make test starts one).
CLUSTER_TESTS = TestSendAckDeliverInOrder|TestRetriedSendIsStoredOnce|TestSyncAfterReconnect|TestMembershipChanges|TestPresenceReads|TestDeleteMessages|TestHistoryPages|TestSeqSurvives|TestDeadBatchers|TestThreeNodes|TestFundPaySpend|TestMirrorIsRebuilt|TestRedisLosingData

# The hub, sync and history tests again on the single-node engine (no
# Redis; messages in SQLite), as server/harness_test.go's envEngine says.
ENGINE_TESTS = TestWebSocketRejects|TestSendAckDeliverInOrder|TestRetriedSendIsStoredOnce|TestSendValidation|TestSyncAfterReconnect|TestMembershipChanges|TestFrameLimits|TestFragmentsAndPings|TestSlowReader|TestPresenceReads|TestDeleteMessages|TestHistoryPages|TestFundPaySpend|TestKickBans|TestFeeMessagesCannotBeDeleted|TestInvitations|TestSystemMessages|TestAuthorsEdit|TestMentions|TestAdminsPinANotice|TestOneSendBudgetPerUser|TestSyncIsChargedByMessages|TestReadAndTypingFloodsAreLimited|TestRevokedTokensCloseOpenSockets|TestWebSocketTicketsAreSingleUse|TestInviteLink|TestUnreadMentionCount|TestDuesRuleChange|TestAttachmentsUpload|TestMessagesCarryAttachments|TestSpendNamesItsReceipt

# check runs everything against the services named by MOIM_TEST_*.
check: fmt-check vet
	$(GO) test -race -count=1 -timeout 30m $$($(GO) list ./... | grep -v /scripts/chaos)
	# The chaos scenarios (docs/BENCHMARKS.md, "Chaos under load") alone:
	# they measure delivery p99 and share the host with nothing else.
	$(GO) test -race -count=1 -timeout 15m ./scripts/chaos
	# The frame parser and the client protocol (against a live node) fuzzed;
	# their seeds ran above. Budgets count inputs, not seconds: Go 1.26 can
	# fail a -fuzztime duration as it ends (go.dev/issue/75804).
	$(GO) test -run '^$$' -fuzz '^FuzzParseFrame$$' -fuzztime 100000x ./hub
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBody$$' -fuzztime 100000x ./api
	$(GO) test -run '^$$' -fuzz '^FuzzClientMessages$$' -fuzztime 3000x ./server
	MOIM_TEST_ENGINE=memory $(GO) test -race -count=1 -timeout 10m -run '$(ENGINE_TESTS)' ./server
	@if [ -n "$$MOIM_TEST_REDIS_CLUSTER_URL" ]; then \
		echo "again on the Redis Cluster at $$MOIM_TEST_REDIS_CLUSTER_URL"; \
		MOIM_TEST_REDIS_URL="$$MOIM_TEST_REDIS_CLUSTER_URL" $(GO) test -race -count=1 -timeout 10m -run '$(CLUSTER_TESTS)' ./server; \
	fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

run:
	$(GO) run ./server
