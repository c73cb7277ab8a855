package streamctl

import (
	"bytes"
	"testing"
)

func TestRenderCacheBounds(t *testing.T) {
	c := NewRenderCache(3)
	for k := int64(1); k <= 5; k++ {
		c.Put("op", k, []byte{byte(k)})
	}
	for k := int64(1); k <= 5; k++ {
		_, ok := c.Get("op", k)
		if want := k > 2; ok != want {
			t.Errorf("key %d cached=%v, want %v (at most 3 entries, oldest dropped)", k, ok, want)
		}
	}
	if _, ok := c.Get("other", 5); ok {
		t.Error("a rendering leaked to another operation")
	}
	big := NewRenderCache(1000)
	chunk := bytes.Repeat([]byte("x"), renderCacheBytes/64)
	for k := int64(1); k <= 100; k++ {
		big.Put("op", k, chunk)
	}
	if big.bytes > renderCacheBytes {
		t.Fatalf("cache holds %d bytes, over its %d budget", big.bytes, renderCacheBytes)
	}
	big.Put("op", 1000, append(chunk, 'y'))
	if _, ok := big.Get("op", 1000); ok {
		t.Error("an oversized rendering was kept")
	}
}

// TestRenderClaims checks that subscribers who find an item missing while another one renders it
// wait for that rendering instead of rendering it again, and that a renderer that gives up lets
// the next one claim the item.
func TestRenderClaims(t *testing.T) {
	c := NewRenderCache(10)
	renderer, waiter, third := NewQueue(c, "op"), NewQueue(c, "op"), NewQueue(c, "op")
	if _, ok := renderer.Rendered(1); ok {
		t.Fatal("a missing item was reported rendered")
	}
	got := make(chan []byte, 1)
	go func() {
		data, _ := waiter.Rendered(1)
		got <- data
	}()
	renderer.Store(1, []byte("rendered once"))
	if data := <-got; string(data) != "rendered once" {
		t.Fatalf("waiter got %q, want the renderer's rendering", data)
	}

	// The renderer gives up (its emit failed): the waiter, woken, finds nothing and renders it
	// itself (it claims it only if it came after the renderer gave up).
	if _, ok := renderer.Rendered(2); ok {
		t.Fatal("a missing item was reported rendered")
	}
	gaveUp := make(chan bool, 1)
	go func() {
		_, ok := waiter.Rendered(2)
		gaveUp <- ok
	}()
	renderer.unclaim(Item{Key: 2})
	if ok := <-gaveUp; ok {
		t.Fatal("waiter got a rendering nobody stored")
	}
	// Now the claim is the waiter's or nobody's, never the renderer's: the third either claims
	// it or waits for the waiter; either way nothing is stored, so it reports none.
	if _, ok := third.Rendered(2); ok {
		t.Fatal("third subscriber got a rendering nobody stored")
	}
	waiter.unclaim(Item{Key: 2})
	third.unclaim(Item{Key: 2})
	if n := countClaims(c); n != 0 {
		t.Errorf("%d claims left after every claimant gave up", n)
	}
}

func countClaims(c *RenderCache) (n int) {
	c.claims.Range(func(any, any) bool { n++; return true })
	return n
}

// TestRenderCacheCollidingOperations checks that two operations whose fingerprints hash alike
// never get each other's renderings.
func TestRenderCacheCollidingOperations(t *testing.T) {
	c := NewRenderCache(10)
	a, b := opKey{"query A", 7}, opKey{"query B", 7}
	c.put(a, 1, []byte("A's"))
	if data, ok := c.get(b, 1); ok {
		t.Fatalf("operation B got %q, a rendering of operation A", data)
	}
	if data, ok := c.get(a, 1); !ok || string(data) != "A's" {
		t.Fatalf("operation A got %q, %v; want its own rendering", data, ok)
	}
}
