#!/usr/bin/env bash
# Installs what the editor tests need (tests/e2e, client/e2e): Debian's chromium, ripgrep, libkrb5-dev and
# neovim, plus code-server 4.100.3 and playwright-core from npm into a cache folder outside the repo.
# Idempotent: when everything is there it only checks versions (about a second).
#
#   GRADGUARD_EDITOR_DEPS  where code-server and playwright-core go (default: ~/.cache/gradguard-editor)
set -euo pipefail

CODE_SERVER_VERSION=4.100.3
PLAYWRIGHT_CORE_VERSION=1.65.1
RIPGREP_CACHE=vscode-ripgrep-cache-1.15.11
RIPGREP_TARBALL=ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz
DEPS="${GRADGUARD_EDITOR_DEPS:-${HOME}/.cache/gradguard-editor}"

log() { printf 'install-editor-deps: %s\n' "$*" >&2; }

# -- Debian packages ------------------------------------------------------------------------------
missing=()
for pkg in chromium ripgrep libkrb5-dev neovim; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "apt-get install ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# -- code-server + playwright-core from npm -------------------------------------------------------
# code-server writes a default config under XDG_CONFIG_HOME when it runs: keep that out of the home folder.
export XDG_CONFIG_HOME="$DEPS/xdg-config"
installed_version() {
  node -e 'try { console.log(require(process.argv[1] + "/package.json").version) } catch { }' "$1"
}
if [ "$(installed_version "$DEPS/node_modules/code-server")" != "$CODE_SERVER_VERSION" ] ||
   [ "$(installed_version "$DEPS/node_modules/playwright-core")" != "$PLAYWRIGHT_CORE_VERSION" ] ||
   ! "$DEPS/node_modules/.bin/code-server" --version >/dev/null 2>&1; then
  mkdir -p "$DEPS"
  [ -f "$DEPS/package.json" ] || printf '{ "name": "gradguard-editor-deps", "private": true }\n' >"$DEPS/package.json"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  # @vscode/ripgrep downloads rg from GitHub in its postinstall; seed its cache with Debian's rg.
  mkdir -p "$work/rg" "$work/$RIPGREP_CACHE"
  cp "$(command -v rg)" "$work/rg/rg"
  tar -C "$work/rg" -czf "$work/$RIPGREP_CACHE/$RIPGREP_TARBALL" rg
  log "npm install code-server@$CODE_SERVER_VERSION playwright-core@$PLAYWRIGHT_CORE_VERSION into $DEPS"
  # unsafe_perm: its postinstall refuses to run as root otherwise; yes: node-pty's postinstall runs npx.
  (cd "$DEPS" && TMPDIR="$work" npm_config_unsafe_perm=true npm_config_yes=true \
     npm install --no-audit --no-fund "code-server@$CODE_SERVER_VERSION" "playwright-core@$PLAYWRIGHT_CORE_VERSION")
fi
"$DEPS/node_modules/.bin/code-server" --version | head -n 1 >&2
log "ready in $DEPS"
