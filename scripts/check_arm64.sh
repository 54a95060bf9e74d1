#!/usr/bin/env bash
# make check-arm64: run the exported ONNX files with ONNX Runtime's aarch64 kernels under
# qemu user-mode, on three emulated CPUs, and compare them with x86 (GUIDE §4).
#
# qemu emulates the instructions exactly: this checks the ARM kernels' numerics, not their
# speed (one inference is 30-100x slower than native).
#
#   scripts/check_arm64.sh [--build-only] [--rebuild] [CHECKER ARGS...]
#
# CHECKER ARGS go to bench/arm64_check.py (model folders or .onnx files, --registry,
# --out, --tolerance ...; see `python bench/arm64_check.py --help`). Default: every latest
# version in $SER_REGISTRY (or ./registry).
#
# The arm64 root is built once (~8 min) and cached in $SER_ARM64_CACHE
# (default ~/.cache/ser-pipeline/arm64); later runs reuse it. A new onnxruntime or numpy
# version on the host gets its own venv inside the root, so x86 and ARM run the same
# ONNX Runtime release. Needs root (debootstrap, chroot, bind mounts).
#
# Environment: PYTHON (host interpreter with ser-pipeline; default .venv/bin/python),
# SER_ARM64_CACHE, SER_ARM64_CPUS (space-separated qemu CPU models), SER_ARM64_SUITE and
# SER_ARM64_MIRROR (Debian suite and mirror for debootstrap; default: this machine's).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
CACHE=${SER_ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ser-pipeline/arm64}
ROOT=$CACHE/root
CPUS=${SER_ARM64_CPUS:-"max neoverse-n1 cortex-a53 max,sve=off,sme=off"}
HOST_PACKAGES="qemu-user-static debootstrap binfmt-support"

build_only=0
rebuild=0
checker_args=()
for arg in "$@"; do
  case $arg in
    --build-only) build_only=1 ;;
    --rebuild) rebuild=1 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) checker_args+=("$arg") ;;
  esac
done

say() { printf 'check-arm64: %s\n' "$*" >&2; }
die() { printf 'check-arm64: error: %s\n' "$*" >&2; exit 2; }

