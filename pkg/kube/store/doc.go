// Package store keeps connection records in the extension's namespace: one
// ConfigMap per connection holding everything but credential values (the
// commit point of every change), and one companion Secret holding the
// credential values, stamped with the id of the request that wrote them.
//
// Layout of ConfigMap sc-conn-<id> (data keys, all human readable):
//
//	spec                   JSON connection.Spec (never a credential value)
//	generation             decimal; bumped when spec or credentials change
//	credentialsVersion     id of the request whose credential values the Secret holds
//	deletion               JSON connection.Deletion, present while a delete is pending
//	status                 JSON connection.Status
//	recentRequestIds       JSON list of the request ids applied, oldest first
//
// Secret sc-conn-<id>-cred holds one data key per credential configuration
// and the annotation servicelinker.sc-extension.io/credentials-version.
package store
