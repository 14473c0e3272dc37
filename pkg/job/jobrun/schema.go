package jobrun

import (
	"errors"

	"github.com/sc-extension/sc-extension/pkg/kube/store"
)

// skipNewer takes the records a newer release wrote out of a listing's
// error and returns the rest. sc-job may neither render nor fail them (a
// status write would drop what it cannot read), and they are not corrupt:
// that release handles them once it runs again. So they are logged as
// skipped and do not fail the run.
func (r *Runner) skipNewer(err error) error {
	if !errors.Is(err, store.ErrUnsupportedVersion) {
		return err
	}
	all := []error{err}
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		all = multi.Unwrap()
	}
	var newer, rest []error
	for _, e := range all {
		if errors.Is(e, store.ErrUnsupportedVersion) {
			newer = append(newer, e)
		} else {
			rest = append(rest, e)
		}
	}
	r.log.Warn().Str("step", "list").Int("skipped", len(newer)).Errs("records", newer).
		Msgf("skipped: newer schema: %d connection records written by a newer release are left to it", len(newer))
	return errors.Join(rest...)
}
