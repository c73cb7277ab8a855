package dispatch

import (
	"context"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/delivery"
	"github.com/eventgate/eventgate/server/store/sqlitetest"
)

func TestPadIDs(t *testing.T) {
	tests := []struct{ in, want []int }{
		{nil, nil},
		{[]int{7}, []int{7}},
		{[]int{1, 2}, []int{1, 2}},
		{[]int{1, 2, 3}, []int{1, 2, 3, 3}},
		{[]int{4, 5, 6, 7, 8}, []int{4, 5, 6, 7, 8, 8, 8, 8}},
	}
	for _, tc := range tests {
		if got := padIDs(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("padIDs(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestPowerOfTwoChunks(t *testing.T) {
	tests := []struct {
		n, max int
		want   []int
	}{
		{0, 64, nil},
		{1, 64, []int{1}},
		{37, 32, []int{32, 4, 1}},
		{64, 64, []int{64}},
		{200, 64, []int{64, 64, 64, 8}},
	}
	for _, tc := range tests {
		if got := powerOfTwoChunks(tc.n, tc.max); !slices.Equal(got, tc.want) {
			t.Errorf("powerOfTwoChunks(%d, %d) = %v, want %v", tc.n, tc.max, got, tc.want)
		}
	}
}

func TestRoundLimit(t *testing.T) {
	for n, want := range map[int]int{1: 1, 7: 7, 8: 8, 15: 8, 17: 16, 64: 64, 70: 64} {
		if got := roundLimit(n); got != want {
			t.Errorf("roundLimit(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestEventCacheEvictsOldestFirst(t *testing.T) {
	ev := func(id, size int) *ent.Event { return &ent.Event{ID: id, Payload: make([]byte, size)} }
	c := newEventCache(3, 3*(100+256))
	for id := 1; id <= 3; id++ {
		c.put(ev(id, 100))
	}
	c.put(ev(4, 100)) // over the count: 1 goes
	if c.get(1) != nil || c.get(2) == nil || c.get(4) == nil {
		t.Fatalf("after a fourth event: 1 kept %v, 2 kept %v, 4 kept %v", c.get(1) != nil, c.get(2) != nil, c.get(4) != nil)
	}
	c.put(ev(5, 300)) // over the bytes: 2 and 3 go
	if c.get(2) != nil || c.get(3) != nil || c.get(4) == nil || c.get(5) == nil {
		t.Fatalf("after a large event: held %v", c.byID)
	}
	c.put(ev(6, 10_000)) // larger than the bound: not kept, nothing evicted
	if c.get(6) != nil || c.get(4) == nil {
		t.Fatalf("an event over the bound was kept or evicted others")
	}
}

// TestDispatcherStatementsRepeat drains deliveries in batches of many sizes and checks that the
// statements with IN lists or multi-row VALUES come in a few lengths only, so that the store's
// per-connection statement cache keeps them prepared (sqlshape.go).
func TestDispatcherStatementsRepeat(t *testing.T) {
	st := sqlitetest.Open(t, "normal")
	var mu sync.Mutex
	seen := map[string]int{}
	rec := &watchDriver{Driver: entsql.OpenDB(dialect.SQLite, st.DB), before: func(query string) error {
		mu.Lock()
		seen[query]++
		mu.Unlock()
		return nil
	}}
	e := newEnvOn(t, ent.NewClient(ent.Driver(rec)))
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(http.StatusOK) })
	hooks := e.webhooks(t, rc.URL, 3)
	ev := e.event(t, "user.created", `{"user_id":"u1"}`)
	var ids []int
	for i := range 300 {
		ids = append(ids, e.deliver(t, hooks[i%len(hooks)], ev).ID)
	}
	e.start(t, testConfig(), Hooks{})
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := e.client.Delivery.Query().Where(delivery.StatusEQ(delivery.StatusSUCCESS)).Count(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries succeeded", n, len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Statements of one family differ only in their lists' lengths: strip the lists and count
	// the lengths each family was run with.
	list := regexp.MustCompile(`\((\?(, )?)+\)`)
	lengths := map[string]map[int]bool{}
	mu.Lock() // the dispatcher runs on
	texts := maps.Clone(seen)
	mu.Unlock()
	for text := range texts {
		for _, m := range list.FindAllString(text, -1) {
			family := list.ReplaceAllString(text, "(…)")
			if lengths[family] == nil {
				lengths[family] = map[int]bool{}
			}
			n := len(regexp.MustCompile(`\?`).FindAllString(m, -1))
			lengths[family][n] = true
			if n&(n-1) != 0 && !isValuesRow(text, m) {
				t.Errorf("a list of %d values, not a power of two:\n%s", n, text)
			}
		}
	}
	for family, ns := range lengths {
		if len(ns) > 8 {
			t.Errorf("%d lengths of one statement:\n%s", len(ns), family)
		}
	}
}

// isValuesRow says whether list m is one row of a multi-row INSERT (its length is the columns').
func isValuesRow(text, m string) bool {
	return regexp.MustCompile(`^INSERT`).MatchString(text) && regexp.MustCompile(`VALUES `+regexp.QuoteMeta(m)).MatchString(text)
}
