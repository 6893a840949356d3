#!/usr/bin/env bash
# System packages the test-suite uses, installed where we are root: util-linux (unshare, for the sandbox), Docker engine,
# docker-compose, Chromium with its driver (viewer tests), and the Node packages for the cross-language MCP client tests.
set -uo pipefail
cd "$(dirname "$0")/.."
need=()
command -v unshare >/dev/null || need+=(util-linux)
command -v dockerd >/dev/null || need+=(docker.io)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# docker-compose validates and runs docker-compose.yml in tests/test_deploy.py (the compose plugin serves too)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -f tests/node/package.json ] && command -v npm >/dev/null; then
  # the TypeScript SDK client and the reference filesystem server (tests/node, benchmarks/bench_mcp.py), pinned by the lock
  (cd tests/node && { [ -f package-lock.json ] && npm ci --no-audit --no-fund --silent \
                        || npm install --no-audit --no-fund --silent; })
fi
