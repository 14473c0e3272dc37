// Package testkit groups test support shared by the unit, integration and
// end-to-end tiers. Nothing under it is imported by product code: a test in
// verify checks that the agent, sc-job and scctl binaries do not depend on it.
package testkit
