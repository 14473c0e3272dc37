package intake

import (
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sc-extension/sc-extension/pkg/core/connection"
)

func TestRedactRemovesEveryFormOfEveryValue(t *testing.T) {
	creds := connection.Credentials{"A": "abc", "B": "abcdef123", "C": `pa"ss\word`}
	cause := fmt.Errorf("webhook denied: data %s, %q, %s, %s", "abcdef123", `pa"ss\word`,
		base64.StdEncoding.EncodeToString([]byte("abcdef123")), "abc")
	got := redact(cause, creds).Error()
	for _, leak := range []string{"abc", "def123", `pa\"ss`, "word", base64.StdEncoding.EncodeToString([]byte("abcdef123"))} {
		assert.NotContains(t, got, leak)
	}
	assert.Equal(t, `webhook denied: data <redacted>, "<redacted>", <redacted>, <redacted>`, got)
	assert.ErrorIs(t, redact(cause, creds), cause, "the cause stays reachable for errors.Is")
}

func TestRedactLeavesCleanErrorsAlone(t *testing.T) {
	cause := errors.New("conflict")
	assert.Same(t, cause, redact(cause, connection.Credentials{"A": "secret"}))
}
