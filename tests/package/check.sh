#!/usr/bin/env bash
# check.sh BUILD_DIR CONSUMER_SRC WORK_DIR LAUNCHER...
# Builds the consumer project against mpiproc three ways and runs each under the launcher:
# the build tree (export()), an install prefix (install(EXPORT)), and pkg-config.
set -euo pipefail
build=$1 src=$2 work=$3
shift 3
rm -rf "$work"
mkdir -p "$work"

echo "== install into $work/prefix"
cmake --install "$build" --prefix "$work/prefix" >/dev/null

echo "== find_package from the build tree"
cmake -S "$src" -B "$work/from-build" -Dmpiproc_DIR="$build" >/dev/null
cmake --build "$work/from-build" >/dev/null
"$@" "$work/from-build/consumer"

echo "== find_package from the install prefix"
cmake -S "$src" -B "$work/from-install" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/from-install" >/dev/null
"$@" "$work/from-install/consumer"

echo "== pkg-config"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig"
flags=$(pkg-config --cflags --libs mpiproc)
${CXX:-c++} "$src/main.cpp" -o "$work/from-pkgconfig" $flags
"$@" "$work/from-pkgconfig"
echo "package: ok"
