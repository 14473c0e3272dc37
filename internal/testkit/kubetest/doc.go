// Package kubetest gives an integration test its clients and namespaces on
// the package's private API server.
//
// Each integration package starts one private etcd + kube-apiserver +
// kube-controller-manager for its whole test binary (e2e/testbed api mode):
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }
//
// and each test takes what it needs from it:
//
//	k := kubetest.New(t, kubetest.QPS(100, 200))   // Clientset, Dynamic, Config
//	ns := kubetest.Namespace(t)                     // unique, deleted at cleanup
//
// Tests share the API server, so they isolate themselves by namespace, never
// by a fixed name that a second test (or -count=2) would collide with.
package kubetest
