#!/usr/bin/env bash
# Builds the platform-specific vsix into dist/: bundles the client, pip-installs the gradguard server and its
# dependencies (never torch) into bundled/libs, and runs vsce.
#
#   bash scripts/build-extension.sh [--target linux-x64|linux-arm64|alpine-x64|alpine-arm64|darwin-x64|darwin-arm64|win32-x64|win32-arm64]
#
#   PYTHON   interpreter whose pip does the install (default: .venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."

target=linux-x64
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="$2"; shift 2 ;;
    --target=*) target="${1#--target=}"; shift ;;
    *) echo "usage: $0 [--target TARGET]" >&2; exit 2 ;;
  esac
done

# pip platform tags per VS Code target (pure-Python wheels always match).
case "$target" in
  linux-x64)    platforms="manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux2010_x86_64 manylinux1_x86_64" ;;
  linux-arm64)  platforms="manylinux_2_28_aarch64 manylinux_2_17_aarch64 manylinux2014_aarch64" ;;
  alpine-x64)   platforms="musllinux_1_2_x86_64 musllinux_1_1_x86_64" ;;
  alpine-arm64) platforms="musllinux_1_2_aarch64 musllinux_1_1_aarch64" ;;
  darwin-x64)   platforms="macosx_10_13_x86_64 macosx_10_12_x86_64 macosx_10_9_x86_64 macosx_10_13_universal2 macosx_10_9_universal2" ;;
  darwin-arm64) platforms="macosx_11_0_arm64 macosx_10_13_universal2 macosx_10_9_universal2" ;;
  win32-x64)    platforms="win_amd64" ;;
  win32-arm64)  platforms="win_arm64" ;;
  *) echo "build-extension: unknown target $target" >&2; exit 2 ;;
esac
platform_args=()
for p in $platforms; do platform_args+=(--platform "$p"); done

# The oldest Python the server supports resolves the dependencies (so tomli, exceptiongroup and other
# backports are included); the compiled libcst extension is added for every newer Python too.
PY_MIN=3.10
PY_EXTRA="3.11 3.12 3.13 3.14"

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
log() { printf 'build-extension [%ss]: %s\n' "$SECONDS" "$*" >&2; }
version=$(node -p 'require("./package.json").version')
name=$(node -p 'require("./package.json").name')
out="dist/${name}-${target}-${version}.vsix"

[ -d node_modules ] || npm ci
npm run --silent build

log "bundling the gradguard server for $target into bundled/libs"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rm -rf bundled/libs
mkdir -p bundled/libs "$work/wheel" "$work/extra"
# Build gradguard's wheel; skip pip's isolated build env (a fresh setuptools download) when one is at hand.
isolation=()
if "$PYTHON" -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 68)' 2>/dev/null; then
  isolation=(--no-build-isolation)
fi
"$PYTHON" -m pip wheel --quiet --no-deps "${isolation[@]}" --wheel-dir "$work/wheel" .
pip_common=(--quiet --disable-pip-version-check --only-binary=:all: --implementation cp "${platform_args[@]}")
"$PYTHON" -m pip install "${pip_common[@]}" --python-version "$PY_MIN" --no-compile \
  --target bundled/libs "$work"/wheel/gradguard-*.whl
# pip evaluates environment markers with the running interpreter, whatever --python-version says: add the
# dependencies that only older Pythons or the target's OS need (tomli, exceptiongroup, ...) until none is missing.
for _ in 1 2 3 4 5; do
  missing=$("$PYTHON" - bundled/libs "$PY_MIN" "$target" <<'PY'
import email, pathlib, sys
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name

libs, py, target = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
system = target.split("-")[0]
env = {
    "python_version": py, "python_full_version": py + ".0", "implementation_name": "cpython",
    "platform_python_implementation": "CPython", "extra": "",
    "sys_platform": {"win32": "win32", "darwin": "darwin"}.get(system, "linux"),
    "platform_system": {"win32": "Windows", "darwin": "Darwin"}.get(system, "Linux"),
    "os_name": "nt" if system == "win32" else "posix",
}
have, wanted = set(), set()
for meta in libs.glob("*.dist-info/METADATA"):
    msg = email.message_from_string(meta.read_text(encoding="utf-8"))
    have.add(canonicalize_name(msg["Name"]))
    for line in msg.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            wanted.add((canonicalize_name(req.name), f"{req.name}{req.specifier}"))
print(" ".join(sorted(spec for name, spec in wanted if name not in have)))
PY
)
  [ -n "$missing" ] || break
  log "adding for Python $PY_MIN/$target: $missing"
  # shellcheck disable=SC2086
  "$PYTHON" -m pip install "${pip_common[@]}" --python-version "$PY_MIN" --no-compile --no-deps \
    --target "$work/backports" $missing
  cp -r "$work"/backports/. bundled/libs/
  rm -rf "$work/backports"
done
rm -rf bundled/libs/bin
log "server and dependencies installed"
libcst_version=$(ls -d bundled/libs/libcst-*.dist-info | sed -E 's#.*/libcst-([^/]+)\.dist-info#\1#')
for v in $PY_EXTRA; do
  if "$PYTHON" -m pip download "${pip_common[@]}" --python-version "$v" --no-deps --dest "$work/extra" \
       "libcst==$libcst_version" 2>"$work/pip-$v.log"; then
    :
  else
    log "no libcst $libcst_version wheel for Python $v on $target (skipped)"
  fi
done
# Only the compiled modules differ between the per-version wheels; their file names carry the ABI tag.
"$PYTHON" - "$work/extra" bundled/libs <<'PY'
import pathlib, sys, zipfile
extra, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for wheel in sorted(extra.glob("libcst-*.whl")):
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if member.startswith("libcst/") and member.endswith((".so", ".pyd")):
                zf.extract(member, dest)
                print(f"build-extension: + {member}", file=sys.stderr)
PY

if ls -d bundled/libs/torch* >/dev/null 2>&1; then
  log "torch ended up in bundled/libs; it must not be bundled"; exit 1
fi
# When the target is this machine, check that the bundle imports on its own (-S: no site-packages).
if [ "$target" = linux-x64 ] && [ "$(uname -sm)" = "Linux x86_64" ]; then
  PYTHONPATH=bundled/libs "$PYTHON" -S -c 'import libcst.native, pygls, lsprotocol.types, gradguard.cli' \
    || { log "the bundled server does not import"; exit 1; }
fi

log "bundle checked; packaging"
# Package from a staging folder holding only what ships: vsce globs every file under its working
# directory before applying .vscodeignore, and the checkout has a virtualenv with torch in it.
stage="$work/stage"
mkdir -p "$stage/out" "$stage/bundled" dist
cp package.json LICENSE .vscodeignore "$stage/"
[ ! -f README.md ] || cp README.md "$stage/"
cp out/extension.js "$stage/out/"
cp -r bundled/libs "$stage/bundled/libs"
rm -f "$out"
(cd "$stage" && "$OLDPWD/node_modules/.bin/vsce" package --no-dependencies --target "$target" --out "$OLDPWD/$out")
log "built $out ($(du -h "$out" | cut -f1))"