# -- mounts: everything mounted is unmounted on exit, failure or Ctrl-C ---------------------
MOUNTED=()
WORK=
unmount_all() {  # in reverse order: proc/cpuinfo before proc
  local index
  for ((index = ${#MOUNTED[@]} - 1; index >= 0; index--)); do
    umount "${MOUNTED[index]}" 2>/dev/null || umount -l "${MOUNTED[index]}" 2>/dev/null \
      || say "could not unmount ${MOUNTED[index]}: unmount it by hand"
  done
  MOUNTED=()
}
cleanup() {
  unmount_all
  if [[ -n $WORK && -d $WORK ]] && ! has_mounts_under "$WORK"; then rm -rf -- "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bind() {  # bind SOURCE TARGET: a private bind mount (nothing propagates back to the host)
  mount --bind "$1" "$2"
  MOUNTED+=("$2")
  mount --make-private "$2"
}

mount_root() {  # /proc /sys /dev, and an ARM cpuinfo over proc/cpuinfo
  local root=$1
  bind /proc "$root/proc"
  bind /sys "$root/sys"
  bind /dev "$root/dev"
  # ORT reads /proc/cpuinfo at import: the host's x86 one makes it segfault, and a real
  # ARM CPU id makes it assume features qemu's CPU lacks (SIGILL). Implementer 0x00 is
  # "unknown": ORT then trusts the HWCAPs qemu reports for the emulated CPU.
  bind "$CACHE/cpuinfo" "$root/proc/cpuinfo"
}

has_mounts_under() {  # refuse to delete a folder with a mount inside (it could be /dev)
  awk -v dir="$1/" '{ if (index($5 "/", dir) == 1) found = 1 } END { exit !found }' \
    /proc/self/mountinfo
}

safe_remove() {
  if [[ -e $1 ]]; then
    if has_mounts_under "$1"; then die "$1 still has mounts inside; unmount them first"; fi
    rm -rf -- "$1"
  fi
}

# -- host requirements ----------------------------------------------------------------------
host_requirements() {
  [[ -x $PYTHON ]] \
    || die "no Python at $PYTHON: run 'make test' once to create .venv, or set PYTHON"
  missing=0
  for tool in qemu-aarch64-static debootstrap update-binfmts; do
    command -v "$tool" >/dev/null 2>&1 || missing=1
  done
  if [[ $missing == 1 ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      say "installing $HOST_PACKAGES"
      # shellcheck disable=SC2086  # the package list is meant to split
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        $HOST_PACKAGES) >/dev/null
    else
      die "missing qemu-user-static/debootstrap/binfmt-support; install them, e.g." \
          "'sudo apt-get install $HOST_PACKAGES'"
    fi
  fi
  if [[ $(id -u) != 0 ]]; then
    die "needs root (debootstrap, chroot and bind mounts): run 'sudo make check-arm64'"
  fi

  if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  fi
  grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
    || die "binfmt_misc has no enabled qemu-aarch64 entry;" \
           "try 'update-binfmts --enable qemu-aarch64'"
}

write_cpuinfo() {
  mkdir -p "$CACHE"
  # One entry per CPU the host's /sys lists: with fewer, ORT's cpuinfo segfaults at import.
  possible=$(cat /sys/devices/system/cpu/possible 2>/dev/null || echo 0)
  last_cpu=${possible##*[-,]}
  : >"$CACHE/cpuinfo"
  for ((cpu = 0; cpu <= last_cpu; cpu++)); do
    {
      printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n' "$cpu"
      printf 'CPU implementer\t: 0x00\nCPU architecture: 8\nCPU variant\t: 0x0\n'
      printf 'CPU part\t: 0x000\nCPU revision\t: 0\n\n'
    } >>"$CACHE/cpuinfo"
  done
}

# -- the arm64 Debian root (built once) -----------------------------------------------------
build_root() {
  if [[ $rebuild == 1 ]]; then safe_remove "$ROOT"; fi
  if [[ ! -e $ROOT/.ser-root-ready ]]; then
    # shellcheck disable=SC1091  # the host's os-release
    suite=${SER_ARM64_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
    [[ -n $suite ]] \
      || die "cannot tell this machine's Debian suite: set SER_ARM64_SUITE (e.g. bookworm)"
    # The Debian mirror apt already uses (active .list/.sources files only).
    mirror=${SER_ARM64_MIRROR:-$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
      /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -oE 'https?://[^ ]+/debian/?( |$)' \
      | head -n1 | tr -d ' ' || true)}
    mirror=${mirror:-http://deb.debian.org/debian}
    say "building the arm64 root ($suite from $mirror) in $ROOT: ~8 min, once"
    safe_remove "$ROOT.partial"
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip \
      "$suite" "$ROOT.partial" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
      || die "debootstrap failed; see $CACHE/debootstrap.log"
    touch "$ROOT.partial/.ser-root-ready"
    mv "$ROOT.partial" "$ROOT"
  fi
}

# -- onnxruntime + numpy in a venv inside the root, same versions as the host ---------------
install_venv() {  # sets VENV
  read -r ort_version numpy_version < <("$PYTHON" -c \
    'import numpy, onnxruntime; print(onnxruntime.__version__, numpy.__version__)' || true)
  [[ -n ${numpy_version:-} ]] || die "$PYTHON cannot import onnxruntime and numpy"
  root_python=
  for candidate in "$ROOT"/usr/bin/python3.[0-9] "$ROOT"/usr/bin/python3.[0-9][0-9]; do
    if [[ -x $candidate ]]; then root_python=$(basename "$candidate"); fi
  done
  [[ -n $root_python ]] || die "no python3 in $ROOT; rebuild it with --rebuild"
  py_tag=${root_python#python}; py_tag=${py_tag/./}
  VENV=/opt/ser-ort-$ort_version-numpy-$numpy_version
  if [[ ! -e $ROOT$VENV/.ser-ready ]]; then
    wheels=$CACHE/wheels/ort-$ort_version-numpy-$numpy_version-cp$py_tag
    if [[ ! -e $wheels/.complete ]]; then
      say "downloading aarch64 wheels (onnxruntime $ort_version, numpy $numpy_version) on the host"
      safe_remove "$wheels"
      mkdir -p "$wheels"
      "$PYTHON" -m pip download -q --disable-pip-version-check --only-binary=:all: \
        --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
        --platform manylinux_2_27_aarch64 --platform manylinux_2_17_aarch64 \
        --python-version "$py_tag" -d "$wheels" \
        "onnxruntime==$ort_version" "numpy==$numpy_version" \
        || die "pip download of aarch64 wheels failed (needs the package index)"
      touch "$wheels/.complete"
    fi
    say "installing them into $VENV inside the root"
    safe_remove "$ROOT$VENV"
    safe_remove "$ROOT/wheels"
    cp -r "$wheels" "$ROOT/wheels"
    mount_root "$ROOT"
    # pip inside the root cannot verify TLS: only the wheels downloaded above are used.
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root QEMU_CPU=max \
      /usr/bin/python3 -m venv "$VENV"
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root QEMU_CPU=max \
      "$VENV/bin/pip" install -q --no-index --find-links /wheels --disable-pip-version-check \
      "onnxruntime==$ort_version" "numpy==$numpy_version"
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root QEMU_CPU=max \
      "$VENV/bin/python" -c 'import numpy, onnxruntime as ort; print("ARM64 ORT", ort.__version__)'
    unmount_all
    rm -rf -- "$ROOT/wheels"
    touch "$ROOT$VENV/.ser-ready"
  fi
}

# -- the check: x86 reference on the host, the same inputs on each emulated CPU -------------
run_check() {
  WORK=$(mktemp -d "$ROOT/tmp/ser-check-XXXXXX")
  inside=/tmp/$(basename "$WORK")
  cd "$REPO"
  export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
  "$PYTHON" bench/arm64_check.py prepare --work "$WORK" --cpus "$CPUS" "${checker_args[@]}"
  cp bench/arm64_runner.py "$WORK/"
  mount_root "$ROOT"
  for cpu in $CPUS; do
    say "running on emulated $cpu"
    # QEMU_CPU must be in the environment of the ARM process itself, inside the chroot.
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root QEMU_CPU="$cpu" \
      OMP_NUM_THREADS=1 "$VENV/bin/python" "$inside/arm64_runner.py" "$inside" --cpu "$cpu" \
      || say "the run on $cpu failed (exit $?); the checker reports it"
  done
  unmount_all
  "$PYTHON" bench/arm64_check.py compare --work "$WORK"
}

main() {
  host_requirements
  write_cpuinfo
  build_root
  install_venv
  if [[ $build_only == 1 ]]; then
    say "arm64 root ready: $ROOT (venv $VENV)"
    return 0
  fi
  run_check
}

# Everything runs from functions: bash has parsed the whole file before the first command,
# so editing this script while a check runs cannot change what that check executes.
main
