package sleep

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	tests := []struct {
		name   string
		cancel bool
		d      time.Duration
		want   error
	}{
		{"elapses", false, time.Millisecond, nil},
		{"cancelled", true, time.Hour, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			if err := For(ctx, tt.d); !errors.Is(err, tt.want) {
				t.Fatalf("For: %v, want %v", err, tt.want)
			}
		})
	}
}
