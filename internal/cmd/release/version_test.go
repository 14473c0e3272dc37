package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]version{
		"v0.1.0":               {Tag: "v0.1.0", Chart: "0.1.0"},
		"v1.22.333":            {Tag: "v1.22.333", Chart: "1.22.333"},
		"v0.2.0-rc.1":          {Tag: "v0.2.0-rc.1", Chart: "0.2.0-rc.1"},
		"v2.0.0-alpha-1.0.x-y": {Tag: "v2.0.0-alpha-1.0.x-y", Chart: "2.0.0-alpha-1.0.x-y"},
	} {
		got, err := parseVersion(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{
		"",
		"0.1.0",          // no v: the tag and appVersion carry one
		"v0.1",           // not three numbers
		"v01.1.0",        // leading zero
		"v0.1.0-",        // empty pre-release
		"v0.1.0-rc.01",   // numeric pre-release identifier with a leading zero
		"v0.1.0+build.5", // build metadata: not an image tag
		"v0.1.0-rc_1",    // "_" is not a semver identifier character
		"dev",
		"v0.1.0-3-gad02d28-dirty\n",
		"v0.1.0-" + strings.Repeat("a", 128), // longer than an image tag may be
	} {
		_, err := parseVersion(in)
		assert.True(t, errors.Is(err, ErrBadVersion), "%q: %v", in, err)
	}
}
