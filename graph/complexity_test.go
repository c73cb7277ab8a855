package graph

import "testing"

func TestPageCostMultipliesBySize(t *testing.T) {
	ptr := func(n int) *int { return &n }
	tests := []struct {
		child int
		size  *int
		want  int
	}{
		{3, nil, 151}, {3, ptr(200), 601}, {3, ptr(1000), 601}, {3, ptr(0), 4},
	}
	for _, tt := range tests {
		if got := pageCost(tt.child, tt.size, 50); got != tt.want {
			t.Errorf("pageCost(%d, %v) = %d, want %d", tt.child, tt.size, got, tt.want)
		}
	}
}
