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
