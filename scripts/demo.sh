#!/usr/bin/env bash
# make demo / make demo-down: the product end to end on a fresh machine.
#   up:   local one-node cluster (or the cluster in KUBECONFIG), images, scctl server
#         (embedded NATS control plane), helm install, one connection per auth type,
#         and a look at what landed.
#   down: removes all of it (and the local cluster if `up` started it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/_output/demo
BIN=$ROOT/bin
export PATH=$BIN:/usr/local/go/bin:$PATH
CLUSTER_ID=${DEMO_CLUSTER_ID:-demo}
APPS=${DEMO_NAMESPACE:-demo-apps}
PORT=${DEMO_NATS_PORT:-4222}
SUB=00000000-0000-4000-8000-000000000000
BLOB_ID=/subscriptions/$SUB/resourceGroups/demo-rg/providers/Microsoft.Storage/storageAccounts/demoacct/blobServices/default
VAULT_ID=/subscriptions/$SUB/resourceGroups/demo-rg/providers/Microsoft.KeyVault/vaults/demovault
CLIENT_ID=11111111-2222-4333-8444-555555555555
TENANT_ID=99999999-8888-4777-8666-555555555555

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

# wait_for CMD... polls a condition; a command, not a sleep, decides.
wait_for() {
  local what=$1 tries=$2; shift 2
  for ((i = 0; i < tries; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  die "timed out waiting for $what"
}

server_pid() {
  local pid
  pid=$(cat "$OUT/scctl-server.pid" 2>/dev/null) || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'scctl server' && echo "$pid"
}

up() {
  mkdir -p "$OUT"
  step "Building images (agent, job, scctl, sampleapp) without Docker"
  make --no-print-directory images
  if [ -n "${KUBECONFIG:-}" ]; then
    step "Using the cluster in KUBECONFIG=$KUBECONFIG (its nodes must be able to run localhost/sc-extension/*:dev images)"
  elif KUBECONFIG=$(make -s --no-print-directory cluster-kubeconfig 2>/dev/null) && [ -n "$KUBECONFIG" ]; then
    step "Reusing the running local cluster"
    make --no-print-directory load-images
  else
    step "Starting a local one-node Kubernetes (first run builds it from source: ~10 min)"
    KUBECONFIG=$(make -s --no-print-directory cluster | tail -n 1)
    touch "$OUT/started-cluster"
  fi
  export KUBECONFIG
  make --no-print-directory tools >/dev/null
  go build -o "$BIN/scctl" ./scctl

  step "Starting the development control plane: scctl server (embedded NATS + JetStream) on :$PORT"
  if ! server_pid >/dev/null; then
    rm -rf "$OUT/creds"
    nohup "$BIN/scctl" server --listen "0.0.0.0:$PORT" --store-dir "$OUT/nats" --cluster "$CLUSTER_ID" \
      --write-creds "$OUT/creds" >"$OUT/scctl-server.log" 2>&1 &
    echo $! >"$OUT/scctl-server.pid"
  fi
  wait_for "scctl server" 30 test -s "$OUT/creds/scctl.env"
  cat "$OUT/scctl-server.log"
  # shellcheck disable=SC1091
  source "$OUT/creds/scctl.env"
  export SCCTL_CLUSTER=$CLUSTER_ID

  step "Installing the chart with helm into sc-system (Pod Security: restricted)"
  kubectl create namespace sc-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl label namespace sc-system --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
  kubectl apply -n sc-system -f "$OUT/creds/$CLUSTER_ID-nats-secret.yaml" >/dev/null
  # --reset-values: exactly the demo's values, whatever an earlier e2e run left
  helm upgrade --install sc-extension ./chart -n sc-system --reset-values --wait --timeout 3m \
    --set cluster.id="$CLUSTER_ID" --set nats.url="$SCCTL_SERVER" --set nats.credentialsSecret=sc-nats-credentials
  kubectl -n sc-system get deploy,pods

  step "Creating one connection per auth type in namespace $APPS"
  kubectl create namespace "$APPS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl label namespace "$APPS" --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
  scctl connection create storage-blob --connection demo_blob_secret --kube-namespace "$APPS" --target-id "$BLOB_ID" \
    --secret "connection-string=DefaultEndpointsProtocol=https;AccountName=demoacct;AccountKey=demo-not-a-real-key;EndpointSuffix=core.windows.net"
  scctl connection create storage-blob --connection demo_blob_wi --kube-namespace "$APPS" --target-id "$BLOB_ID" \
    --workload-identity "client-id=$CLIENT_ID,tenant-id=$TENANT_ID"
  scctl connection create keyvault --connection demo_kv_sp --kube-namespace "$APPS" --target-id "$VAULT_ID" \
    --service-principal "client-id=$CLIENT_ID,secret=demo-not-a-real-secret,tenant-id=$TENANT_ID"

  step "What landed"
  scctl connection list
  for c in demo_blob_secret demo_blob_wi demo_kv_sp; do
    echo; echo "list-configuration $c (credential values are never shown):"
    scctl connection list-configuration --connection "$c"
  done
  echo; echo "Secrets in $APPS (keys only; values stay in the cluster):"
  kubectl -n "$APPS" get secrets -l app.kubernetes.io/managed-by=sc-extension \
    -o go-template='{{range .items}}{{.metadata.name}}:{{range $k, $v := .data}} {{$k}}{{end}}{{"\n"}}{{end}}'
  echo; echo "Workload-identity ServiceAccounts in $APPS:"
  kubectl -n "$APPS" get serviceaccounts -l app.kubernetes.io/managed-by=sc-extension \
    -o go-template='{{range .items}}{{.metadata.name}}{{range $k, $v := .metadata.annotations}}{{if eq (printf "%.23s" $k) "azure.workload.identity"}} {{$k}}={{$v}}{{end}}{{end}}{{"\n"}}{{end}}'
  scctl connection validate --connection demo_blob_wi

  step "A sample workload reading a Secret through envFrom, as in the Service Connector docs"
  local secret
  secret=$(kubectl -n "$APPS" get secrets -l servicelinker.sc-extension.io/connection -o name | grep -m1 demo-blob-wi | cut -d/ -f2)
  kubectl -n "$APPS" delete pod sample-app --ignore-not-found >/dev/null
  kubectl -n "$APPS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: sample-app
  labels: {azure.workload.identity/use: "true"}
spec:
  restartPolicy: Never
  serviceAccountName: sc-account-$CLIENT_ID
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: app
    image: localhost/sc-extension/sampleapp:dev
    imagePullPolicy: IfNotPresent
    envFrom: [{secretRef: {name: $secret}}]
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
YAML
  wait_for "sample-app to finish" 120 bash -c "kubectl -n $APPS get pod sample-app -o jsonpath='{.status.phase}' | grep -Eq 'Succeeded|Failed'"
  kubectl -n "$APPS" logs sample-app
  kubectl -n sc-system get jobs
  echo
  echo "Done. Try: source $OUT/creds/scctl.env; export KUBECONFIG=$KUBECONFIG SCCTL_CLUSTER=$CLUSTER_ID; $BIN/scctl connection list"
  echo "Remove everything with: make demo-down"
}

down() {
  if [ -z "${KUBECONFIG:-}" ]; then
    KUBECONFIG=$(make -s --no-print-directory cluster-kubeconfig 2>/dev/null || true)
  fi
  export KUBECONFIG
  if [ -n "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1; then
    step "Uninstalling the chart and removing what it keeps on purpose"
    make --no-print-directory tools >/dev/null
    helm uninstall sc-extension -n sc-system --wait >/dev/null 2>&1 || true
    kubectl delete namespace "$APPS" --ignore-not-found --wait=false
    kubectl delete namespace sc-system --ignore-not-found --wait=false
  fi
  if pid=$(server_pid); then
    step "Stopping scctl server (pid $pid)"
    kill "$pid"
    wait_for "scctl server to stop" 30 bash -c "! kill -0 $pid"
  fi
  if [ -f "$OUT/started-cluster" ]; then
    step "Stopping the local cluster the demo started"
    make --no-print-directory cluster-down
  fi
  rm -rf "$OUT"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) die "usage: $0 up|down" ;;
esac
