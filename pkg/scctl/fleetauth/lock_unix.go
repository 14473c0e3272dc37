//go:build unix

package fleetauth

import (
	"fmt"
	"os"
	"syscall"
)

// locked runs fn holding an exclusive lock on the keystore, across
// processes: a server issuing its --cluster users at start and `scctl
// cluster remove` re-signing the account must not interleave.
func (k *Keystore) locked(fn func() error) error {
	f, err := os.OpenFile(k.path(lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("%w: lock: %w", ErrKeystore, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("%w: lock: %w", ErrKeystore, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the file releases it anyway
	return fn()
}
