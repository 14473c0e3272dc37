//go:build !unix

package fleetauth

// locked runs fn; without flock, concurrent writers on one keystore are
// the operator's to avoid.
func (k *Keystore) locked(fn func() error) error { return fn() }
