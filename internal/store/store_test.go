package store_test

import (
	"testing"

	"github.com/latchkey/latchkey/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.ForEachBackend(t, storetest.RunConformance)
}
