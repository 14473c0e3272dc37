// Package jobrun is sc-job's logic: drain every connection whose record asks
// for work (render and apply, or apply a deletion and remove the record),
// write each outcome into the record with an Event, and summarise the run in
// one plain line for `kubectl logs`.
package jobrun
