package kubetest

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestNamePrefixIsAValidGenerateName(t *testing.T) {
	cases := map[string]string{
		"TestConcurrentWritersLoseNothing":                 "concurrentwriterslosenothing-",
		"TestRenderedChartOnRealAPIServer/every_object_is": "renderedchartonrealapiserver-every-obje-",
		"Test":                   "test-",
		"TestA__B//C":            "a-b-c-",
		"_Test_x_":               "x-",
		strings.Repeat("x", 100): strings.Repeat("x", 39) + "-",
	}
	for in, want := range cases {
		got := namePrefix(in)
		if got != want {
			t.Errorf("namePrefix(%q) = %q, want %q", in, got, want)
		}
		// The API server appends 5 random characters.
		if errs := validation.IsDNS1123Label(got + "abcde"); len(errs) > 0 {
			t.Errorf("namePrefix(%q) = %q: not a namespace name: %v", in, got, errs)
		}
	}
}

func TestLabelValueIsValid(t *testing.T) {
	for _, in := range []string{"TestX/sub test #1", strings.Repeat("a/", 60), "_x_", "Test-ok.v1"} {
		got := labelValue(in)
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Errorf("labelValue(%q) = %q: %v", in, got, errs)
		}
	}
	if got := labelValue("TestX/sub test"); got != "TestX_sub_test" {
		t.Errorf("labelValue keeps what it can: got %q", got)
	}
}
