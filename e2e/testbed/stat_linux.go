package testbed

import "syscall"

type statT = syscall.Stat_t

func statPath(p string, st *statT) error { return syscall.Stat(p, st) }
