package connection

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOwnReplacesAndDisownForgets(t *testing.T) {
	sec := ResourceRef{Kind: "Secret", Namespace: "a", Name: "sc-x-secret"}
	sa := ResourceRef{Kind: "ServiceAccount", Namespace: "a", Name: "sc-account-1"}
	var s Status
	assert.True(t, s.Own(sec, "u1"))
	assert.False(t, s.Own(sec, "u1"), "the same UID again changes nothing")
	assert.True(t, s.Own(sa, "u2"))
	shared := s.Owned
	assert.True(t, s.Own(sec, "u3"), "a re-created object's UID replaces the old one")
	assert.Equal(t, []OwnedObject{{ResourceRef: sec, UID: "u3"}, {ResourceRef: sa, UID: "u2"}}, s.Owned)

	assert.True(t, s.Disown(sec))
	assert.False(t, s.Disown(sec))
	assert.Equal(t, []OwnedObject{{ResourceRef: sa, UID: "u2"}}, s.Owned)
	assert.Equal(t, []OwnedObject{{ResourceRef: sec, UID: "u1"}, {ResourceRef: sa, UID: "u2"}}, shared,
		"neither writes into a slice another copy of the status shares")
	uid, ok := s.OwnedUID(sa)
	assert.True(t, ok)
	assert.Equal(t, "u2", uid)
}
