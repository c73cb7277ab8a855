package webhooks

import "testing"

func TestSuccessRate(t *testing.T) {
	tests := []struct {
		successful, failed int
		want               float64
	}{
		{0, 0, 0},
		{1, 0, 100},
		{0, 3, 0},
		{2, 1, 66.67},
		{1, 2, 33.33},
		{1, 6, 14.29},
		{999, 1, 99.9},
		{9999, 1, 99.99},
		{199999, 1, 100},
	}
	for _, tt := range tests {
		if got := SuccessRate(tt.successful, tt.failed); got != tt.want {
			t.Errorf("SuccessRate(%d, %d) = %v, want %v", tt.successful, tt.failed, got, tt.want)
		}
	}
}

func TestValidatePage(t *testing.T) {
	ptr := func(n int) *int { return &n }
	if l, o, err := ValidatePage(nil, nil); err != nil || l != 50 || o != 0 {
		t.Fatalf("defaults: got %d %d %v, want 50 0", l, o, err)
	}
	for _, tc := range []struct {
		limit, offset *int
		ok            bool
	}{
		{ptr(1), ptr(0), true}, {ptr(200), ptr(10), true}, {ptr(0), nil, false}, {ptr(201), nil, false}, {nil, ptr(-1), false},
	} {
		if _, _, err := ValidatePage(tc.limit, tc.offset); (err == nil) != tc.ok {
			t.Errorf("limit %v offset %v: got err %v, want ok=%v", tc.limit, tc.offset, err, tc.ok)
		}
	}
}
