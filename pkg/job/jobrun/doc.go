// Package jobrun is sc-job's logic: drain every connection whose record asks
// for work (render and apply, or apply a deletion and remove the record),
// write each outcome into the record with an Event, log one readable line
// per step and per object, and summarise the run in one sentence for
// `kubectl logs`.
package jobrun
