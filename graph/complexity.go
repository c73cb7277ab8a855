package graph

import (
	"time"

	"github.com/eventgate/eventgate/ent/delivery"
	"github.com/eventgate/eventgate/graph/generated"
	"github.com/eventgate/eventgate/graph/scalar"
)

// Complexity makes list fields cost their page size times their selection, so the complexity
// limit bounds the rows a query can ask for (300 aliases of webhooks(limit: 200) { deliveries(limit: 200) }
// must not pass because each is only a few fields).
func Complexity() generated.ComplexityRoot {
	var c generated.ComplexityRoot
	c.Query.Webhooks = func(child int, _ *string, _ *bool, limit *int, _ *int) int {
		return pageCost(child, limit, 50)
	}
	c.Query.Deliveries = func(child int, _ *string, _ *delivery.Status, _ *string, _ *time.Time, _ *time.Time, limit *int, _ *int) int {
		return pageCost(child, limit, 50)
	}
	c.Query.Events = func(child int, _ []string, _ *scalar.Cursor, first *int) int {
		return pageCost(child, first, 50)
	}
	c.Webhook.Deliveries = func(child int, _ *delivery.Status, limit *int, _ *int) int {
		return pageCost(child, limit, 50)
	}
	return c
}

// pageCost is the cost of a page of up to size items (size clamped to the allowed 1–200).
func pageCost(child int, size *int, def int) int {
	n := def
	if size != nil {
		n = min(max(*size, 1), 200)
	}
	return 1 + n*child
}
