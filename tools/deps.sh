#!/usr/bin/env bash
# Dependency step run first by `make test` and `make demo`: checks every library the
# build needs with pkg-config (and the programs the tests need) and, when something is
# missing, installs the Debian packages with apt-get if we are root; otherwise prints
# the exact apt-get line and stops.
set -u
PACKAGES="build-essential pkg-config libopenmpi-dev openmpi-bin libopenblas-dev libhdf5-dev hdf5-tools libmsgpack-dev libjansson-dev gnuplot-nox tmux procps"
missing=""
for pc in ompi-c openblas hdf5 msgpack jansson; do
  pkg-config --exists "$pc" 2>/dev/null || missing="$missing $pc"
done
for prog in mpirun gcc make pkg-config h5dump gnuplot tmux pgrep; do
  command -v "$prog" >/dev/null 2>&1 || missing="$missing $prog"
done
[ -z "$missing" ] && exit 0
echo "deps: missing:$missing"
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing Debian packages: $PACKAGES"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y --no-install-recommends $PACKAGES || {
    echo "deps: apt-get failed; install these packages and re-run: $PACKAGES" >&2; exit 1; }
else
  echo "deps: run this as root, then re-run make:" >&2
  echo "  sudo apt-get install -y --no-install-recommends $PACKAGES" >&2
  exit 1
fi
