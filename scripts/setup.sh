#!/usr/bin/env bash
# Installs everything vxnet needs on a fresh Debian 12 machine (run as root) and builds it:
# Debian packages for the tests and the lab, npm packages (native addons approved in
# package.json's allowScripts), the WASM core and the compiled TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  iproute2 iputils-ping ethtool nftables iperf3 tcpdump tshark socat
  python3-scapy etcd-server etcd-client
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts etcd as a system service on install; vxnet starts its own instances.
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "setup: building WASM and TypeScript"
npm run --silent build

# The `vxnet` command on PATH (what `npm install -g` would do), pointing at this checkout.
ln -sf "$PWD/bin/vxnet.js" /usr/local/bin/vxnet
echo "setup: vxnet -> $(readlink /usr/local/bin/vxnet)"
