package connection

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func TestObjectIDKeepsSimpleNames(t *testing.T) {
	assert.Equal(t, "mystorage", ObjectID("mystorage"))
	assert.Equal(t, "db1", ObjectID("db1"))
}

func TestObjectIDSanitisesWithHash(t *testing.T) {
	tests := map[string]string{
		"My_Storage":  "my-storage-",
		"a.b":         "a-b-",
		"_lead":       "lead-",
		"UPPER":       "upper-",
		"x__y..z":     "x-y-z-",
		"___":         "x-",
		"trailing_._": "trailing-",
	}
	for in, prefix := range tests {
		id := ObjectID(in)
		assert.True(t, strings.HasPrefix(id, prefix), "%q -> %q, want prefix %q", in, id, prefix)
		assert.Len(t, id, len(prefix)+hashLen, "%q -> %q", in, id)
		assert.Regexp(t, dns1123Label, id)
	}
}

func TestObjectIDLongNamesFitEveryDerivedName(t *testing.T) {
	for _, name := range []string{strings.Repeat("a", 100), strings.Repeat("A_", 50), strings.Repeat("z", MaxIDLength+1)} {
		id := ObjectID(name)
		assert.LessOrEqual(t, len(id), MaxIDLength)
		for _, derived := range []string{ConfigMapName(id), CredentialSecretName(id), SecretName(id)} {
			assert.LessOrEqual(t, len(derived), 63, derived)
			assert.Regexp(t, dns1123Label, derived)
		}
	}
	// exactly MaxIDLength lowercase characters is still kept as is
	exact := strings.Repeat("q", MaxIDLength)
	assert.Equal(t, exact, ObjectID(exact))
}

// The classes that could collide: case variants, '.' versus '_', and names
// that differ only after the truncation point.
func TestObjectIDCollisionFree(t *testing.T) {
	names := []string{"abc", "ABC", "Abc", "a_bc", "a.bc", "a-bc", "abc_", "abc.", "_abc", ".abc"}
	long := strings.Repeat("x", 70)
	for i := 0; i < 50; i++ {
		names = append(names, fmt.Sprintf("%s%d", long, i), fmt.Sprintf("%s_%d", long, i))
	}
	seen := map[string]string{}
	for _, n := range names {
		id := ObjectID(n)
		if prev, ok := seen[id]; ok {
			t.Fatalf("%q and %q both map to %q", prev, n, id)
		}
		seen[id] = n
	}
}

func TestServiceAccountName(t *testing.T) {
	assert.Equal(t, "sc-account-0ab1c2d3-0000-4000-8000-00000000000f",
		ServiceAccountName("0AB1C2D3-0000-4000-8000-00000000000F"))
}

func FuzzObjectID(f *testing.F) {
	for _, s := range []string{"a", "My_Conn", "", "....", strings.Repeat("Z", 200), "ünïcode"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		id := ObjectID(name)
		require.Regexp(t, dns1123Label, id)
		require.LessOrEqual(t, len(id), MaxIDLength)
		require.Equal(t, id, ObjectID(name), "deterministic")
		if !strings.Contains(id, "-") {
			// the half of the collision argument that fuzzing can check:
			// an id without a hash suffix is the name itself
			require.Equal(t, name, id)
		}
	})
}

func TestCredentialsNeverFormatValues(t *testing.T) {
	c := Credentials{"AZURE_X_PASSWORD": "s3cret-value", "AZURE_X_KEY": "k3y-value"}
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%s", c)} { //nolint:staticcheck // S1025: %s is one of the verbs under test
		assert.NotContains(t, out, "s3cret-value")
		assert.NotContains(t, out, "k3y-value")
		assert.Contains(t, out, "AZURE_X_PASSWORD")
	}
}

func TestRememberKeepsNewest(t *testing.T) {
	var c Connection
	for i := 0; i < MaxRecentRequestIDs+5; i++ {
		c.Remember(fmt.Sprint("r", i))
	}
	assert.Len(t, c.RecentRequestIDs, MaxRecentRequestIDs)
	assert.True(t, c.Seen(fmt.Sprint("r", MaxRecentRequestIDs+4)))
	assert.False(t, c.Seen("r0"), "oldest ids are forgotten")
}
